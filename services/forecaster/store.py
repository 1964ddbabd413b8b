"""The forecaster's SQL: daily spend per (user, account, category), counted once per transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from schemas import BudgetAlert, CategoryRename, Direction, TransactionChange, TransactionEvent
from services.core.text import normalize_text
from services.forecaster.ledger import UNCATEGORIZED, Counted, Key, Ledger

_RECORDS = """
SELECT c.user_id, c.transaction_id, c.account_id, c.category, c.series, c.day, c.spent,
       c.received, c.revision, c.state, c.user_category, c.currency
FROM unnest($1::text[], $2::text[]) AS k(user_id, transaction_id)
JOIN counted_transactions c USING (user_id, transaction_id)
ORDER BY c.user_id, c.transaction_id
FOR UPDATE OF c
"""

# Units of the user's base currency per unit of the transaction's, on its local day (NULL: none
# known; see fx_convert in the migrations).
_RATES = """
SELECT fx_convert(1, k.currency, coalesce(u.base_currency, 'USD'), k.day) AS rate
FROM unnest($1::text[], $2::text[], $3::date[]) WITH ORDINALITY AS k(user_id, currency, day, i)
LEFT JOIN users u USING (user_id)
ORDER BY k.i
"""

_ADD_DELTAS = """
INSERT INTO daily_spend AS d (user_id, account_id, category, day, spent, received, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::numeric[],
                     $6::numeric[], $7::int[])
ON CONFLICT (user_id, account_id, category, day) DO UPDATE
SET spent = d.spent + excluded.spent,
    received = d.received + excluded.received,
    n = d.n + excluded.n
"""

_SAVE_RECORDS = """
INSERT INTO counted_transactions AS c (user_id, transaction_id, account_id, category, series,
    day, spent, received, revision, state, user_category, currency, counted_at)
SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::date[], $7::numeric[], $8::numeric[], $9::int[], $10::text[], $11::bool[], $12::text[])
ON CONFLICT (user_id, transaction_id) DO UPDATE
SET account_id = excluded.account_id, category = excluded.category, series = excluded.series,
    day = excluded.day, spent = excluded.spent, received = excluded.received,
    revision = excluded.revision, state = excluded.state,
    user_category = excluded.user_category, currency = excluded.currency, counted_at = now()
"""

_UPSERT_CHARGES = """
INSERT INTO forecast_charges AS f
    (user_id, transaction_id, account_id, category, merchant_key, display, amount, at, excluded)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::numeric[], $8::timestamp[], $9::bool[])
ON CONFLICT (user_id, transaction_id) DO UPDATE
SET account_id = excluded.account_id, category = excluded.category,
    merchant_key = excluded.merchant_key, display = excluded.display, amount = excluded.amount,
    at = excluded.at, excluded = excluded.excluded
"""

_RESTATE_CHARGES = """
UPDATE forecast_charges f SET category = k.series, excluded = k.excluded
FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
    AS k(user_id, transaction_id, series, excluded)
WHERE f.user_id = k.user_id AND f.transaction_id = k.transaction_id
"""

_DROP_CHARGES = """
DELETE FROM forecast_charges f USING unnest($1::text[], $2::text[]) AS k(user_id, transaction_id)
WHERE f.user_id = k.user_id AND f.transaction_id = k.transaction_id
"""


# A rename moves the account's counted amounts from the old name (and its per-currency series,
# "Old (JPY)") to the new one, merging where the new name has amounts already.
_SERIES_OF = """(category = $3 OR (length(category) = length($3) + 6
                   AND left(category, length($3) + 2) = $3 || ' (' AND right(category, 1) = ')'))"""
_RENAME_SERIES = f"""
WITH moved AS (
    DELETE FROM daily_spend WHERE user_id = $1 AND account_id = $2 AND {_SERIES_OF}
    RETURNING user_id, account_id, $4 || substr(category, length($3) + 1) AS category, day,
              spent, received, n
)
INSERT INTO daily_spend AS d (user_id, account_id, category, day, spent, received, n)
SELECT user_id, account_id, category, day, sum(spent), sum(received), sum(n)
FROM moved GROUP BY 1, 2, 3, 4
ON CONFLICT (user_id, account_id, category, day) DO UPDATE
SET spent = d.spent + excluded.spent, received = d.received + excluded.received,
    n = d.n + excluded.n
