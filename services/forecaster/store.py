"""The forecaster's SQL: daily spend per (user, account, category), counted once per transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from schemas import Direction, TransactionEvent

UNCATEGORIZED = "Uncategorized"

# Only transactions not counted before reach the aggregate, so re-delivery adds nothing.
_ADD_TO_DAILY_SPEND = """
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[],
                         $6::numeric[], $7::numeric[])
        AS t(user_id, transaction_id, account_id, category, day, spent, received)
), fresh AS (
    INSERT INTO counted_transactions (user_id, transaction_id)
    SELECT user_id, transaction_id FROM incoming
    ON CONFLICT DO NOTHING
    RETURNING user_id, transaction_id
)
INSERT INTO daily_spend AS d (user_id, account_id, category, day, spent, received, n)
SELECT i.user_id, i.account_id, i.category, i.day, sum(i.spent), sum(i.received), count(*)
FROM incoming i JOIN fresh f USING (user_id, transaction_id)
GROUP BY i.user_id, i.account_id, i.category, i.day
ON CONFLICT (user_id, account_id, category, day) DO UPDATE
SET spent = d.spent + excluded.spent,
    received = d.received + excluded.received,
    n = d.n + excluded.n
"""


async def add_to_daily_spend(pool: asyncpg.Pool, events: Sequence[TransactionEvent]) -> None:
    """Days are the transaction's local calendar day, as its timestamp's offset says."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            _ADD_TO_DAILY_SPEND,
            [e.user_id for e in events],
            [e.transaction_id for e in events],
            [e.account_id for e in events],
            [e.category or UNCATEGORIZED for e in events],
            [e.timestamp.date() for e in events],
            [e.amount if e.direction is Direction.debit else 0 for e in events],
            [e.amount if e.direction is Direction.credit else 0 for e in events],
        )
