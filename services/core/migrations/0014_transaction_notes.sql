-- A person's own note on a transaction: exported with it, and set with PATCH /v1/transactions.
ALTER TABLE transactions ADD COLUMN note text;
