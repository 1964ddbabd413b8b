-- How far the cluster refresher has read transactions (by transactions.seq). Kept in memory
-- before, so every forecaster start re-clustered every user who ever had a transaction: minutes
-- of a core after a restart, for answers that had not changed.
CREATE TABLE cluster_progress (
    id        integer PRIMARY KEY CHECK (id = 1),
    last_seq  bigint NOT NULL
);
INSERT INTO cluster_progress (id, last_seq) VALUES (1, 0);
