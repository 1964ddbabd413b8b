"""Everything that depends on the calendar, at simulated dates.

The clocks below are the dates that broke or could break something: the last day of a month and
the 1st, 31 December and 1 January, 29 February 2028, and instants at which the local month and
the UTC month differ (the demo's personas live west of UTC; the boundary rows further down live
east of it too). The pure parts run under a frozen clock (time-machine); the API test takes
explicit dates, since the services run as processes with the real clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
import time_machine

from services.analytics.insights import Charge, recurring_payments
from services.api.models import RecurringPayment
from services.api.summary import RECURRING_LOOKBACK_DAYS, month_start
from services.core.text import normalize_text
from services.demo.generator import DemoRecord, default_end, generate
from services.demo.merchants import RENT
from services.forecaster.composition import charges_frame, train_and_forecast
from services.forecaster.forecasting import ForecastConfig
from services.scorer.drift import time_windows

CLOCKS = [
    pytest.param(datetime(2026, 11, 30, 18, 0, tzinfo=UTC), id="last-day-of-a-month"),
    pytest.param(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), id="first-of-a-month"),
    pytest.param(datetime(2026, 12, 31, 23, 59, tzinfo=UTC), id="31-december"),
    pytest.param(datetime(2027, 1, 1, 0, 1, tzinfo=UTC), id="1-january"),
    pytest.param(datetime(2028, 2, 29, 12, 0, tzinfo=UTC), id="29-february-2028"),
    # 19:00 on 30 November in Los Angeles, already December in UTC.
    pytest.param(datetime(2026, 12, 1, 3, 0, tzinfo=UTC), id="utc-month-ahead-of-local"),
    # 01:00 on 1 December in Auckland, still November in UTC.
    pytest.param(datetime(2026, 11, 30, 12, 0, tzinfo=UTC), id="utc-month-behind-local"),
]
RENT_LINES = {raw for merchant in RENT for raw in merchant.raw}


def local(record: DemoRecord) -> datetime:
    return datetime.fromisoformat(record.transaction["timestamp"])


def months_between(first: date, end: date) -> list[str]:
    """YYYY-MM of every month from ``first`` up to the one before ``end`` (exclusive)."""
    out, day = [], first.replace(day=1)
    while day < end:
        out.append(f"{day:%Y-%m}")
        day = month_start(day, 1).date()
    return out


@pytest.mark.parametrize("clock", CLOCKS)
def test_the_demo_by_default_ends_before_now_in_every_timezone(clock: datetime) -> None:
    with time_machine.travel(clock, tick=False):
        end = default_end()
        records = generate(2, 3, seed=23)
    assert end == (clock - timedelta(days=1)).date().replace(day=1)
    assert records, "three months of history"
    assert all(local(r).date() < end for r in records), "nothing on or after the end date"
    assert all(local(r) <= clock for r in records), "nothing in the future"
    assert min(local(r).date() for r in records) >= month_start(end, -3).date()
    months = months_between(month_start(end, -3).date(), end)
    for user in {r.user_id for r in records}:
        mine = [r for r in records if r.user_id == user and r.anomaly is None]
        rent = Counter(f"{local(r):%Y-%m}" for r in mine if r.transaction["merchant"] in RENT_LINES)
        salary = Counter(
            f"{local(r):%Y-%m}" for r in mine if r.transaction.get("category") == "Income"
        )
        assert rent == dict.fromkeys(months, 1), f"{user}: rent once a month, no month skipped"
        assert salary == dict.fromkeys(months, 2), f"{user}: paid on the 1st and the 15th"


@pytest.mark.parametrize("clock", CLOCKS)
def test_an_end_that_is_not_the_first_cuts_the_history_there(clock: datetime) -> None:
    end = clock.date()
    records = generate(2, 2, seed=5, end=end)
    last = max(local(r).date() for r in records)
    assert last < end
    assert last >= end - timedelta(days=3), "the history runs up to its end"
    refunds = [r for r in records if r.transaction["direction"] == "credit"]
    assert all(local(r).date() < end for r in refunds), "refunds never land past the end"


def debits(records: list[DemoRecord]) -> list[Charge]:
    return [
        Charge(
            r.transaction["transaction_id"],
            normalize_text(r.transaction["merchant"]),
            r.transaction["merchant"],
            float(r.transaction["amount"]),
            local(r).replace(tzinfo=None),
        )
        for r in records
        if r.transaction["direction"] == "debit" and r.anomaly is None
    ]


@pytest.mark.parametrize("clock", CLOCKS)
def test_rent_and_subscriptions_recur_across_every_boundary(clock: datetime) -> None:
    end = clock.date()
    records = [r for r in generate(1, 6, seed=23, end=end) if r.user_id == "demo-0001"]
    found = {r.merchant: r for r in recurring_payments(debits(records))}
    rent_line = next(r.transaction for r in records if r.transaction["merchant"] in RENT_LINES)
    rent = found[rent_line["merchant"]]
    assert rent.cadence == "monthly"
    assert rent.typical_amount == float(rent_line["amount"])
    assert rent.last_date.date() < end <= rent.next_expected.date() + timedelta(days=4)
    subscriptions = {
        r.transaction["merchant"]
        for r in records
        if r.transaction.get("category") == "Subscriptions" and r.anomaly is None
    }
    assert subscriptions <= set(found), "every subscription is found"


@pytest.mark.parametrize("clock", CLOCKS)
def test_drift_windows_are_exact_spans_of_days(clock: datetime) -> None:
    windows = time_windows(clock, timedelta(hours=24), current_days=7, reference_days=28)
    assert clock <= windows.end < clock + timedelta(hours=24)
    assert (windows.end.hour, windows.end.minute) == (0, 0), "windows end at midnight UTC"
    assert windows.end - windows.current_start == timedelta(days=7)
    assert windows.current_start - windows.reference_start == timedelta(days=28)


def daily_history(last_day: date, days: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    dates = pd.date_range(end=pd.Timestamp(last_day), periods=days, freq="D")
    rows = [
        ("u1", "card", category, day, level * (1.5 if day.weekday() >= 5 else 1) * rng.lognormal())
        for category, level in (("Groceries", 40.0), ("Dining", 15.0))
        for day in dates
    ]
    return pd.DataFrame(rows, columns=["user_id", "account_id", "category", "day", "spent"])


@pytest.mark.parametrize("clock", CLOCKS)
def test_forecasts_start_the_next_day_and_months_are_calendar_months(clock: datetime) -> None:
    history_end = clock.date()
    run = train_and_forecast(
        daily_history(history_end),
        charges_frame([]),
        ForecastConfig(horizon=35),
        n_folds=1,
        max_rows=20_000,
    ).forecast
    assert run.history_end == history_end
    # From the next day through the end of the month 35 days reach: whole months only.
    reached = history_end + timedelta(days=35)
    last = (reached.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    expected_days = pd.date_range(history_end + timedelta(days=1), last, freq="D")
    assert list(run.days) == list(expected_days)
    per_month = Counter(f"{d:%Y-%m}" for d in expected_days)
    for row in run.months:
        assert row.days == per_month[f"{row.month:%Y-%m}"], f"{row.month:%Y-%m} counts its own days"
        assert row.month.day == 1
        assert 0 <= row.p10 <= row.p50 <= row.p90


def test_month_arithmetic_across_the_year_and_a_leap_day() -> None:
    assert month_start(date(2026, 12, 31), 1) == datetime(2027, 1, 1)
    assert month_start(date(2027, 1, 1), -1) == datetime(2026, 12, 1)
    assert month_start(date(2028, 2, 29), 0) == datetime(2028, 2, 1)
    assert month_start(date(2028, 2, 29), 1) == datetime(2028, 3, 1)
    assert month_start(date(2026, 1, 15), -13) == datetime(2024, 12, 1)


# The summary through the real stack ------------------------------------------------------------

# Rows on month boundaries whose local month differs from their UTC month, east and west of UTC.
BOUNDARY_ROWS = [
    ("2025-11-30T23:45:00-05:00", "61.00"),  # November here, December in UTC
    ("2025-12-01T00:15:00+14:00", "62.00"),  # December here, November in UTC
    ("2025-12-31T23:30:00-08:00", "63.00"),  # December here, January in UTC
    ("2026-01-01T00:30:00+13:00", "64.00"),  # January here, December in UTC
]
SUMMARY_END = date(2026, 1, 18)  # "today" for this history: January is the partial month


def boundary_transactions() -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": f"boundary-{i}",
            "account_id": "credit-card",
            "timestamp": ts,
            "amount": amount,
            "merchant": "NIGHT OWL DINER",
            "category": "Dining",
            "channel": "card",
        }
        for i, (ts, amount) in enumerate(BOUNDARY_ROWS)
    ]


def expected_summary(rows: list[dict[str, Any]], month: str) -> dict[str, Any]:
    """The summary's totals, top merchants and recurring payments, by the pure functions."""
    start = datetime.strptime(month, "%Y-%m")
    end = month_start(start.date(), 1)
    previous = f"{month_start(start.date(), -1):%Y-%m}"
    spent: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    names: defaultdict[str, set[str]] = defaultdict(set)
    totals: defaultdict[str, Decimal] = defaultdict(Decimal)
    counts: Counter[str] = Counter()
    charges = []
    for row in rows:
        at = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=None)  # local time
        if not (row["merchant"] or row["description"]):
            continue
        key = normalize_text(row["merchant"] or row["description"]) or "unknown"
        if end - timedelta(days=RECURRING_LOOKBACK_DAYS) <= at < end:
            display = row["merchant"] or key
            charges.append(
                Charge(
                    row["transaction_id"], key, display, float(row["amount"]), at, row["direction"]
                )
            )
        if row["direction"] != "debit":
            continue
        # No exchange rates are loaded for these dates: another currency is a category of its
        # own, in its own currency, and in no total or top merchant (tests/test_currencies.py).
        category = row["category"] or "Uncategorized"
        foreign = row["currency"] != "USD"
        spent[f"{at:%Y-%m}", f"{category} ({row['currency']})" if foreign else category] += Decimal(
            row["amount"]
        )
        if f"{at:%Y-%m}" == month and not foreign:
            names[key] |= {row["merchant"]} - {None}
            totals[key] += Decimal(row["amount"])
            counts[key] += 1
    top = sorted(totals, key=lambda k: -totals[k])[:5]
    return {
        "total": sum((v for (m, c), v in spent.items() if m == month and "(" not in c), Decimal(0)),
        "previous_month_total": sum(
            (v for (m, c), v in spent.items() if m == previous and "(" not in c), Decimal(0)
        ),
        "categories": {c: v for (m, c), v in spent.items() if m == month},
        "top_merchants": [(min(names[k], default=k), totals[k], counts[k]) for k in top],
        "recurring": [
            RecurringPayment(**r.__dict__).model_dump(mode="json")
            for r in recurring_payments(charges)
        ],
    }


