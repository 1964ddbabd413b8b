"""The query API's SQL. Every query is scoped to the caller's user_id and parameterized."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

_TRANSACTION_COLUMNS = """
    t.transaction_id, t.account_id, t.ts, t.amount, t.direction, t.currency, t.merchant,
    t.description, t.category, t.category_source, t.category_confidence, t.channel, t.country,
    t.metadata, t.ingested_at, t.utc_offset_minutes, t.revision, t.status, t.note, t.excluded,
    t.display_merchant,
    s.score, s.is_anomaly, s.historical, s.severity, s.detector_scores, s.explanation,
    s.model_version, s.scored_at
"""


@dataclass(frozen=True)
class ListFilter:
    account_id: str | None = None
    category: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    after: tuple[Any, str] | None = None  # keyset position: (sort value, transaction_id)


class _Query:
    """WHERE clauses from fixed templates with bound values; only the predicates in use are
    added, so the planner can use the indexes."""

    def __init__(self, *clauses: str, user_id: str):
        self.clauses = list(clauses)
        self.params: list[Any] = [user_id]

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def filter(self, f: ListFilter) -> _Query:
        if f.account_id is not None:
            self.clauses.append(f"t.account_id = {self.bind(f.account_id)}")
        if f.category is not None:
            self.clauses.append(f"t.category = {self.bind(f.category)}")
        if f.since is not None:
            self.clauses.append(f"t.ts >= {self.bind(f.since)}")
        if f.until is not None:
            self.clauses.append(f"t.ts < {self.bind(f.until)}")
        if f.min_score is not None:
            self.clauses.append(f"s.score >= {self.bind(f.min_score)}")
        return self

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses)


async def list_transactions(
    pool: asyncpg.Pool, user_id: str, filters: ListFilter, limit: int
) -> list[asyncpg.Record]:
    """Newest first."""
    q = _Query("t.user_id = $1", user_id=user_id).filter(filters)
    if filters.after is not None:
        ts, transaction_id = filters.after
        q.clauses.append(f"(t.ts, t.transaction_id) < ({q.bind(ts)}, {q.bind(transaction_id)})")
    join = "JOIN" if filters.min_score is not None else "LEFT JOIN"
    sql = f"""
        SELECT {_TRANSACTION_COLUMNS}
        FROM transactions t {join} scores s USING (user_id, transaction_id)
        WHERE {q.where}
        ORDER BY t.ts DESC, t.transaction_id DESC
        LIMIT {q.bind(limit)}"""  # noqa: S608 -- only fixed clause templates; values are bound
    return list(await pool.fetch(sql, *q.params))


async def list_anomalies(
    pool: asyncpg.Pool, user_id: str, filters: ListFilter, limit: int
) -> list[asyncpg.Record]:
    """Highest score first, through the partial index on anomalies."""
    q = _Query("s.user_id = $1", "s.is_anomaly", user_id=user_id).filter(filters)
    if filters.after is not None:
        score, transaction_id = filters.after
        q.clauses.append(
            f"(s.score, s.transaction_id) < ({q.bind(score)}::real, {q.bind(transaction_id)})"
        )
    sql = f"""
        SELECT {_TRANSACTION_COLUMNS}, f.label AS feedback
        FROM scores s JOIN transactions t USING (user_id, transaction_id)
        LEFT JOIN feedback f USING (user_id, transaction_id)
        WHERE {q.where}
        ORDER BY s.score DESC, s.transaction_id DESC
        LIMIT {q.bind(limit)}"""  # noqa: S608 -- only fixed clause templates; values are bound
    return list(await pool.fetch(sql, *q.params))


async def set_feedback(
    pool: asyncpg.Pool, user_id: str, transaction_id: str, label: str
) -> asyncpg.Record | None:
    """Store (or change) the user's verdict; None if the transaction is not theirs."""
    return await pool.fetchrow(
        """INSERT INTO feedback (user_id, transaction_id, label)
           SELECT user_id, transaction_id, $3 FROM transactions
           WHERE user_id = $1 AND transaction_id = $2
           ON CONFLICT (user_id, transaction_id)
           DO UPDATE SET label = excluded.label, updated_at = now()
           RETURNING transaction_id, label, updated_at""",
        user_id,
        transaction_id,
        label,
    )


