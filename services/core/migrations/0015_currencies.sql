-- Currencies: amounts keep the decimals their currency has (ISO 4217 minor units: JPY 0, USD 2,
-- KWD 3), each user has a base currency, and dated exchange rates (imported, never fetched)
-- convert amounts to it at the rate of the transaction's own local date.
ALTER TABLE transactions ALTER COLUMN amount TYPE numeric;
ALTER TABLE transactions ADD CONSTRAINT transactions_amount_decimals CHECK (scale(amount) <= 3);
ALTER TABLE forecast_charges ALTER COLUMN amount TYPE numeric;
ALTER TABLE daily_spend ALTER COLUMN spent TYPE numeric, ALTER COLUMN received TYPE numeric;

ALTER TABLE users ADD COLUMN base_currency char(3) NOT NULL DEFAULT 'USD'
    CHECK (base_currency ~ '^[A-Z]{3}$');

-- Units of ``currency`` per one euro on ``day``: the ECB's reference rates as published.
CREATE TABLE fx_rates (
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    day         date NOT NULL,
    per_eur     numeric NOT NULL CHECK (per_eur > 0),
    PRIMARY KEY (currency, day)
);

-- The rate of ``currency`` on ``on_day``: the latest published on or before it, within a week
-- (rates are published on business days only). NULL when there is none.
CREATE FUNCTION fx_per_eur(currency text, on_day date) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN currency = 'EUR' THEN 1::numeric ELSE (
        SELECT r.per_eur FROM fx_rates r
        WHERE r.currency = fx_per_eur.currency AND r.day <= on_day AND r.day > on_day - 7
        ORDER BY r.day DESC LIMIT 1) END
$$;

-- ``amount`` in ``currency`` as ``base`` on ``on_day``; NULL when either rate is missing.
CREATE FUNCTION fx_convert(amount numeric, currency text, base text, on_day date) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN currency = base THEN amount
                ELSE amount * fx_per_eur(base, on_day) / fx_per_eur(currency, on_day) END
$$;
