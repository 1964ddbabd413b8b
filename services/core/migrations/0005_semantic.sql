-- Semantic categories: normalized merchant keys, the embedding cache, and clusters.

ALTER TABLE transactions ADD COLUMN merchant_key text;
CREATE INDEX transactions_merchant_key
    ON transactions (user_id, merchant_key, stored_at DESC) WHERE category_source = 'provided';

CREATE TABLE text_embeddings (
    text        text NOT NULL,
    model       text NOT NULL,
    embedding   real[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (text, model)
);

CREATE TABLE category_clusters (
    user_id     text NOT NULL,
    cluster_id  integer NOT NULL,
    label       text NOT NULL,
    size        integer NOT NULL,
    members     jsonb NOT NULL,
    threshold   real NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, cluster_id)
);