@pytest.mark.integration
async def test_summary_equals_the_pure_functions_over_the_stored_rows(stack, new_user) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from services.demo.loader import post_records
    from services.devstack.stack import service_url
    from tests.polling import poll_until
    from tests.test_pipeline import all_transactions, auth

    user, key = await new_user("calendar")
    records = [
        DemoRecord(user, r.transaction, r.anomaly)
        for r in generate(1, 5, seed=23, end=SUMMARY_END)
        if r.user_id == "demo-0001"
    ]
    records += [DemoRecord(user, tx) for tx in boundary_transactions()]
    await post_records(records, service_url(stack.settings, "ingest"), {user: key})
    api = service_url(stack.settings, "api")
    async with httpx.AsyncClient(timeout=60) as client:

        async def all_in() -> bool:
            return len(await all_transactions(client, api, key)) == len(records)

        await poll_until(all_in, within_s=120)
        rows = await all_transactions(client, api, key)
        sent = {r.transaction["transaction_id"]: r.transaction["timestamp"] for r in records}
        back = {row["transaction_id"]: row["timestamp"] for row in rows}
        assert back == sent, "timestamps come back as sent, in their own offset"
        accounts = (await client.get(f"{api}/v1/accounts", headers=auth(key))).json()
        assert {(a["first_month"], a["last_month"]) for a in accounts} >= {("2025-08", "2026-01")}

        # past months, the year boundary both ways, the current partial month, a month ahead
        for month in ("2025-10", "2025-11", "2025-12", "2026-01", "2026-02"):
            got = (
                await client.get(
                    f"{api}/v1/insights/summary", params={"month": month}, headers=auth(key)
                )
            ).json()
            want = expected_summary(rows, month)
            assert Decimal(got["total"]) == want["total"], month
            assert Decimal(got["previous_month_total"]) == want["previous_month_total"], month
            categories = {
                c["category"]: Decimal(c["total"]) for c in got["categories"] if c["transactions"]
            }
            assert categories == want["categories"], month
            top = [
                (m["merchant"], Decimal(m["total"]), m["transactions"])
                for m in got["top_merchants"]
            ]
            assert top == want["top_merchants"], month
            assert got["recurring"] == want["recurring"], month
            if month <= "2026-01":
                assert want["top_merchants"], f"{month} has spending"
                cadences = {r["merchant"]: r["cadence"] for r in got["recurring"]}
                assert any(m in RENT_LINES for m in cadences), f"{month}: the rent recurs"
                income = [r for r in got["recurring"] if r["direction"] == "credit"]
                assert income, f"{month}: the salary is income"
