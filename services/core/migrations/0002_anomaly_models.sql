-- The anomaly ensemble: processing order, features kept for retraining, the model registry, and
-- feedback on alerts.

ALTER TABLE transactions
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN utc_offset_minutes smallint NOT NULL DEFAULT 0;
-- Replaying an account's history in processing order after a restart or rebalance.
CREATE INDEX transactions_account_seq ON transactions (user_id, account_id, seq DESC);

ALTER TABLE scores
    ADD COLUMN features real[],
    ADD COLUMN severity text;
CREATE INDEX scores_scored_at ON scores (scored_at);
CREATE INDEX scores_anomaly_keyset
    ON scores (user_id, score DESC, transaction_id DESC) WHERE is_anomaly;

CREATE TABLE anomaly_models (
    version       text PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    training_rows integer NOT NULL,
    metrics       jsonb NOT NULL,
    artifact      bytea NOT NULL,
    trained_by    text NOT NULL
);
CREATE INDEX anomaly_models_created ON anomaly_models (created_at DESC);

CREATE TABLE feedback (
    user_id        text NOT NULL,
    transaction_id text NOT NULL,
    label          text NOT NULL CHECK (label IN ('fraud', 'legit')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, transaction_id),
    FOREIGN KEY (user_id, transaction_id) REFERENCES transactions (user_id, transaction_id)
);