"""  # noqa: S608 -- fixed fragments only
_RENAME_RECORDS = """
UPDATE counted_transactions SET category = $4, series = $4 || substr(series, length($3) + 1)
WHERE user_id = $1 AND account_id = $2 AND category = $3
"""
_RENAME_CHARGES = f"""
UPDATE forecast_charges SET category = $4 || substr(category, length($3) + 1)
WHERE user_id = $1 AND account_id = $2 AND {_SERIES_OF}
"""  # noqa: S608 -- fixed fragments only


async def _rename(conn: asyncpg.Connection, rename: CategoryRename) -> None:
    args = (rename.user_id, rename.account_id, rename.old_name, rename.new_name)
    for statement in (_RENAME_SERIES, _RENAME_RECORDS, _RENAME_CHARGES):
        await conn.execute(statement, *args)


async def _aliased(
    conn: asyncpg.Connection, events: list[TransactionEvent]
) -> list[TransactionEvent]:
    """Categories sent under a name the user has since renamed take the new name."""
    users = sorted({e.user_id for e in events if e.category})
    if not users:
        return events
    rows = await conn.fetch(
        "SELECT user_id, old_name, new_name FROM category_aliases WHERE user_id = ANY($1::text[])",
        users,
    )
    aliases = {(r["user_id"], r["old_name"]): r["new_name"] for r in rows}
    return [
        e.model_copy(update={"category": aliases[(e.user_id, e.category)]})
        if e.category is not None and (e.user_id, e.category) in aliases
        else e
        for e in events
    ]


def _record(row: asyncpg.Record) -> Counted:
    return Counted(
        account_id=row["account_id"] or "",
        category=row["category"] or UNCATEGORIZED,
        series=row["series"] or UNCATEGORIZED,
        day=row["day"] or date.min,
        spent=row["spent"],
        received=row["received"],
        revision=row["revision"],
        state=row["state"],
        user_category=row["user_category"],
        currency=row["currency"],
    )


async def _rates(conn: asyncpg.Connection, events: list[TransactionEvent]) -> list[Any]:
    rows = await conn.fetch(
        _RATES,
        [e.user_id for e in events],
        [e.currency for e in events],
        [e.timestamp.date() for e in events],
    )
    return [r["rate"] for r in rows]


async def apply_to_daily_spend(
    pool: asyncpg.Pool, batch: Sequence[TransactionEvent | TransactionChange | CategoryRename]
) -> None:
    """Fold transactions, their revisions and changes into daily spend, in order, in one
    database transaction. Days are each transaction's local calendar day.

    Renames go first: every category still sent under an old name is read under its new one
    (the alias is written before the rename is published), so before or after makes no odds."""
    if not batch:
        return
    async with pool.acquire() as conn, conn.transaction():
        for rename in [i for i in batch if isinstance(i, CategoryRename)]:
            await _rename(conn, rename)
        events = await _aliased(conn, [i for i in batch if isinstance(i, TransactionEvent)])
        renamed = iter(events)
        items = [
            next(renamed) if isinstance(i, TransactionEvent) else i
            for i in batch
            if not isinstance(i, CategoryRename)
        ]
        if not items:
            return
        keys = sorted({(i.user_id, i.transaction_id) for i in items})
        rows = await conn.fetch(_RECORDS, [k[0] for k in keys], [k[1] for k in keys])
        ledger = Ledger({(r["user_id"], r["transaction_id"]): _record(r) for r in rows})
        rates = dict(zip(map(id, events), await _rates(conn, events), strict=True))
        latest: dict[Key, TransactionEvent] = {}
        for item in items:
            if isinstance(item, TransactionEvent):
                ledger.event(item, rates[id(item)])
                latest[(item.user_id, item.transaction_id)] = item
            else:
                ledger.change(item)
        await _write(conn, ledger, latest)


async def _write(
    conn: asyncpg.Connection, ledger: Ledger, latest: dict[Key, TransactionEvent]
) -> None:
    deltas = [(*k, *v) for k, v in ledger.deltas.items() if v[2] or v[0] or v[1]]
    await _execute(conn, _ADD_DELTAS, deltas, 7)
    touched = sorted(ledger.touched)
    records = [ledger.records[k] for k in touched]
    # Counted's fields are in the column order of _SAVE_RECORDS
    rows = [(*k, *r.columns()) for k, r in zip(touched, records, strict=True)]
    await _execute(conn, _SAVE_RECORDS, rows, 12)
    gone = [k for k, r in zip(touched, records, strict=True) if r.state == "removed"]
    await _execute(conn, _DROP_CHARGES, gone, 2)
    charges, restated = [], []
    for key, record in zip(touched, records, strict=True):
        if record.state == "removed":
            continue
        event = latest.get(key)
        merchant = normalize_text(event.merchant or event.description) if event else None
        if event is not None and event.direction is Direction.debit and merchant:
            charges.append(
                (
                    *key,
                    record.account_id,
                    record.series,
                    merchant,
                    event.merchant or merchant,
                    record.spent,
                    event.timestamp.replace(tzinfo=None),
                    record.state == "excluded",
                )
            )
        else:
            restated.append((*key, record.series, record.state == "excluded"))
    await _execute(conn, _UPSERT_CHARGES, charges, 9)
    await _execute(conn, _RESTATE_CHARGES, restated, 4)


async def _execute(
    conn: asyncpg.Connection, statement: str, rows: Sequence[tuple[Any, ...]], width: int
) -> None:
    """``statement`` over ``rows``, passed as the column arrays ``unnest`` takes; nothing to
    send, no round trip."""
    if rows:
        await conn.execute(statement, *[[row[i] for row in rows] for i in range(width)])


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
               WHERE at >= $1::date AND NOT excluded
                 AND ($2::text[] IS NULL OR user_id = ANY($2))""",
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
        """SELECT user_id, max(seq) AS last FROM (
               SELECT user_id, seq FROM transactions WHERE seq > $1
               UNION ALL  -- edits and removals change a user's merchants and categories too
               SELECT user_id, seq FROM account_changes WHERE seq > $1) new
           GROUP BY user_id""",
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
