"""The forecaster's SQL: daily spend per (user, account, category), counted once per transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from schemas import BudgetAlert, Direction, TransactionEvent
from services.core.text import normalize_text

UNCATEGORIZED = "Uncategorized"

# Only transactions not counted before reach the aggregate, so re-delivery adds nothing.
# Amounts are kept in the user's base currency, at the rate of the transaction's local date. A
# transaction with no known rate keeps its own amount in a series of its own, "Travel (JPY)":
# forecasts never add up amounts of different currencies.
_IN_BASE = """
    SELECT i.*, fx_convert(1, i.currency, coalesce(u.base_currency, 'USD'), i.day) AS rate
    FROM incoming i LEFT JOIN users u USING (user_id)
"""
_SERIES = "CASE WHEN rate IS NULL THEN category || ' (' || currency || ')' ELSE category END"

_ADD_TO_DAILY_SPEND = f"""
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[],
                         $6::numeric[], $7::numeric[], $8::text[])
        AS t(user_id, transaction_id, account_id, category, day, spent, received, currency)
), valued AS ({_IN_BASE}
), fresh AS (
    INSERT INTO counted_transactions (user_id, transaction_id)
    SELECT user_id, transaction_id FROM incoming
    ON CONFLICT DO NOTHING
    RETURNING user_id, transaction_id
)
INSERT INTO daily_spend AS d (user_id, account_id, category, day, spent, received, n)
SELECT v.user_id, v.account_id, {_SERIES}, v.day,
       sum(v.spent * coalesce(v.rate, 1)), sum(v.received * coalesce(v.rate, 1)), count(*)
FROM valued v JOIN fresh f USING (user_id, transaction_id)
GROUP BY 1, 2, 3, 4
ON CONFLICT (user_id, account_id, category, day) DO UPDATE
SET spent = d.spent + excluded.spent,
    received = d.received + excluded.received,
    n = d.n + excluded.n
"""  # noqa: S608 -- fixed fragments only


_ADD_CHARGES = f"""
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::numeric[], $8::timestamp[], $9::text[])
        AS t(user_id, transaction_id, account_id, category, merchant_key, display, amount, at,
             currency)
), dated AS (
    SELECT *, at::date AS day FROM incoming
), valued AS ({_IN_BASE.replace("incoming i", "dated i")}
)
INSERT INTO forecast_charges
    (user_id, transaction_id, account_id, category, merchant_key, display, amount, at)
SELECT user_id, transaction_id, account_id, {_SERIES}, merchant_key, display,
       amount * coalesce(rate, 1), at
FROM valued
ON CONFLICT DO NOTHING
"""  # noqa: S608 -- fixed fragments only


async def add_to_daily_spend(pool: asyncpg.Pool, events: Sequence[TransactionEvent]) -> None:
    """Days are the transaction's local calendar day, as its timestamp's offset says. Debits
    are also kept with their merchant, in the same transaction, to find recurring bills in."""
    named = [
        (e, key)
        for e in events
        if e.direction is Direction.debit and (key := normalize_text(e.merchant or e.description))
    ]
    debits, keys = [e for e, _ in named], [key for _, key in named]
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
            [e.currency for e in events],
        )
        await conn.execute(
            _ADD_CHARGES,
            [e.user_id for e in debits],
            [e.transaction_id for e in debits],
            [e.account_id for e in debits],
            [e.category or UNCATEGORIZED for e in debits],
            keys,
            [e.merchant or key for e, key in zip(debits, keys, strict=True)],
            [e.amount for e in debits],
            [e.timestamp.replace(tzinfo=None) for e in debits],
            [e.currency for e in debits],
        )


async def daily_debits(
    pool: asyncpg.Pool, users: Sequence[str] | None = None
) -> list[asyncpg.Record]:
    """Everyone's daily debits, or only those of ``users``."""
    return list(
        await pool.fetch(
            """SELECT user_id, account_id, category, day, spent::float8 AS spent
               FROM daily_spend
               WHERE spent > 0 AND ($1::text[] IS NULL OR user_id = ANY($1))
               ORDER BY day""",
            None if users is None else list(users),
        )
    )


