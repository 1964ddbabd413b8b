-- Users, API keys, transactions and their scores.

CREATE TABLE users (
    user_id     text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (user_id),
    key_hash    bytea NOT NULL UNIQUE,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- One row per (user, transaction_id): the idempotency key of the whole pipeline.
CREATE TABLE transactions (
    user_id          text NOT NULL,
    transaction_id   text NOT NULL,
    account_id       text NOT NULL,
    ts               timestamptz NOT NULL,
    amount           numeric(14, 2) NOT NULL CHECK (amount > 0),
    direction        text NOT NULL CHECK (direction IN ('debit', 'credit')),
    currency         char(3) NOT NULL,
    merchant         text,
    description      text,
    category         text,
    category_source  text NOT NULL DEFAULT 'provided'
                     CHECK (category_source IN ('provided', 'predicted', 'none')),
    category_confidence real,
    channel          text NOT NULL,
    country          char(2),
    metadata         jsonb,
    source           text NOT NULL,
    ingested_at      timestamptz NOT NULL,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, transaction_id)
);
-- Keyset pagination, newest first, for the user and for one account of the user.
CREATE INDEX transactions_user_time ON transactions (user_id, ts DESC, transaction_id DESC);
CREATE INDEX transactions_account_time
    ON transactions (user_id, account_id, ts DESC, transaction_id DESC);
CREATE INDEX transactions_category_time
    ON transactions (user_id, category, ts DESC, transaction_id DESC);

CREATE TABLE scores (
    user_id         text NOT NULL,
    transaction_id  text NOT NULL,
    score           real NOT NULL CHECK (score >= 0 AND score <= 1),
    is_anomaly      boolean NOT NULL,
    detector_scores jsonb NOT NULL DEFAULT '{}'::jsonb,
    explanation     jsonb NOT NULL DEFAULT '[]'::jsonb,
    model_version   text NOT NULL,
    scored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, transaction_id),
    FOREIGN KEY (user_id, transaction_id) REFERENCES transactions (user_id, transaction_id)
);
CREATE INDEX scores_anomalies ON scores (user_id, score DESC) WHERE is_anomaly;

-- Daily spend per series, maintained by the forecaster. counted_transactions makes re-delivery
-- harmless: a transaction adds to the aggregate only the first time it is seen.
CREATE TABLE counted_transactions (
    user_id         text NOT NULL,
    transaction_id  text NOT NULL,
    PRIMARY KEY (user_id, transaction_id)
);

CREATE TABLE daily_spend (
    user_id     text NOT NULL,
    account_id  text NOT NULL,
    category    text NOT NULL,
    day         date NOT NULL,
    spent       numeric(16, 2) NOT NULL DEFAULT 0,
    received    numeric(16, 2) NOT NULL DEFAULT 0,
    n           integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, account_id, category, day)
);
