-- Drift of spending between a current and a reference window, per scope.

CREATE TABLE drift_metrics (
    scope             text NOT NULL,          -- 'global' or 'account'
    user_id           text NOT NULL DEFAULT '', -- '' for the global scope
    account_id        text NOT NULL DEFAULT '',
    window_end        timestamptz NOT NULL,
    current_start     timestamptz,
    reference_start   timestamptz,
    reference_end     timestamptz,
    window_mode       text NOT NULL,
    status            text NOT NULL CHECK (status IN ('ok', 'drift', 'insufficient')),
    n_current         integer NOT NULL,
    n_reference       integer NOT NULL,
    category_jsd      real,
    category_psi      real,
    amount_jsd        real,
    amount_ks         real,
    amount_ks_pvalue  double precision,
    amount_wasserstein real,
    top_contributors  jsonb NOT NULL DEFAULT '[]'::jsonb,
    breached          text[] NOT NULL DEFAULT '{}',
    threshold         real NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, user_id, account_id, window_end)
);
CREATE INDEX drift_metrics_user ON drift_metrics (user_id, window_end DESC);

-- How far the drift watcher has read transactions (by transactions.seq).
CREATE TABLE drift_progress (
    id        integer PRIMARY KEY CHECK (id = 1),
    last_seq  bigint NOT NULL
);
INSERT INTO drift_progress (id, last_seq) VALUES (1, 0);
