-- Per-user webhook secrets. HMAC needs the secret itself, so it is stored, not a hash; only the
-- ingest service reads it. Two active secrets per user allow rotation.

CREATE TABLE webhook_secrets (
    secret_id   text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (user_id),
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX webhook_secrets_user ON webhook_secrets (user_id) WHERE revoked_at IS NULL;
