"""Month forecasts composed of recurring bills and everyday spending, calibrated at the month
level: pure tests of the forecaster's composition, with explicit dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from services.core.text import normalize_text
from services.demo.generator import generate
from services.forecaster.composition import (
    CHARGE_COLUMNS,
    KEYS,
    MAX_MONTH_MULTIPLE,
    Forecaster,
    Household,
    everyday_scale,
    forecast_household,
    forecast_window,
    largest_months,
    train_and_forecast,
)
from services.forecaster.forecasting import Conformal, ForecastConfig, Panel, fit

CONFIG = ForecastConfig(horizon=30, n_estimators=120)


def frames(charges: list[tuple[object, ...]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily debits per series, and the charges themselves, from (user, account, category,
    merchant, amount, local time) rows."""
    rows = [
        (user, account, category, normalize_text(merchant), merchant, amount, at)
        for user, account, category, merchant, amount, at in charges
    ]
    charge_frame = pd.DataFrame(rows, columns=list(CHARGE_COLUMNS))
    daily = (
        charge_frame.assign(day=charge_frame["at"].dt.date)
        .groupby([*KEYS, "day"], as_index=False)["amount"]
        .sum()
        .rename(columns={"amount": "spent"})
    )
    return daily, charge_frame


def household(
    first: date, last: date, rent: float = 2860.0, skip: set[str] | None = None, seed: int = 0
) -> list[tuple[object, ...]]:
    """Rent on the 1st (some months skipped), streaming at a new price, groceries most days."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[object, ...]] = []
    day = first
    while day <= last:
        at = datetime.combine(day, datetime.min.time())
        if day.day == 1 and f"{day:%Y-%m}" not in (skip or set()):
            rows.append(("u1", "checking", "Rent", "GREYSTAR RENT", rent, at + timedelta(hours=9)))
        if day.day == 12:
            price = 15.49 if day >= date(2026, 8, 1) else 12.99
            rows.append(("u1", "card", "Subscriptions", "NETFLIX.COM", price, at))
        if rng.random() < 0.6:
            amount = round(float(rng.lognormal(3.3, 0.4)), 2)
            rows.append(
                ("u1", "card", "Groceries", "TRADER JOES", amount, at + timedelta(hours=18))
            )
        day += timedelta(days=1)
    return rows


def month_of(run_forecast: object, category: str, month: date) -> object:
    rows = [
        r
        for r in run_forecast.months  # type: ignore[attr-defined]
        if r.key[2] == category and r.month == month
    ]
    assert len(rows) == 1, f"one {category} row for {month}"
    return rows[0]


def test_a_fixed_rent_is_forecast_at_its_amount_even_after_a_skipped_month() -> None:
    daily, charges = frames(household(date(2025, 11, 1), date(2026, 10, 31), skip={"2026-06"}))
    run = train_and_forecast(daily, charges, CONFIG, n_folds=2, max_rows=50_000)
    rent = month_of(run.forecast, "Rent", date(2026, 11, 1))
    assert rent.days == 30
    assert rent.p50 == pytest.approx(2860.0, rel=0.05)
    assert rent.bills == pytest.approx(2860.0)
    assert rent.p10 <= rent.p50 <= rent.p90 <= 2860.0 * 1.05
    # The bill lands on its day, not smeared over the month.
    index = run.forecast.keys.index(("u1", "checking", "Rent"))
    first = run.forecast.days.get_loc(pd.Timestamp("2026-11-01"))
    assert run.forecast.daily[index, first, 1] == pytest.approx(2860.0, rel=0.01)
    assert run.forecast.daily[index, first + 1 :, 1].sum() < 50


def test_a_subscription_after_a_price_rise_is_forecast_at_the_new_price() -> None:
    daily, charges = frames(household(date(2025, 11, 1), date(2026, 10, 31)))
    run = train_and_forecast(daily, charges, CONFIG, n_folds=2, max_rows=50_000)
    streaming = month_of(run.forecast, "Subscriptions", date(2026, 11, 1))
    assert streaming.bills == pytest.approx(15.49)
    assert streaming.p50 == pytest.approx(15.49, abs=1.0)


def test_everyday_spending_is_forecast_near_its_monthly_level() -> None:
    daily, charges = frames(household(date(2025, 11, 1), date(2026, 10, 31)))
    run = train_and_forecast(daily, charges, CONFIG, n_folds=2, max_rows=50_000)
    groceries = month_of(run.forecast, "Groceries", date(2026, 11, 1))
    recent = daily[(daily.category == "Groceries") & (daily.day >= date(2026, 8, 1))]
    per_month = recent.spent.sum() / 3
    assert groceries.bills == 0
    assert groceries.p50 == pytest.approx(per_month, rel=0.25)
    assert groceries.p10 < groceries.p50 < groceries.p90


def test_no_month_p90_exceeds_three_times_the_largest_month_on_record() -> None:
    daily, charges = frames(household(date(2025, 11, 1), date(2026, 10, 31)))
    panel = Panel.from_long(daily, KEYS, "day", "spent")
    fitted = fit(panel, CONFIG, max_rows=50_000)
    wild = Forecaster(fitted, Conformal(-1.0, 50.0, 10), horizon_days=30)
    forecast = forecast_household(wild, Household.at(panel, charges, len(panel.dates)))
    largest = dict(zip(panel.keys, largest_months(panel), strict=True))
    for row in forecast.months:
        assert row.p90 <= MAX_MONTH_MULTIPLE * largest[row.key] * row.days / 30 + 0.01


@pytest.mark.parametrize(
    ("history_end", "first", "last", "days"),
    [
        (date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 31), 31),
        (date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 31), 30),
        (date(2026, 12, 15), date(2026, 12, 16), date(2027, 1, 31), 47),
        (date(2028, 1, 31), date(2028, 2, 1), date(2028, 3, 31), 60),
    ],
)
def test_the_forecast_window_ends_with_a_whole_month(
    history_end: date, first: date, last: date, days: int
) -> None:
    start, end = forecast_window(history_end, 30)
    assert (start, end - timedelta(days=1), (end - start).days) == (first, last, days)


def demo_frames(users: int, months: int, end: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for record in generate(users=users, months=months, seed=11, end=end):
        t = record.transaction
        if t["direction"] != "debit" or not t.get("merchant"):
            continue
        at = datetime.fromisoformat(t["timestamp"]).replace(tzinfo=None)
        category = t.get("category") or "Uncategorized"
        rows.append(
            (record.user_id, t["account_id"], category, t["merchant"], float(t["amount"]), at)
        )
    return frames(rows)


@pytest.mark.slow
def test_on_the_demo_the_model_beats_both_baselines_with_calibrated_intervals() -> None:
    daily, charges = demo_frames(users=10, months=12, end=date(2026, 11, 1))
    run = train_and_forecast(
        daily, charges, ForecastConfig(horizon=30), n_folds=3, max_rows=200_000
    )
    result = run.backtest
    assert result.n_folds == 3
    assert result.model["mase"] < result.last_month["mase"]
    assert result.model["mase"] < result.seasonal_naive["mase"]
    assert 0.7 <= result.model["coverage_80"] <= 0.9
    # Every demo persona pays rent on the 1st: next month's rent is forecast at its amount.
    rents = [r for r in run.forecast.months if r.key[2] == "Rent"]
    assert rents and all(r.p50 == pytest.approx(r.bills, rel=0.05) and r.bills > 0 for r in rents)


def test_a_series_quiet_lately_keeps_the_interval_of_its_usual_spending() -> None:
    days = pd.date_range("2026-01-01", "2026-10-31", freq="D")
    values = np.zeros((2, len(days)))
    values[0, ::10] = 100.0  # about 300 a month, every month
    values[1, : len(days) - 120 : 10] = 100.0  # the same until four months ago, then nothing
    panel = Panel([("u1", "card", "Dining"), ("u1", "card", "Travel")], days, values, KEYS)
    dining, travel = everyday_scale(panel)
    assert dining == pytest.approx(300.0, rel=0.05)
    # Three quiet months are no promise of a quiet fourth: its usual rate still counts (the
    # last 90 days alone would give it the floor of 1, an interval of a dollar).
    assert travel == pytest.approx(values[1].mean() * 30)
    assert travel > 150


def households_with_a_utility(users: int, first: date, last: date) -> list[tuple[object, ...]]:
    """Groceries most days, and a utility bill on the 27th that varies between 110 and 130."""
    rng = np.random.default_rng(5)
    rows: list[tuple[object, ...]] = []
    for n in range(users):
        day = first
        while day <= last:
            at = datetime.combine(day, datetime.min.time())
            if day.day == 27:
                amount = round(float(rng.uniform(110, 130)), 2)
                rows.append((f"u{n}", "checking", "Utilities", "CITY POWER", amount, at))
            if rng.random() < 0.5:
                amount = round(float(rng.lognormal(3.3, 0.5)), 2)
                rows.append((f"u{n}", "card", "Groceries", "CORNER MARKET", amount, at))
            day += timedelta(days=1)
    return rows


@pytest.mark.slow
def test_month_intervals_hold_a_bill_that_varies_and_the_spending_beside_it() -> None:
    """A utility's higher month is one more draw, not a new price, and its range is wide enough
    to hold the next; the everyday interval is calibrated on series that have everyday spending,
    not narrowed by the bills-only ones (together these held 38% of months, not 80%)."""
    daily, charges = frames(households_with_a_utility(40, date(2025, 11, 1), date(2026, 10, 31)))
    run = train_and_forecast(daily, charges, CONFIG, n_folds=3, max_rows=100_000)
    assert 0.7 <= run.backtest.model["coverage_80"] <= 0.9
