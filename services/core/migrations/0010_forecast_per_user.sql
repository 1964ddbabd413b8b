-- Each user's newest forecast. A run forecasts everyone (the scheduled refresh) or only the users
-- whose data changed since (a per-user refresh with the last fitted model), so "the newest run"
-- is a per-user question.
ALTER TABLE forecast_runs ADD COLUMN scope text NOT NULL DEFAULT 'all'
    CHECK (scope IN ('all', 'users'));

CREATE TABLE forecast_latest (
    user_id     text PRIMARY KEY,
    run_id      text NOT NULL REFERENCES forecast_runs (run_id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Which months of a forecast are bills (recurring payments at their amount), for the dashboard.
ALTER TABLE forecast_months ADD COLUMN bills numeric(16, 2) NOT NULL DEFAULT 0;

INSERT INTO forecast_latest (user_id, run_id, created_at)
SELECT DISTINCT ON (m.user_id) m.user_id, m.run_id, r.created_at
FROM forecast_months m JOIN forecast_runs r USING (run_id)
ORDER BY m.user_id, r.created_at DESC;
