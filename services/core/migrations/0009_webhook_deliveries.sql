-- Signed webhook deliveries received within the signature tolerance: a repeat is a replay.
-- Only a hash of the signature is kept; rows older than twice the tolerance are deleted.

CREATE TABLE webhook_deliveries (
    signature_sha256 bytea PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);
