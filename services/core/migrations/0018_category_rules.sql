-- Corrections teach. A person's category for a transaction becomes their rule for its merchant:
-- later transactions there take it with confidence 1.0. A renamed or merged category is an alias:
-- transactions that still arrive under the old name take the new one.
CREATE TABLE category_rules (
    user_id       text NOT NULL,
    merchant_key  text NOT NULL,
    category      text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, merchant_key)
);

CREATE TABLE category_aliases (
    user_id     text NOT NULL,
    old_name    text NOT NULL,
    new_name    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, old_name)
);

ALTER TABLE transactions DROP CONSTRAINT transactions_category_source_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_category_source_check
    CHECK (category_source IN ('provided', 'predicted', 'none', 'user', 'rule'));