async def account_of(pool: asyncpg.Pool, user_id: str, transaction_id: str) -> str | None:
    value: str | None = await pool.fetchval(
        "SELECT account_id FROM transactions WHERE user_id = $1 AND transaction_id = $2",
        user_id,
        transaction_id,
    )
    return value


async def get_transaction(
    pool: asyncpg.Pool, user_id: str, transaction_id: str
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"""SELECT {_TRANSACTION_COLUMNS}
            FROM transactions t LEFT JOIN scores s USING (user_id, transaction_id)
            WHERE t.user_id = $1 AND t.transaction_id = $2""",  # noqa: S608
        user_id,
        transaction_id,
    )


async def drift_series(
    pool: asyncpg.Pool,
    user_id: str,
    account_id: str | None,
    since: datetime | None,
    until: datetime | None,
    per_scope: int,
) -> list[asyncpg.Record]:
    """The caller's account scopes, the latest ``per_scope`` points of each, oldest first."""
    return list(
        await pool.fetch(
            """SELECT * FROM (
                   SELECT d.*, row_number() OVER (
                       PARTITION BY account_id ORDER BY window_end DESC) AS recency
                   FROM drift_metrics d
                   WHERE scope = 'account' AND user_id = $1
                     AND ($2::text IS NULL OR account_id = $2)
                     AND ($3::timestamptz IS NULL OR window_end >= $3)
                     AND ($4::timestamptz IS NULL OR window_end < $4)) ranked
               WHERE recency <= $5
               ORDER BY account_id, window_end""",
            user_id,
            account_id,
            since,
            until,
            per_scope,
        )
    )


async def latest_forecast_run(pool: asyncpg.Pool, user_id: str) -> asyncpg.Record | None:
    """The run that holds the user's newest forecasts."""
    return await pool.fetchrow(
        """SELECT r.* FROM forecast_latest l JOIN forecast_runs r USING (run_id)
           WHERE l.user_id = $1""",
        user_id,
    )


async def forecast_scope(
    pool: asyncpg.Pool, run_id: str, user_id: str
) -> tuple[asyncpg.Record | None, int]:
    """The caller's own history range, and how many users the full refresh whose backtest the
    run carries forecast."""
    history, users = await asyncio.gather(
        pool.fetchrow(
            """SELECT min(day) AS history_start, max(day) AS history_end
               FROM daily_spend WHERE user_id = $1""",
            user_id,
        ),
        pool.fetchval(
            """SELECT count(DISTINCT m.user_id) FROM forecast_months m
               WHERE m.run_id = (SELECT run_id FROM forecast_runs WHERE scope = 'all'
                                 AND created_at <= (SELECT created_at FROM forecast_runs
                                                    WHERE run_id = $1)
                                 ORDER BY created_at DESC LIMIT 1)""",
            run_id,
        ),
    )
    return history, int(users or 0)


async def forecasts(
    pool: asyncpg.Pool, run_id: str, user_id: str, account_id: str | None, category: str | None
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    where = """run_id = $1 AND user_id = $2 AND ($3::text IS NULL OR account_id = $3)
               AND ($4::text IS NULL OR category = $4)"""
    daily = await pool.fetch(
        f"SELECT * FROM forecasts WHERE {where} ORDER BY account_id, category, day",  # noqa: S608
        run_id,
        user_id,
        account_id,
        category,
    )
    monthly = await pool.fetch(
        f"SELECT * FROM forecast_months WHERE {where} ORDER BY account_id, category, month",  # noqa: S608
        run_id,
        user_id,
        account_id,
        category,
    )
    return list(daily), list(monthly)


async def category_clusters(pool: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM category_clusters WHERE user_id = $1 ORDER BY size DESC, cluster_id",
            user_id,
        )
    )


# Insights ---------------------------------------------------------------------------------------

