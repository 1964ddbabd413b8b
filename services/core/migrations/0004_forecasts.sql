-- Forecast runs with their backtests, and the forecasts themselves, daily and per month.

ALTER TABLE counted_transactions ADD COLUMN counted_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX counted_transactions_at ON counted_transactions (counted_at);

CREATE TABLE forecast_runs (
    run_id        text PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    horizon_days  integer NOT NULL,
    history_start date NOT NULL,
    history_end   date NOT NULL,
    n_series      integer NOT NULL,
    training_rows integer NOT NULL,
    backtest      jsonb NOT NULL,
    duration_s    real NOT NULL
);
CREATE INDEX forecast_runs_created ON forecast_runs (created_at DESC);

CREATE TABLE forecasts (
    run_id      text NOT NULL REFERENCES forecast_runs (run_id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    account_id  text NOT NULL,
    category    text NOT NULL,
    day         date NOT NULL,
    p10         numeric(16, 2) NOT NULL,
    p50         numeric(16, 2) NOT NULL,
    p90         numeric(16, 2) NOT NULL,
    PRIMARY KEY (run_id, user_id, account_id, category, day)
);
CREATE INDEX forecasts_user ON forecasts (user_id, run_id);

CREATE TABLE forecast_months (
    run_id      text NOT NULL REFERENCES forecast_runs (run_id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    account_id  text NOT NULL,
    category    text NOT NULL,
    month       date NOT NULL,
    days        integer NOT NULL,
    p10         numeric(16, 2) NOT NULL,
    p50         numeric(16, 2) NOT NULL,
    p90         numeric(16, 2) NOT NULL,
    PRIMARY KEY (run_id, user_id, account_id, category, month)
);
