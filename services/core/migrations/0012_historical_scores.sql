-- Transactions that happened days before they were ingested (an import of last year, a
-- backfill) are scored like any other, but raise no live alert: the score says so.
ALTER TABLE scores ADD COLUMN historical boolean NOT NULL DEFAULT false;
