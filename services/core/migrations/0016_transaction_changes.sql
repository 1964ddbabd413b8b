-- Transactions change after the fact: a bank revises one (a higher revision), a person edits one
-- (category, note, excluded, display merchant) or deletes one, a bank removes one. A removal is
-- final: its tombstone keeps a late or repeated delivery of the transaction from bringing it back.
ALTER TABLE transactions
    ADD COLUMN revision integer NOT NULL DEFAULT 1,
    ADD COLUMN status text CHECK (status IN ('pending', 'posted')),
    ADD COLUMN excluded boolean NOT NULL DEFAULT false,
    ADD COLUMN display_merchant text;
ALTER TABLE transactions DROP CONSTRAINT transactions_category_source_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_category_source_check
    CHECK (category_source IN ('provided', 'predicted', 'none', 'user'));
ALTER TABLE scores ADD COLUMN revision integer NOT NULL DEFAULT 1;

CREATE TABLE removed_transactions (
    user_id         text NOT NULL,
    transaction_id  text NOT NULL,
    removed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, transaction_id)
);

-- The forecaster's record of what each transaction added to daily_spend, so a revision, an edit
-- or a removal takes exactly that back out. Rows counted before this migration added their raw
-- amount under their provided category, as the backfill says.
ALTER TABLE counted_transactions
    ADD COLUMN account_id text,
    ADD COLUMN category text,
    ADD COLUMN series text,
    ADD COLUMN day date,
    ADD COLUMN spent numeric NOT NULL DEFAULT 0,
    ADD COLUMN received numeric NOT NULL DEFAULT 0,
    ADD COLUMN revision integer NOT NULL DEFAULT 1,
    ADD COLUMN user_category boolean NOT NULL DEFAULT false,
    ADD COLUMN currency text,  -- the amount's own currency, when no rate converted it
    ADD COLUMN state text NOT NULL DEFAULT 'counted'
        CHECK (state IN ('counted', 'excluded', 'removed'));
UPDATE counted_transactions c
SET account_id = t.account_id,
    category = coalesce(t.category, 'Uncategorized'),
    series = coalesce(t.category, 'Uncategorized'),
    day = ((t.ts AT TIME ZONE 'UTC') + make_interval(mins => t.utc_offset_minutes::int))::date,
    spent = CASE WHEN t.direction = 'debit' THEN t.amount ELSE 0 END,
    received = CASE WHEN t.direction = 'credit' THEN t.amount ELSE 0 END
FROM transactions t
WHERE t.user_id = c.user_id AND t.transaction_id = c.transaction_id
  AND t.category_source IN ('provided', 'none');
UPDATE counted_transactions c
SET account_id = t.account_id, category = 'Uncategorized', series = 'Uncategorized',
    day = ((t.ts AT TIME ZONE 'UTC') + make_interval(mins => t.utc_offset_minutes::int))::date,
    spent = CASE WHEN t.direction = 'debit' THEN t.amount ELSE 0 END,
    received = CASE WHEN t.direction = 'credit' THEN t.amount ELSE 0 END
FROM transactions t
WHERE t.user_id = c.user_id AND t.transaction_id = c.transaction_id
  AND t.category_source = 'predicted';

ALTER TABLE forecast_charges ADD COLUMN excluded boolean NOT NULL DEFAULT false;
