-- Monthly budgets per category, optional overrides for single months, and the budget alerts
-- raised so far. budget_alerts is also an outbox: a row is written before its event is published
-- and marked once the broker acknowledged it, so a crash in between re-publishes it (with the same
-- alert id) instead of losing it.
CREATE TABLE budgets (
    user_id     text NOT NULL,
    category    text NOT NULL,
    amount      numeric(16, 2) NOT NULL CHECK (amount > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, category)
);

CREATE TABLE budget_months (
    user_id     text NOT NULL,
    category    text NOT NULL,
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    amount      numeric(16, 2) NOT NULL CHECK (amount > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, category, month)
);

CREATE TABLE budget_alerts (
    alert_id      text PRIMARY KEY,
    user_id       text NOT NULL,
    category      text NOT NULL,
    month         date NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('reached_80', 'reached_100', 'projected_over')),
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (user_id, category, month, kind)
);
CREATE INDEX budget_alerts_unpublished ON budget_alerts (created_at) WHERE published_at IS NULL;
