"""Reading budgets against spending, shared by the query API (its budget page) and the
forecaster's budget job (its alerts): one definition of what is spent and forecast, so the page
and the alerts never disagree. The arithmetic on it is pure, in ``services.analytics.budgets``.

Spending is the user's debits in the category over the local calendar month, as the summary
counts them. The forecast is the user's newest.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import asyncpg

from schemas.currency import minor_units

ZERO = Decimal("0.00")
_LOCAL_TS = "((t.ts AT TIME ZONE 'UTC') + make_interval(mins => t.utc_offset_minutes::int))"


@dataclass(frozen=True)
class ForecastOfMonth:
    """One category's forecast for one calendar month: its daily medians, and the month total
    with its month-level interval."""

    days: list[tuple[date, Decimal]]
    p10: Decimal
    p50: Decimal
    p90: Decimal


@dataclass(frozen=True)
class BudgetInput:
    category: str
    amount: Decimal  # the month's budget: its override, or else the standing budget
    standing: Decimal | None  # the monthly budget, when one is set
    override: Decimal | None  # this month's own amount, when one is set
    spent: Decimal  # in the base currency
    forecast: ForecastOfMonth | None
    unconverted: dict[str, Decimal] = field(default_factory=dict)  # per currency without a rate


@dataclass(frozen=True)
class MonthInputs:
    month: date  # the 1st
    currency: str  # the user's base currency, which every amount is in
    known_through: date | None  # the last day of the month whose spending is in; None: no day yet
    budgets: list[BudgetInput] = field(default_factory=list)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def known_through(month: date, last_day: date | None, today: date) -> date | None:
    """The last day of ``month`` whose spending is in. The month is over once the calendar has
    left it (with a day's slack for every timezone), or once the user's transactions have."""
    last = next_month(month) - timedelta(days=1)
    if today - timedelta(days=1) > last or (last_day is not None and last_day > last):
        return last
    if last_day is None or last_day < month:
        return None
    return last_day


async def budgets_for_month(pool: asyncpg.Pool, user_id: str, month: date) -> list[asyncpg.Record]:
    """(category, amount, standing, override) of every budget that applies to ``month``."""
    return list(
        await pool.fetch(
            """SELECT category, coalesce(m.amount, b.amount) AS amount,
                      b.amount AS standing, m.amount AS override
               FROM (SELECT category, amount FROM budgets WHERE user_id = $1) b
               FULL JOIN (SELECT category, amount FROM budget_months
                          WHERE user_id = $1 AND month = $2) m USING (category)
               ORDER BY category""",
            user_id,
            month,
        )
    )


async def last_local_day(pool: asyncpg.Pool, user_id: str) -> date | None:
    """The local calendar day of the user's newest transaction."""
    value: date | None = await pool.fetchval(
        f"""SELECT {_LOCAL_TS}::date FROM transactions t
            WHERE t.user_id = $1 ORDER BY t.ts DESC LIMIT 1""",  # noqa: S608
        user_id,
    )
    return value


async def _spent(
    pool: asyncpg.Pool, user_id: str, month: date, categories: list[str], base: str
) -> tuple[dict[str, Decimal], dict[str, dict[str, Decimal]]]:
    """Per category: spent in the base currency at each transaction's local date's rate, and
    per currency what could not be converted for want of a rate."""
    rate = f"fx_convert(1, t.currency, $4, {_LOCAL_TS}::date)"
    rows = await pool.fetch(
        f"""SELECT coalesce(t.category, 'Uncategorized') AS category,
                   CASE WHEN {rate} IS NULL THEN t.currency END AS unconverted,
                   sum(t.amount * coalesce({rate}, 1)) AS spent
            FROM transactions t
            WHERE t.user_id = $1 AND t.direction = 'debit' AND NOT t.excluded
              AND coalesce(t.category, 'Uncategorized') = ANY($3::text[])
              AND t.ts >= ($2::date::timestamp AT TIME ZONE 'UTC') - interval '1 day'
              AND t.ts < (($2::date + interval '1 month') AT TIME ZONE 'UTC') + interval '1 day'
              AND {_LOCAL_TS} >= $2::date::timestamp
              AND {_LOCAL_TS} < $2::date + interval '1 month'
            GROUP BY 1, 2""",  # noqa: S608
        user_id,
        month,
        categories,
        base,
    )
    cent = Decimal(1).scaleb(-minor_units(base))
    spent = {r["category"]: r["spent"].quantize(cent) for r in rows if r["unconverted"] is None}
    unconverted: defaultdict[str, dict[str, Decimal]] = defaultdict(dict)
    for r in rows:
        if r["unconverted"] is not None:
            unconverted[r["category"]][r["unconverted"]] = r["spent"]
    return spent, unconverted


async def _forecasts(
    pool: asyncpg.Pool, user_id: str, month: date, categories: list[str]
) -> dict[str, ForecastOfMonth]:
    """The month in the user's newest forecast, per category, summed over accounts."""
    days, totals = await asyncio.gather(
        pool.fetch(
            """SELECT f.category, f.day, sum(f.p50) AS p50 FROM forecasts f
               WHERE f.run_id = (SELECT run_id FROM forecast_latest WHERE user_id = $1)
                 AND f.user_id = $1 AND f.category = ANY($3::text[])
                 AND f.day >= $2 AND f.day < $2 + interval '1 month'
               GROUP BY 1, 2 ORDER BY 1, 2""",
            user_id,
            month,
            categories,
        ),
        pool.fetch(
            """SELECT m.category, sum(m.p10) AS p10, sum(m.p50) AS p50, sum(m.p90) AS p90
               FROM forecast_months m
               WHERE m.run_id = (SELECT run_id FROM forecast_latest WHERE user_id = $1)
                 AND m.user_id = $1 AND m.category = ANY($3::text[]) AND m.month = $2
               GROUP BY 1""",
            user_id,
            month,
            categories,
        ),
    )
    by_category: defaultdict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for row in days:
        by_category[row["category"]].append((row["day"], row["p50"]))
    return {
        r["category"]: ForecastOfMonth(by_category[r["category"]], r["p10"], r["p50"], r["p90"])
        for r in totals
        if by_category[r["category"]]
    }


async def month_inputs(pool: asyncpg.Pool, user_id: str, month: date, today: date) -> MonthInputs:
    """Every budget of ``month`` (the 1st), with what is spent and what is forecast."""
    budgets, base = await asyncio.gather(
        budgets_for_month(pool, user_id, month),
        pool.fetchval("SELECT base_currency FROM users WHERE user_id = $1", user_id),
    )
    base = base or "USD"
    if not budgets:
        return MonthInputs(month, base, None)
    categories = [b["category"] for b in budgets]
    (spent, unconverted), forecasts, last_day = await asyncio.gather(
        _spent(pool, user_id, month, categories, base),
        _forecasts(pool, user_id, month, categories),
        last_local_day(pool, user_id),
    )
    items = [
        BudgetInput(
            b["category"],
            b["amount"],
            b["standing"],
            b["override"],
            spent.get(b["category"], ZERO),
            forecasts.get(b["category"]),
            unconverted.get(b["category"], {}),
        )
        for b in budgets
    ]
    return MonthInputs(month, base, known_through(month, last_day, today), items)