_LOCAL_TS = "((t.ts AT TIME ZONE 'UTC') + make_interval(mins => t.utc_offset_minutes::int))"


def _in_base(base: str) -> tuple[str, str, str]:
    """SQL for a transaction's amount in the base currency (bound as ``base``, e.g. "$5") at
    the rate of its local date, its category, and the currency the amount is then in. Where no
    rate is known the amount stays in its own currency and its category says so, "Travel (JPY)":
    nothing is summed across currencies."""
    rate = f"fx_convert(1, t.currency, {base}, {_LOCAL_TS}::date)"
    category = "coalesce(t.category, 'Uncategorized')"
    return (
        f"t.amount * coalesce({rate}, 1)",
        f"CASE WHEN {rate} IS NULL THEN {category} || ' (' || t.currency || ')'"
        f" ELSE {category} END",
        f"CASE WHEN {rate} IS NULL THEN t.currency ELSE {base} END",
    )


async def base_currency(pool: asyncpg.Pool, user_id: str) -> str:
    value = await pool.fetchval("SELECT base_currency FROM users WHERE user_id = $1", user_id)
    return str(value) if value else "USD"


async def set_base_currency(pool: asyncpg.Pool, user_id: str, currency: str) -> None:
    await pool.execute(
        """INSERT INTO users (user_id, base_currency) VALUES ($1, $2)
           ON CONFLICT (user_id) DO UPDATE SET base_currency = excluded.base_currency""",
        user_id,
        currency,
    )


async def has_rates(pool: asyncpg.Pool, currency: str) -> bool:
    return bool(
        await pool.fetchval("SELECT EXISTS (SELECT 1 FROM fx_rates WHERE currency = $1)", currency)
    )


async def converted_currencies(
    pool: asyncpg.Pool, user_id: str, base: str, start: datetime, end: datetime
) -> tuple[list[str], list[str]]:
    """The currencies other than ``base`` among the user's transactions of [start, end) (local
    time): those converted at a known rate, and those shown on their own for want of one."""
    rate = f"fx_convert(1, t.currency, $2, {_LOCAL_TS}::date)"
    rows = await pool.fetch(
        f"""SELECT t.currency, bool_or({rate} IS NULL) AS missing
            FROM transactions t
            WHERE t.user_id = $1 AND t.currency <> $2
              AND t.ts >= ($3::timestamp AT TIME ZONE 'UTC') - interval '1 day'
              AND t.ts < ($4::timestamp AT TIME ZONE 'UTC') + interval '1 day'
              AND {_LOCAL_TS} >= $3::timestamp AND {_LOCAL_TS} < $4::timestamp
            GROUP BY 1 ORDER BY 1""",  # noqa: S608
        user_id,
        base,
        start.replace(tzinfo=None),
        end.replace(tzinfo=None),
    )
    return [r["currency"] for r in rows], [r["currency"] for r in rows if r["missing"]]


async def monthly_totals(
    pool: asyncpg.Pool,
    user_id: str,
    account_id: str | None,
    first: datetime,
    end: datetime,
    base: str,
) -> list[asyncpg.Record]:
    """Debits per local calendar month and category between ``first`` and ``end``, in the base
    currency (see ``_in_base``)."""
    amount, category, currency = _in_base("$5")
    return list(
        await pool.fetch(
            f"""SELECT date_trunc('month', {_LOCAL_TS})::date AS month, {category} AS category,
                       {currency} AS currency, sum({amount}) AS total, count(*) AS n
                FROM transactions t
                WHERE t.user_id = $1 AND ($2::text IS NULL OR t.account_id = $2)
                  AND t.direction = 'debit' AND NOT t.excluded
                  AND t.ts >= ($3::timestamp AT TIME ZONE 'UTC') - interval '1 day'
                  AND t.ts < ($4::timestamp AT TIME ZONE 'UTC') + interval '1 day'
                  AND {_LOCAL_TS} >= $3::timestamp AND {_LOCAL_TS} < $4::timestamp
                GROUP BY 1, 2, 3""",  # noqa: S608
            user_id,
            account_id,
            first.replace(tzinfo=None),
            end.replace(tzinfo=None),
            base,
        )
    )