async def charges(
    pool: asyncpg.Pool, since: date, users: Sequence[str] | None = None
) -> list[asyncpg.Record]:
    """Debits from ``since`` on, in composition.CHARGE_COLUMNS: the series, the merchant, the
    amount and the local time."""
    return list(
        await pool.fetch(
            """SELECT user_id, account_id, category, merchant_key, display,
                      amount::float8 AS amount, at
               FROM forecast_charges
               WHERE at >= $1::date AND ($2::text[] IS NULL OR user_id = ANY($2))""",
            since,
            None if users is None else list(users),
        )
    )


async def users_counted_since(pool: asyncpg.Pool, since: datetime) -> list[str]:
    """Users with transactions counted after ``since``: whose forecasts are out of date."""
    rows = await pool.fetch(
        "SELECT DISTINCT user_id FROM counted_transactions WHERE counted_at > $1", since
    )
    return [r["user_id"] for r in rows]


async def history_days_of(pool: asyncpg.Pool, users: Sequence[str]) -> dict[str, int]:
    rows = await pool.fetch(
        """SELECT user_id, max(day) - min(day) + 1 AS days FROM daily_spend
           WHERE user_id = ANY($1) GROUP BY user_id""",
        list(users),
    )
    return {r["user_id"]: int(r["days"]) for r in rows}


async def latest_full_run(pool: asyncpg.Pool) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """SELECT run_id, created_at, backtest FROM forecast_runs WHERE scope = 'all'
           ORDER BY created_at DESC LIMIT 1"""
    )


async def latest_run(pool: asyncpg.Pool) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """SELECT run_id, created_at FROM forecast_runs WHERE scope = 'all'
           ORDER BY created_at DESC LIMIT 1"""
    )


async def counted_since(pool: asyncpg.Pool, since: datetime | None) -> int:
    if since is None:
        return int(await pool.fetchval("SELECT count(*) FROM counted_transactions"))
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM counted_transactions WHERE counted_at > $1", since
        )
    )


async def history_days(pool: asyncpg.Pool) -> int:
    span = await pool.fetchval("SELECT max(day) - min(day) + 1 FROM daily_spend")
    return int(span or 0)


async def save_run(
    conn: asyncpg.Connection,
    run: dict[str, Any],
    daily: list[tuple[Any, ...]],
    monthly: list[tuple[Any, ...]],
) -> None:
    """Store a run and make it the newest forecast of every user it covers; per-user runs that
    no user points to any more are dropped."""
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO forecast_runs (run_id, horizon_days, history_start, history_end,
                   n_series, training_rows, backtest, duration_s, scope)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            run["run_id"],
            run["horizon_days"],
            run["history_start"],
            run["history_end"],
            run["n_series"],
            run["training_rows"],
            run["backtest"],
            run["duration_s"],
            run.get("scope", "all"),
        )
        await conn.copy_records_to_table(
            "forecasts",
            records=daily,
            columns=["run_id", "user_id", "account_id", "category", "day", "p10", "p50", "p90"],
        )
        await conn.copy_records_to_table(
            "forecast_months",
            records=monthly,
            columns=[
                "run_id",
                "user_id",
                "account_id",
                "category",
                "month",
                "days",
                "p10",
                "p50",
                "p90",
                "bills",
            ],
        )
        await conn.execute(
            """INSERT INTO forecast_latest (user_id, run_id)
               SELECT DISTINCT user_id, run_id FROM forecast_months WHERE run_id = $1
               ON CONFLICT (user_id) DO UPDATE
               SET run_id = excluded.run_id, created_at = now()""",
            run["run_id"],
        )
        await conn.execute(
            """DELETE FROM forecast_runs r WHERE r.scope = 'users' AND NOT EXISTS
                   (SELECT 1 FROM forecast_latest l WHERE l.run_id = r.run_id)"""
        )


