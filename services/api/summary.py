"""GET /v1/insights/summary: SQL aggregates for the month, pure insights for the patterns."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from services.analytics.budgets import lines_of
from services.analytics.insights import Charge, possible_duplicates, recurring_payments
from services.analytics.months import month_start
from services.api import store
from services.api.models import (
    BudgetMonth,
    CategoryTotal,
    DuplicateCharge,
    MerchantTotal,
    RecurringPayment,
    Summary,
)
from services.api.rows import budget_out
from services.core.budgets import month_inputs

ZERO = Decimal("0.00")
RECURRING_LOOKBACK_DAYS = 400  # long enough to see a yearly charge twice


def _change(now: Decimal, before: Decimal) -> float | None:
    return round(float((now - before) / before), 4) if before > 0 else None


async def build_summary(
    pool: asyncpg.Pool, user_id: str, month: str, account_id: str | None
) -> Summary:
    year, number = map(int, month.split("-"))
    start = datetime(year, number, 1)
    end = month_start(start.date(), 1)
    # Three independent queries at once, on connections of their own: the month's aggregates
    # and the debits the recurring payments are read from (up to 5,000 rows) overlap. Every
    # bound is local time, as the transactions were made: a month's summary sees nothing after
    # its last local day, so a past month's recurring payments are as they stood then.
    totals, (merchants, anomalies), recent = await asyncio.gather(
        store.monthly_totals(pool, user_id, account_id, month_start(start.date(), -3), end),
        store.month_detail(pool, user_id, account_id, start, end),
        store.recent_charges(
            pool, user_id, account_id, end - timedelta(days=RECURRING_LOOKBACK_DAYS), end
        ),
    )
    # Budgets are the user's, over every account: an account's summary does not show them.
    budgets = await budget_month(pool, user_id, start.date()) if account_id is None else None
    by_month: defaultdict[date, dict[str, tuple[Decimal, int]]] = defaultdict(dict)
    for row in totals:
        by_month[row["month"]][row["category"]] = (row["total"], row["n"])
    this = by_month.get(start.date(), {})
    previous = by_month.get(month_start(start.date(), -1).date(), {})
    before = [by_month.get(month_start(start.date(), -k).date(), {}) for k in (1, 2, 3)]
    categories = []
    for category in sorted(set(this) | set(previous), key=lambda c: -this.get(c, (ZERO, 0))[0]):
        total, n = this.get(category, (ZERO, 0))
        prior = previous.get(category, (ZERO, 0))[0]
        average = (sum((m.get(category, (ZERO, 0))[0] for m in before), ZERO) / 3).quantize(ZERO)
        categories.append(
            CategoryTotal(
                category=category,
                total=total,
                transactions=n,
                previous_month=prior,
                change_vs_previous=_change(total, prior),
                average_3_months=average,
                change_vs_3_month_average=_change(total, average),
            )
        )
    charges = [Charge(*r) for r in recent]  # columns in Charge's order
    in_month = [c for c in charges if start <= c.at < end and c.direction == "debit"]
    return Summary(
        month=month,
        account_id=account_id,
        total=sum((t for t, _ in this.values()), ZERO),
        previous_month_total=sum((t for t, _ in previous.values()), ZERO),
        categories=categories,
        top_merchants=[
            MerchantTotal(merchant=m["merchant"], total=m["total"], transactions=m["n"])
            for m in merchants
        ],
        anomalies=anomalies,
        recurring=[RecurringPayment(**r.__dict__) for r in recurring_payments(charges)],
        possible_duplicates=[
            DuplicateCharge(
                merchant=a.display,
                amount=a.amount,
                first_transaction_id=a.transaction_id,
                second_transaction_id=b.transaction_id,
                first_at=a.at,
                second_at=b.at,
            )
            for a, b in possible_duplicates(in_month)
        ],
        budgets=budgets.budgets if budgets else [],
    )


async def budget_month(pool: asyncpg.Pool, user_id: str, month: date) -> BudgetMonth:
    inputs = await month_inputs(pool, user_id, month, datetime.now(UTC).date())
    return BudgetMonth(
        month=f"{month:%Y-%m}",
        known_through=inputs.known_through,
        budgets=[budget_out(line) for line in lines_of(inputs)],
    )


def first_of(month: str | None) -> date:
    if month is None:
        return datetime.now(UTC).date().replace(day=1)
    year, number = map(int, month.split("-"))
    return date(year, number, 1)