async def month_detail(
    pool: asyncpg.Pool,
    user_id: str,
    account_id: str | None,
    start: datetime,
    end: datetime,
    base: str,
) -> tuple[list[asyncpg.Record], int]:
    """Top merchants (in the base currency) and the number of anomalies in one local month."""
    where = f"""t.user_id = $1 AND ($2::text IS NULL OR t.account_id = $2)
                AND t.ts >= ($3::timestamp AT TIME ZONE 'UTC') - interval '1 day'
                  AND t.ts < ($4::timestamp AT TIME ZONE 'UTC') + interval '1 day'
                AND {_LOCAL_TS} >= $3::timestamp AND {_LOCAL_TS} < $4::timestamp"""
    args = (user_id, account_id, start.replace(tzinfo=None), end.replace(tzinfo=None))
    rate = f"fx_convert(1, t.currency, $5, {_LOCAL_TS}::date)"
    merchants, anomalies = await asyncio.gather(
        pool.fetch(
            f"""SELECT coalesce(min(t.merchant), t.merchant_key) AS merchant,
                       sum(t.amount * {rate}) AS total, count(*) AS n
                FROM transactions t WHERE {where} AND t.direction = 'debit' AND NOT t.excluded
                  AND t.merchant_key IS NOT NULL AND {rate} IS NOT NULL
                GROUP BY t.merchant_key ORDER BY total DESC LIMIT 5""",  # noqa: S608
            *args,
            base,
        ),
        pool.fetchval(
            f"""SELECT count(*) FROM transactions t JOIN scores s USING (user_id, transaction_id)
                WHERE {where} AND s.is_anomaly""",  # noqa: S608
            *args,
        ),
    )
    return list(merchants), int(anomalies)


async def recent_charges(
    pool: asyncpg.Pool,
    user_id: str,
    account_id: str | None,
    since: datetime,
    until: datetime,
    limit: int = 5_000,
) -> list[asyncpg.Record]:
    """Debits and credits with a merchant whose local time lies in [since, until), newest
    first, in the columns of ``insights.Charge``."""
    return list(
        await pool.fetch(
            f"""SELECT t.transaction_id, t.merchant_key,
                       coalesce(nullif(t.merchant, ''), t.merchant_key) AS display,
                       t.amount::float8 AS amount, {_LOCAL_TS} AS local_ts, t.direction
                FROM transactions t
                WHERE t.user_id = $1 AND ($2::text IS NULL OR t.account_id = $2)
                  AND t.merchant_key IS NOT NULL AND NOT t.excluded
                  AND t.ts >= ($3::timestamp AT TIME ZONE 'UTC') - interval '1 day'
                  AND t.ts < ($4::timestamp AT TIME ZONE 'UTC') + interval '1 day'
                  AND {_LOCAL_TS} >= $3::timestamp AND {_LOCAL_TS} < $4::timestamp
                ORDER BY t.ts DESC LIMIT $5""",  # noqa: S608
            user_id,
            account_id,
            since.replace(tzinfo=None),
            until.replace(tzinfo=None),
            limit,
        )
    )


async def user_categories(pool: asyncpg.Pool, user_id: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT DISTINCT category FROM transactions WHERE user_id = $1 AND category IS NOT NULL",
        user_id,
    )
    return {r["category"] for r in rows}


async def budget_categories(pool: asyncpg.Pool, user_id: str) -> set[str]:
    rows = await pool.fetch(
        """SELECT category FROM budgets WHERE user_id = $1
           UNION SELECT category FROM budget_months WHERE user_id = $1""",
        user_id,
    )
    return {r["category"] for r in rows}


async def user_accounts(pool: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            f"""SELECT t.account_id, count(*) AS transactions, min(t.ts) AS first,
                       max(t.ts) AS last,
                       to_char(min({_LOCAL_TS}), 'YYYY-MM') AS first_month,
                       to_char(max({_LOCAL_TS}), 'YYYY-MM') AS last_month
                FROM transactions t WHERE t.user_id = $1
                GROUP BY t.account_id ORDER BY t.account_id""",  # noqa: S608
            user_id,
        )
    )