async def cluster_progress(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT last_seq FROM cluster_progress WHERE id = 1"))


async def set_cluster_progress(pool: asyncpg.Pool, last_seq: int) -> None:
    await pool.execute("UPDATE cluster_progress SET last_seq = $1 WHERE id = 1", last_seq)


async def users_changed_since(pool: asyncpg.Pool, after_seq: int) -> tuple[list[str], int]:
    rows = await pool.fetch(
        "SELECT user_id, max(seq) AS last FROM transactions WHERE seq > $1 GROUP BY user_id",
        after_seq,
    )
    return [r["user_id"] for r in rows], max((r["last"] for r in rows), default=after_seq)


async def user_texts(pool: asyncpg.Pool, user_id: str, limit: int = 2_000) -> list[str]:
    """The user's distinct merchant keys and category names."""
    rows = await pool.fetch(
        """SELECT text FROM (
               SELECT merchant_key AS text, count(*) AS n FROM transactions
               WHERE user_id = $1 AND merchant_key IS NOT NULL AND merchant_key <> ''
               GROUP BY merchant_key
               UNION ALL
               SELECT lower(category), count(*) FROM transactions
               WHERE user_id = $1 AND category IS NOT NULL GROUP BY lower(category)) t
           GROUP BY text ORDER BY sum(n) DESC LIMIT $2""",
        user_id,
        limit,
    )
    return [r["text"] for r in rows]


async def replace_clusters(
    pool: asyncpg.Pool, user_id: str, clusters: list[dict[str, Any]], threshold: float
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM category_clusters WHERE user_id = $1", user_id)
        await conn.executemany(
            """INSERT INTO category_clusters (user_id, cluster_id, label, size, members, threshold)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [
                (user_id, i, c["label"], len(c["members"]), c["members"], threshold)
                for i, c in enumerate(clusters)
            ],
        )


# Budget alerts ----------------------------------------------------------------------------------


async def budget_users_live(pool: asyncpg.Pool, live_within: timedelta) -> list[asyncpg.Record]:
    """(user_id, last_day) of every user with a budget whose newest transaction arrived live
    (ingested within ``live_within`` of happening), with that transaction's local day: an import
    of last year raises no budget alerts for last year."""
    return list(
        await pool.fetch(
            """SELECT u.user_id, last.local_day AS last_day
               FROM (SELECT user_id FROM budgets UNION SELECT user_id FROM budget_months) u
               CROSS JOIN LATERAL (
                   SELECT ((t.ts AT TIME ZONE 'UTC')
                           + make_interval(mins => t.utc_offset_minutes::int))::date AS local_day,
                          t.ingested_at - t.ts <= $1 AS live
                   FROM transactions t WHERE t.user_id = u.user_id
                   ORDER BY t.ts DESC LIMIT 1) last
               WHERE last.live""",
            live_within,
        )
    )


async def record_budget_alert(pool: asyncpg.Pool, alert: BudgetAlert) -> bool:
    """Keep the alert in the outbox unless it was raised before; True if it is new."""
    inserted = await pool.fetchval(
        """INSERT INTO budget_alerts (alert_id, user_id, category, month, kind, payload)
           VALUES ($1, $2, $3, to_date($4, 'YYYY-MM'), $5, $6)
           ON CONFLICT DO NOTHING RETURNING true""",
        alert.alert_id,
        alert.user_id,
        alert.category,
        alert.month,
        alert.kind,
        alert.model_dump(mode="json"),
    )
    return bool(inserted)


async def unpublished_budget_alerts(pool: asyncpg.Pool, limit: int = 1_000) -> list[BudgetAlert]:
    rows = await pool.fetch(
        """SELECT payload FROM budget_alerts WHERE published_at IS NULL
           ORDER BY created_at LIMIT $1""",
        limit,
    )
    return [BudgetAlert.model_validate(r["payload"]) for r in rows]


async def mark_budget_alert_published(pool: asyncpg.Pool, alert_id: str) -> None:
    await pool.execute(
        "UPDATE budget_alerts SET published_at = now() WHERE alert_id = $1", alert_id
    )
