-- Accounts whose stored transactions changed after they were stored (a revision, an edit, a
-- removal), numbered in the same sequence as transactions.seq. The drift watcher and the cluster
-- job follow new data by that sequence, so they see a change as new data of its account at the
-- changed transaction's time, and recompute what it touched.
CREATE TABLE account_changes (
    seq         bigint PRIMARY KEY
                DEFAULT nextval(pg_get_serial_sequence('transactions', 'seq')::regclass),
    user_id     text NOT NULL,
    account_id  text NOT NULL,
    ts          timestamptz NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