# Charts -----------------------------------------------------------------------------------------


async def latest_activity(pool: asyncpg.Pool, user_id: str) -> datetime | None:
    latest: datetime | None = await pool.fetchval(
        "SELECT max(ts) FROM transactions WHERE user_id = $1", user_id
    )
    return latest


async def weekly_spend(
    pool: asyncpg.Pool, user_id: str, account_id: str | None, since: datetime, base: str
) -> list[asyncpg.Record]:
    """Debits per local week and category, in the base currency (see ``_in_base``)."""
    amount, category, _ = _in_base("$4")
    return list(
        await pool.fetch(
            f"""SELECT date_trunc('week', {_LOCAL_TS})::date AS week,
                       {category} AS category, sum({amount})::float8 AS total
                FROM transactions t
                WHERE t.user_id = $1 AND ($2::text IS NULL OR t.account_id = $2)
                  AND t.direction = 'debit' AND NOT t.excluded AND t.ts >= $3
                GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608
            user_id,
            account_id,
            since,
            base,
        )
    )


async def anomaly_points(
    pool: asyncpg.Pool,
    user_id: str,
    account_id: str | None,
    since: datetime,
    anomalies: int = 500,
    sample: int = 1_500,
) -> list[asyncpg.Record]:
    """The anomalies, and a deterministic sample of everything else for context."""
    query = """SELECT t.transaction_id, t.ts AS timestamp, t.amount::float8 AS amount,
                      t.merchant, coalesce(t.category, 'Uncategorized') AS category,
                      s.score, s.explanation
               FROM transactions t JOIN scores s USING (user_id, transaction_id)
               WHERE t.user_id = $1 AND ($2::text IS NULL OR t.account_id = $2) AND t.ts >= $3
                 AND s.is_anomaly = $4
               ORDER BY {order} LIMIT $5"""
    flagged = await pool.fetch(
        query.format(order="s.score DESC"), user_id, account_id, since, True, anomalies
    )
    normal = await pool.fetch(
        query.format(order="hashtextextended(t.transaction_id, 0)"),
        user_id,
        account_id,
        since,
        False,
        sample,
    )
    return [*flagged, *normal]


async def cluster_points(pool: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            """SELECT c.label AS cluster, m.text, e.embedding
               FROM category_clusters c
               CROSS JOIN LATERAL jsonb_to_recordset(c.members) AS m(text text, similarity real)
               JOIN text_embeddings e ON e.text = m.text
               WHERE c.user_id = $1""",
            user_id,
        )
    )


async def forecast_by_category(
    pool: asyncpg.Pool, user_id: str, account_id: str | None
) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            """SELECT f.day, f.category, sum(f.p10)::float8 AS p10, sum(f.p50)::float8 AS p50,
                      sum(f.p90)::float8 AS p90
               FROM forecasts f
               WHERE f.run_id = (SELECT run_id FROM forecast_latest WHERE user_id = $1)
                 AND f.user_id = $1 AND ($2::text IS NULL OR f.account_id = $2)
               GROUP BY 1, 2 ORDER BY 1, 2""",
            user_id,
            account_id,
        )
    )


# Budgets ----------------------------------------------------------------------------------------


async def set_budget(
    pool: asyncpg.Pool, user_id: str, category: str, amount: Decimal, month: date | None
) -> None:
    """The standing monthly budget, or with ``month`` that month's own amount."""
    if month is None:
        await pool.execute(
            """INSERT INTO budgets (user_id, category, amount) VALUES ($1, $2, $3)
               ON CONFLICT (user_id, category)
               DO UPDATE SET amount = excluded.amount, updated_at = now()""",
            user_id,
            category,
            amount,
        )
        return
    await pool.execute(
        """INSERT INTO budget_months (user_id, category, month, amount) VALUES ($1, $2, $3, $4)
           ON CONFLICT (user_id, category, month)
           DO UPDATE SET amount = excluded.amount, updated_at = now()""",
        user_id,
        category,
        month,
        amount,
    )


async def delete_budget(pool: asyncpg.Pool, user_id: str, category: str, month: date | None) -> int:
    """Without ``month``: the category's budget and all its month overrides. With it: only that
    month's override. Returns how many rows went."""
    async with pool.acquire() as conn, conn.transaction():
        removed = await conn.fetchval(
            """WITH gone AS (DELETE FROM budget_months WHERE user_id = $1 AND category = $2
                             AND ($3::date IS NULL OR month = $3) RETURNING 1)
               SELECT count(*) FROM gone""",
            user_id,
            category,
            month,
        )
        if month is None:
            removed += await conn.fetchval(
                """WITH gone AS (DELETE FROM budgets WHERE user_id = $1 AND category = $2
                                 RETURNING 1)
                   SELECT count(*) FROM gone""",
                user_id,
                category,
            )
    return int(removed)


# Exports ----------------------------------------------------------------------------------------


async def stream_transactions(
    pool: asyncpg.Pool, user_id: str, filters: ListFilter, chunk: int = 2_000
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every transaction the filters match, oldest first, ``chunk`` rows at a time through a
    server-side cursor in one read-only snapshot: constant memory, and a consistent export."""
    q = _Query("t.user_id = $1", user_id=user_id).filter(filters)
    join = "JOIN" if filters.min_score is not None else "LEFT JOIN"
    sql = f"""
        SELECT {_TRANSACTION_COLUMNS}, t.source, f.label AS feedback
        FROM transactions t {join} scores s USING (user_id, transaction_id)
        LEFT JOIN feedback f USING (user_id, transaction_id)
        WHERE {q.where}
        ORDER BY t.ts, t.transaction_id"""  # noqa: S608 -- only fixed clause templates; values are bound
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(sql, *q.params)
        while rows := await cursor.fetch(chunk):
            yield rows


# Categories -------------------------------------------------------------------------------------


async def rename_category(
    conn: asyncpg.Connection, user_id: str, old: str, new: str
) -> tuple[bool, list[str]]:
    """In the caller's database transaction: make ``old`` an alias of ``new`` (merging budgets
    when ``new`` has some) and return whether ``new`` existed, and the user's accounts to rename
    in."""
    merged = bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM transactions WHERE user_id = $1 AND category = $2)
                   OR EXISTS (SELECT 1 FROM budgets WHERE user_id = $1 AND category = $2)""",
            user_id,
            new,
        )
    )
    await conn.execute(
        "DELETE FROM category_aliases WHERE user_id = $1 AND old_name = $2", user_id, new
    )
    await conn.execute(
        "UPDATE category_aliases SET new_name = $3 WHERE user_id = $1 AND new_name = $2",
        user_id,
        old,
        new,
    )
    await conn.execute(
        """INSERT INTO category_aliases (user_id, old_name, new_name) VALUES ($1, $2, $3)
           ON CONFLICT (user_id, old_name) DO UPDATE SET new_name = excluded.new_name""",
        user_id,
        old,
        new,
    )
    for table, key in (("budgets", ""), ("budget_months", ", month")):
        await conn.execute(
            f"""INSERT INTO {table} AS b (user_id, category{key}, amount)
                SELECT user_id, $3{key}, amount FROM {table} WHERE user_id = $1 AND category = $2
                ON CONFLICT (user_id, category{key})
                DO UPDATE SET amount = b.amount + excluded.amount, updated_at = now()""",  # noqa: S608
            user_id,
            old,
            new,
        )
        await conn.execute(
            f"DELETE FROM {table} WHERE user_id = $1 AND category = $2",  # noqa: S608
            user_id,
            old,
        )
    accounts = await conn.fetch(
        "SELECT DISTINCT account_id FROM transactions WHERE user_id = $1 ORDER BY 1", user_id
    )
    return merged, [r["account_id"] for r in accounts]
