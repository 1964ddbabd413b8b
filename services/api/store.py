"""The query API's SQL. Every query is scoped to the caller's user_id and parameterized."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_TRANSACTION_COLUMNS = """
    t.transaction_id, t.account_id, t.ts, t.amount, t.direction, t.currency, t.merchant,
    t.description, t.category, t.category_source, t.category_confidence, t.channel, t.country,
    t.metadata, t.ingested_at,
    s.score, s.is_anomaly, s.severity, s.detector_scores, s.explanation, s.model_version,
    s.scored_at
"""


@dataclass(frozen=True)
class TransactionFilter:
    account_id: str | None = None
    category: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    after: tuple[datetime, str] | None = None  # keyset position: (ts, transaction_id)


async def list_transactions(
    pool: asyncpg.Pool, user_id: str, filters: TransactionFilter, limit: int
) -> list[asyncpg.Record]:
    """Newest first. Only the predicates in use are added, so the planner can use the indexes."""
    clauses, params = ["t.user_id = $1"], [user_id]

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if filters.account_id is not None:
        clauses.append(f"t.account_id = {bind(filters.account_id)}")
    if filters.category is not None:
        clauses.append(f"t.category = {bind(filters.category)}")
    if filters.since is not None:
        clauses.append(f"t.ts >= {bind(filters.since)}")
    if filters.until is not None:
        clauses.append(f"t.ts < {bind(filters.until)}")
    if filters.min_score is not None:
        clauses.append(f"s.score >= {bind(filters.min_score)}")
    if filters.after is not None:
        ts, transaction_id = filters.after
        clauses.append(f"(t.ts, t.transaction_id) < ({bind(ts)}, {bind(transaction_id)})")
    join = "JOIN" if filters.min_score is not None else "LEFT JOIN"
    sql = f"""
        SELECT {_TRANSACTION_COLUMNS}
        FROM transactions t {join} scores s USING (user_id, transaction_id)
        WHERE {" AND ".join(clauses)}
        ORDER BY t.ts DESC, t.transaction_id DESC
        LIMIT {bind(limit)}"""  # noqa: S608 -- only fixed clause templates; values are bound
    return list(await pool.fetch(sql, *params))


@dataclass(frozen=True)
class AnomalyFilter:
    account_id: str | None = None
    category: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    after: tuple[float, str] | None = None  # keyset position: (score, transaction_id)


async def list_anomalies(
    pool: asyncpg.Pool, user_id: str, filters: AnomalyFilter, limit: int
) -> list[asyncpg.Record]:
    """Highest score first, through the partial index on anomalies."""
    clauses, params = ["s.user_id = $1", "s.is_anomaly"], [user_id]

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if filters.account_id is not None:
        clauses.append(f"t.account_id = {bind(filters.account_id)}")
    if filters.category is not None:
        clauses.append(f"t.category = {bind(filters.category)}")
    if filters.since is not None:
        clauses.append(f"t.ts >= {bind(filters.since)}")
    if filters.until is not None:
        clauses.append(f"t.ts < {bind(filters.until)}")
    if filters.min_score is not None:
        clauses.append(f"s.score >= {bind(filters.min_score)}")
    if filters.after is not None:
        score, transaction_id = filters.after
        clauses.append(
            f"(s.score, s.transaction_id) < ({bind(score)}::real, {bind(transaction_id)})"
        )
    sql = f"""
        SELECT {_TRANSACTION_COLUMNS}, f.label AS feedback
        FROM scores s JOIN transactions t USING (user_id, transaction_id)
        LEFT JOIN feedback f USING (user_id, transaction_id)
        WHERE {" AND ".join(clauses)}
        ORDER BY s.score DESC, s.transaction_id DESC
        LIMIT {bind(limit)}"""  # noqa: S608 -- only fixed clause templates; values are bound
    return list(await pool.fetch(sql, *params))


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


async def latest_forecast_run(pool: asyncpg.Pool) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM forecast_runs ORDER BY created_at DESC LIMIT 1")


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
