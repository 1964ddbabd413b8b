-- Merchant keys are derived from merchant texts by services/core/text.py. When its rules change
-- (MERCHANT_KEY_VERSION there), the migration runner derives the stored keys again, and the
-- rules and recurring charges keyed by them, so that a shop's history and a person's rule for it
-- do not split at an upgrade. This records which rules the stored keys were derived by; every key
-- stored before this table existed was derived by the first.
CREATE TABLE merchant_key_version (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version   integer NOT NULL
);
INSERT INTO merchant_key_version (version) VALUES (1);
