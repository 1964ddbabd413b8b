-- The forecaster's own record of each debit's merchant, written in the same transaction as the
-- daily aggregates it consumes them into: recurring bills are found from it. Reading the
-- scorer's transactions table instead raced the scorer: a forecast made while the scorer lagged
-- saw daily totals with rent in them but no rent payments, and forecast the rent as everyday
-- spending.
CREATE TABLE forecast_charges (
    user_id         text NOT NULL,
    transaction_id  text NOT NULL,
    account_id      text NOT NULL,
    category        text NOT NULL,
    merchant_key    text NOT NULL,
    display         text NOT NULL,
    amount          numeric(14, 2) NOT NULL,
    at              timestamp NOT NULL,  -- local wall time, as the transaction's offset says
    PRIMARY KEY (user_id, transaction_id)
);
CREATE INDEX forecast_charges_user_time ON forecast_charges (user_id, at);
CREATE INDEX forecast_charges_time ON forecast_charges (at);

INSERT INTO forecast_charges
SELECT t.user_id, t.transaction_id, t.account_id,
       CASE WHEN t.category_source = 'provided' AND t.category IS NOT NULL
            THEN t.category ELSE 'Uncategorized' END,
       t.merchant_key, coalesce(nullif(t.merchant, ''), t.merchant_key), t.amount,
       (t.ts AT TIME ZONE 'UTC') + make_interval(mins => t.utc_offset_minutes::int)
FROM transactions t
JOIN counted_transactions c USING (user_id, transaction_id)
WHERE t.direction = 'debit' AND t.merchant_key IS NOT NULL AND t.merchant_key <> ''
ON CONFLICT DO NOTHING;
