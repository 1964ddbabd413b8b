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
    CurrencyTotal,
    DuplicateCharge,
    MerchantTotal,
    RecurringPayment,
    Summary,
)
from services.api.rows import budget_out
from services.core.budgets import month_inputs
from services.core.money import minor_units

ZERO = Decimal("0.00")
RECURRING_LOOKBACK_DAYS = 400  # long enough to see a yearly charge twice


def _change(now: Decimal, before: Decimal) -> float | None:
    return round(float((now - before) / before), 4) if before > 0 else None


def _money(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-minor_units(currency)))


def category_totals(totals: list[asyncpg.Record], month: date, base: str) -> list[CategoryTotal]:
    """Each category of the month against the month before and the three before, largest first.
    A category whose amounts could not be converted comes on its own, in its own currency."""
    by_month: defaultdict[date, dict[str, tuple[Decimal, int]]] = defaultdict(dict)
    currency_of: dict[str, str] = {}
    for row in totals:
        by_month[row["month"]][row["category"]] = (row["total"], row["n"])
        currency_of[row["category"]] = row["currency"]
    this = by_month.get(month, {})
    previous = by_month.get(month_start(month, -1).date(), {})
    before = [by_month.get(month_start(month, -k).date(), {}) for k in (1, 2, 3)]
    categories = []
    for category in sorted(set(this) | set(previous), key=lambda c: -this.get(c, (ZERO, 0))[0]):
        currency = currency_of.get(category, base)
        total = _money(this.get(category, (ZERO, 0))[0], currency)
        prior = _money(previous.get(category, (ZERO, 0))[0], currency)
        average = _money(sum((m.get(category, (ZERO, 0))[0] for m in before), ZERO) / 3, currency)
        categories.append(
            CategoryTotal(
                category=category,
                currency=currency,
                total=total,
                transactions=this.get(category, (ZERO, 0))[1],
                previous_month=prior,
                change_vs_previous=_change(total, prior),
                average_3_months=average,
                change_vs_3_month_average=_change(total, average),
            )
        )
    return categories


def currency_note(base: str, converted: list[str], missing: list[str]) -> str | None:
    if not converted:
        return None
    note = (
        f"Amounts in {', '.join(converted)} are converted to {base} at the reference rate of "
        "each transaction's date."
    )
    if missing:
        note += (
            f" No rate is known for some in {', '.join(missing)} (spendstream fx import): "
            "those are shown in their own currency and left out of the totals."
        )
    return note


async def build_summary(
    pool: asyncpg.Pool, user_id: str, month: str, account_id: str | None
) -> Summary:
    year, number = map(int, month.split("-"))
    start = datetime(year, number, 1)
    end = month_start(start.date(), 1)
    base = await store.base_currency(pool, user_id)

    # Independent queries at once, on connections of their own: the month's aggregates and the
    # debits the recurring payments are read from (up to 5,000 rows) overlap. Every bound is
    # local time, as the transactions were made: a month's summary sees nothing after its last
    # local day, so a past month's recurring payments are as they stood then.
    async def user_budgets() -> BudgetMonth | None:
        # Budgets are the user's, over every account: an account's summary does not show them.
        return await budget_month(pool, user_id, start.date()) if account_id is None else None

    totals, (merchants, anomalies), recent, (converted, missing), budgets = await asyncio.gather(
        store.monthly_totals(pool, user_id, account_id, month_start(start.date(), -3), end, base),
        store.month_detail(pool, user_id, account_id, start, end, base),
        store.recent_charges(
            pool, user_id, account_id, end - timedelta(days=RECURRING_LOOKBACK_DAYS), end
        ),
        store.converted_currencies(pool, user_id, base, start, end),
        user_budgets(),
    )
    categories = category_totals(totals, start.date(), base)
    in_base = [c for c in categories if c.currency == base]
    unconverted: defaultdict[str, Decimal] = defaultdict(Decimal)
    for c in categories:
        if c.currency != base:
            unconverted[c.currency] += c.total
    charges = [Charge(*r) for r in recent]  # columns in Charge's order
    in_month = [c for c in charges if start <= c.at < end and c.direction == "debit"]
    return Summary(
        month=month,
        account_id=account_id,
        currency=base,
        currency_note=currency_note(base, converted, missing),
        total=sum((c.total for c in in_base), ZERO),
        previous_month_total=sum((c.previous_month for c in in_base), ZERO),
        unconverted=[CurrencyTotal(currency=k, total=v) for k, v in sorted(unconverted.items())],
        categories=categories,
        top_merchants=[
            MerchantTotal(
                merchant=m["merchant"], total=_money(m["total"], base), transactions=m["n"]
            )
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
        currency=inputs.currency,
        known_through=inputs.known_through,
        budgets=[budget_out(line) for line in lines_of(inputs)],
    )


def first_of(month: str | None) -> date:
    if month is None:
        return datetime.now(UTC).date().replace(day=1)
    year, number = map(int, month.split("-"))
    return date(year, number, 1)
