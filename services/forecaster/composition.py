"""Month forecasts a person can check: recurring bills at their amount and date, plus a model of
everyday spending, with month-level intervals calibrated on the backtest. Pure: no Kafka, HTTP or
SQL.

Why the split: a rent of 2,860 paid on the 1st is zero on 29 days of 30, and a daily model's
median of such a series is close to zero every day, so summing daily medians forecast almost
nothing. The recurring detector already knows the rent's amount and date. The model then only
has to forecast what is left, which is the part that really varies.

Why month-level calibration: daily quantiles summed over a month assume every day lands at its
extreme together (far too wide), and combined as if days were independent they are far too narrow.
The month interval here is the spread of the model's own month-total errors on earlier folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from services.analytics.insights import Charge, Recurring, recurring_payments
from services.analytics.months import month_start
from services.forecaster.forecasting import (
    Conformal,
    FittedForecaster,
    ForecastConfig,
    Panel,
    fit,
)

KEYS = ("user_id", "account_id", "category")
CHARGE_COLUMNS = (*KEYS, "merchant_key", "display", "amount", "at")
MAX_MONTH_MULTIPLE = 3.0  # no month's p90 above this many times the largest month on record

SCALE_DAYS = 90

Key = tuple[str, ...]


def next_month(day: date) -> date:
    return month_start(day, 1).date()


def forecast_window(history_end: date, horizon_days: int) -> tuple[date, date]:
    """The days to forecast: from the day after the history to the end of the calendar month
    that ``horizon_days`` reaches, so every month forecast is a whole month."""
    return history_end + timedelta(days=1), next_month(history_end + timedelta(days=horizon_days))


def find_bills(charges: pd.DataFrame, before: datetime) -> dict[Key, list[Recurring]]:
    """Recurring debits per series, from the charges made before ``before``."""
    earlier = charges[charges["at"] < before]
    bills: dict[Key, list[Recurring]] = {}
    for key, group in earlier.groupby(list(KEYS), sort=False):
        found = recurring_payments(
            [
                Charge("", merchant, display, amount, at)
                for merchant, display, amount, at in zip(
                    group["merchant_key"],
                    group["display"],
                    group["amount"],
                    group["at"],
                    strict=True,
                )
            ]
        )
        debits = [r for r in found if r.direction == "debit"]
        if debits:
            bills[tuple(map(str, key))] = debits
    return bills


def bill_charges(charges: pd.DataFrame, bills: dict[Key, list[Recurring]]) -> pd.DataFrame:
    """The charges that belong to a detected bill: same series, same merchant."""
    members = {(*key, r.key) for key, found in bills.items() for r in found}
    if not members or charges.empty:
        return charges.iloc[0:0]
    tagged = pd.MultiIndex.from_frame(charges[[*KEYS, "merchant_key"]])
    return charges[tagged.isin(list(members))]


def everyday_panel(panel: Panel, bill_rows: pd.DataFrame) -> Panel:
    """The panel less the bills' own charges: what the model forecasts."""
    if bill_rows.empty:
        return panel
    index = {key: i for i, key in enumerate(panel.keys)}
    position = {day: t for t, day in enumerate(panel.dates.date)}
    values = panel.values.copy()
    for row in bill_rows.itertuples(index=False):
        i = index.get((str(row.user_id), str(row.account_id), str(row.category)))
        t = position.get(row.at.date())
        if i is not None and t is not None:
            values[i, t] -= row.amount
    return Panel(panel.keys, panel.dates, np.maximum(values, 0.0), panel.key_names)


@dataclass(frozen=True)
class BillForecast:
    key: Key
    merchant: str
    day: date
    low: float
    amount: float
    high: float


def schedule(bills: dict[Key, list[Recurring]], start: date, end: date) -> list[BillForecast]:
    """Every bill expected in [start, end), at its current amount (the new one after a price
    rise), with the range of its recent amounts as its interval."""
    since = datetime.combine(start, datetime.min.time())
    until = datetime.combine(end, datetime.min.time())
    out = []
    for key, found in bills.items():
        for bill in found:
            amount = bill.last_amount if bill.repriced else bill.typical_amount
            low = min(bill.low_amount, amount) if not bill.repriced else amount
            high = max(bill.high_amount, amount) if not bill.repriced else amount
            for at in bill.expected_between(since, until):
                out.append(BillForecast(key, bill.merchant, at.date(), low, amount, high))
    return out


def _bill_matrix(
    keys: Sequence[Key], days: pd.DatetimeIndex, bills: list[BillForecast]
) -> np.ndarray:
    """(n_series, n_days, 3): the bills' low, amount and high on the days they are due."""
    index = {key: i for i, key in enumerate(keys)}
    position = {day: t for t, day in enumerate(days.date)}
    out = np.zeros((len(keys), len(days), 3))
    for bill in bills:
        i, t = index.get(bill.key), position.get(bill.day)
        if i is not None and t is not None:
            out[i, t] += (bill.low, bill.amount, bill.high)
    return out


def largest_months(panel: Panel) -> np.ndarray:
    """Per series, its largest calendar-month total in the history, scaled to 30 days for a
    partial first or last month."""
    months = panel.dates.to_period("M")
    totals = []
    for month in months.unique():
        days = months == month
        totals.append(panel.values[:, days].sum(axis=1) * 30 / max(int(days.sum()), 1))
    return np.max(np.column_stack(totals), axis=1) if totals else np.zeros(len(panel.keys))


@dataclass
class MonthRow:
    key: Key
    month: date
    days: int
    p10: float
    p50: float
    p90: float
    bills: float  # the part of p50 that is recurring bills
    factor: float = 1.0  # how much of the model's everyday forecast the cap left
    low_ratio: float = 1.0  # the everyday interval over the everyday forecast, for daily bands
    high_ratio: float = 1.0


def month_rows(
    keys: Sequence[Key],
    days: pd.DatetimeIndex,
    everyday: np.ndarray,
    bills: np.ndarray,
    conformal: Conformal,
    largest: np.ndarray,
    scale: np.ndarray,
) -> list[MonthRow]:
    """Per series and calendar month: bills plus everyday spend. The everyday interval is
    conformal at the month level; the bills add their own ranges. No quantile goes above
    MAX_MONTH_MULTIPLE times the series' largest month on record (unless its bills alone do)."""
    months = days.to_period("M")
    rows = []
    for month in months.unique():
        in_month = months == month
        n_days = int(in_month.sum())
        centre = everyday[:, in_month].sum(axis=1)
        low, high = conformal.scaled(centre, scale * n_days / 30)
        due = bills[:, in_month, :].sum(axis=1)
        cap = np.maximum(largest * n_days / 30 * MAX_MONTH_MULTIPLE, due[:, 2])
        for i, key in enumerate(keys):
            # The cap holds the median too: a model that runs away is capped, not believed.
            everyday_month = float(min(centre[i], max(float(cap[i] - due[i, 1]), 0.0)))
            factor = everyday_month / centre[i] if centre[i] > 0 else 1.0
            p50 = everyday_month + due[i, 1]
            p90 = max(min(high[i] * factor + due[i, 2], cap[i]), p50)
            p10 = min(low[i] * factor + due[i, 0], p50)
            rows.append(
                MonthRow(
                    key,
                    month.to_timestamp().date(),
                    n_days,
                    p10,
                    p50,
                    p90,
                    float(due[i, 1]),
                    factor,
                    (p10 - due[i, 0]) / everyday_month if everyday_month > 0 else 1.0,
                    (p90 - due[i, 2]) / everyday_month if everyday_month > 0 else 1.0,
                )
            )
    return rows


@dataclass
class Household:
    """Everything the forecaster knows at an origin, split into bills and everyday spend."""

    panel: Panel  # all spending
    everyday: Panel  # spending less the bills' charges
    bills: dict[Key, list[Recurring]]

    @classmethod
    def at(cls, panel: Panel, charges: pd.DataFrame, origin: int) -> Household:
        history = panel.until(origin)
        cutoff = datetime.combine(
            (panel.dates[origin - 1] + pd.Timedelta(days=1)).date(), datetime.min.time()
        )
        bills = find_bills(charges, cutoff)
        members = bill_charges(charges[charges["at"] < cutoff], bills)
        return cls(history, everyday_panel(history, members), bills)


def everyday_scale(everyday: Panel) -> np.ndarray:
    """Per series, its everyday spend per 30 days (at least 1): month errors are measured in
    these units, so one interval fits a coffee budget and a grocery budget alike, and a series
    that is all bills gets no everyday interval at all. The recent 90 days' rate or the whole
    history's, whichever is larger: a series quiet for three months (travel, a yearly
    purchase) can still come back at its usual size, and its interval has to allow for that."""
    recent = everyday.values[:, -SCALE_DAYS:].mean(axis=1)
    usual = everyday.values.mean(axis=1)
    return np.asarray(np.maximum(np.maximum(recent, usual) * 30, 1.0))


def _month_scale(history: Panel) -> np.ndarray:
    """Per series: the mean absolute change between consecutive whole months (the in-sample
    error of "same as last month"), which scales the month-level MASE."""
    spans = whole_months(history.dates)
    if len(spans) < 2:
        return np.full(len(history.keys), np.nan)
    totals = np.column_stack([history.values[:, a:b].sum(axis=1) for a, b in spans])
    return np.asarray(np.abs(np.diff(totals, axis=1)).mean(axis=1))


@dataclass
class MonthBacktest:
    n_folds: int
    model: dict[str, float | None]
    seasonal_naive: dict[str, float | None]
    last_month: dict[str, float | None]
    conformal: Conformal
    folds: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": "category-month",
            "n_folds": self.n_folds,
            "model": self.model,
            "seasonal_naive": self.seasonal_naive,
            "last_month": self.last_month,
            "interval": {"low": self.conformal.low, "high": self.conformal.high},
        }


def whole_months(dates: pd.DatetimeIndex) -> list[tuple[int, int]]:
    """(start, end) positions of every whole calendar month in the consecutive ``dates``."""
    months = dates.to_period("M")
    spans = []
    for month in months.unique():
        where = np.flatnonzero(months == month)
        if len(where) == month.days_in_month:
            spans.append((int(where[0]), int(where[-1]) + 1))
    return spans


def backtest_months(
    panel: Panel,
    charges: pd.DataFrame,
    config: ForecastConfig,
    *,
    n_folds: int,
    max_rows: int,
) -> MonthBacktest:
    """Each of the last ``n_folds`` whole months is forecast from the data before it, as the
    product would have: bills found then, everyday spend modelled, and the month's total
    compared with what was spent. One earlier month only calibrates the first fold's interval;
    each later fold's interval comes from the folds before it."""
    spans = [s for s in whole_months(panel.dates)[-(n_folds + 1) :] if s[0] > config.history_needed]
    if len(spans) < 2:
        raise ValueError("need at least two whole months after the model's warm-up to backtest")
    residuals: list[np.ndarray] = []
    scores: dict[str, list[np.ndarray]] = {}
    folds = []
    for index, (start, end) in enumerate(spans):
        household = Household.at(panel, charges, start)
        days = panel.dates[start:end]
        fitted = fit(household.everyday, config, max_rows=max_rows)
        everyday = fitted.forecast(household.everyday, end - start)
        first = days[0].date()
        due = _bill_matrix(panel.keys, days, schedule(household.bills, first, next_month(first)))
        actual = panel.values[:, start:end].sum(axis=1)
        actual_bills = actual - everyday_panel(
            Panel(panel.keys, days, panel.values[:, start:end], panel.key_names),
            bill_charges(charges, household.bills),
        ).values.sum(axis=1)
        predicted_everyday = everyday.sum(axis=1)
        scale = everyday_scale(household.everyday)
        if index > 0:
            conformal = Conformal.from_residuals(np.concatenate(residuals), config.coverage)
            rows = month_rows(
                panel.keys, days, everyday, due, conformal, largest_months(household.panel), scale
            )
            fold = _score_month(actual, rows, household.panel, end - start)
            for name, values in fold.items():
                scores.setdefault(name, []).append(values)
            folds.append(
                {
                    "month": str(days[0].date())[:7],
                    "model_mase": _finite_mean(fold["model"]),
                    "last_month_mase": _finite_mean(fold["last_month"]),
                    "coverage_80": _finite_mean(fold["covered"]),
                }
            )
        # Only series with everyday spending calibrate the everyday interval: one that is all
        # bills (rent, a utility) is never wrong about its everyday zero, and its zeros would
        # narrow everyone else's interval. Bills carry their own ranges.
        spends = household.everyday.values.sum(axis=1) > 0
        month_scale = scale * (end - start) / 30
        residuals.append(((actual - actual_bills - predicted_everyday) / month_scale)[spends])
    return MonthBacktest(
        n_folds=len(folds),
        model={
            "mase": _mean(scores, "model"),
            "coverage_80": _mean(scores, "covered"),
        },
        seasonal_naive={"mase": _mean(scores, "seasonal_naive")},
        last_month={"mase": _mean(scores, "last_month")},
        conformal=Conformal.from_residuals(np.concatenate(residuals), config.coverage),
        folds=folds,
    )


def _mean(scores: dict[str, list[np.ndarray]], name: str) -> float | None:
    """The mean over series that have a value; None when none has (JSON has no NaN)."""
    return _finite_mean(np.concatenate(scores[name]))


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _score_month(
    actual: np.ndarray, rows: list[MonthRow], history: Panel, n_days: int
) -> dict[str, np.ndarray]:
    p10 = np.array([r.p10 for r in rows])
    p50 = np.array([r.p50 for r in rows])
    p90 = np.array([r.p90 for r in rows])
    scale = _month_scale(history)
    last_month = _last_whole_month(history)
    seasonal = history.values[:, -7:].sum(axis=1) * n_days / 7

    def scaled(forecast: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale > 0, np.abs(actual - forecast) / scale, np.nan)

    return {
        "model": scaled(p50),
        "seasonal_naive": scaled(seasonal),
        "last_month": scaled(last_month),
        "covered": ((actual >= p10 - 0.005) & (actual <= p90 + 0.005)).astype(float),
    }


def _last_whole_month(history: Panel) -> np.ndarray:
    spans = whole_months(history.dates)
    if not spans:
        return np.zeros(len(history.keys))
    start, end = spans[-1]
    return np.asarray(history.values[:, start:end].sum(axis=1))


@dataclass
class Forecaster:
    """A fitted everyday model and its month-level interval: what a per-user refresh reuses."""

    fitted: FittedForecaster
    conformal: Conformal
    horizon_days: int


@dataclass
class Forecast:
    keys: list[Key]
    days: pd.DatetimeIndex
    daily: np.ndarray  # (n_series, n_days, 3): everyday quantiles plus bills on their days
    months: list[MonthRow]
    history_start: date
    history_end: date


def forecast_household(model: Forecaster, household: Household) -> Forecast:
    """Forecast every series of the household from its whole history with a fitted model."""
    panel = household.panel
    history_end = panel.dates[-1].date()
    start, end = forecast_window(history_end, model.horizon_days)
    days = pd.date_range(start, end, freq="D", inclusive="left")
    everyday = model.fitted.forecast(household.everyday, len(days))
    due = _bill_matrix(panel.keys, days, schedule(household.bills, start, end))
    rows = month_rows(
        panel.keys,
        days,
        everyday,
        due,
        model.conformal,
        largest_months(panel),
        everyday_scale(household.everyday),
    )
    return Forecast(
        list(panel.keys),
        days,
        daily_bands(panel.keys, everyday, due, days, rows),
        rows,
        panel.dates[0].date(),
        history_end,
    )


def daily_bands(
    keys: Sequence[Key],
    everyday: np.ndarray,
    due: np.ndarray,
    days: pd.DatetimeIndex,
    rows: list[MonthRow],
) -> np.ndarray:
    """(n_series, n_days, 3): each day's everyday forecast, scaled as its month was capped and
    widened by its month's interval ratios, plus the bills due that day at their own range."""
    n = everyday.shape[0]
    months = list(days.to_period("M").unique())
    position = {m.to_timestamp().date(): j for j, m in enumerate(months)}
    series = {key: i for i, key in enumerate(keys)}
    shape = np.ones((n, len(months), 3))  # the cap's factor, the low and high ratios
    for row in rows:
        shape[series[row.key], position[row.month]] = (row.factor, row.low_ratio, row.high_ratio)
    month_of_day = np.array([position[d.to_period("M").to_timestamp().date()] for d in days])
    scaled = everyday * shape[:, month_of_day, 0]
    out = np.empty((n, len(days), 3))
    out[:, :, 0] = scaled * shape[:, month_of_day, 1] + due[:, :, 0]
    out[:, :, 1] = scaled + due[:, :, 1]
    out[:, :, 2] = scaled * shape[:, month_of_day, 2] + due[:, :, 2]
    return out


def charges_frame(records: Sequence[Any]) -> pd.DataFrame:
    """Charges in the columns this module reads; ``at`` is local, naive time."""
    frame = pd.DataFrame([tuple(r) for r in records], columns=list(CHARGE_COLUMNS))
    frame["amount"] = frame["amount"].astype(float)
    return frame


@dataclass
class Run:
    model: Forecaster
    backtest: MonthBacktest
    forecast: Forecast
    training_rows: int


def train_and_forecast(
    daily: pd.DataFrame,
    charges: pd.DataFrame,
    config: ForecastConfig,
    *,
    n_folds: int,
    max_rows: int,
) -> Run:
    """Backtest month by month, fit the everyday model on all of it, and forecast every series
    through the end of the month ``config.horizon`` days ahead."""
    panel = Panel.from_long(daily, KEYS, "day", "spent")
    result = backtest_months(panel, charges, config, n_folds=n_folds, max_rows=max_rows)
    household = Household.at(panel, charges, len(panel.dates))
    fitted = fit(household.everyday, config, max_rows=max_rows)
    model = Forecaster(fitted, result.conformal, config.horizon)
    return Run(model, result, forecast_household(model, household), fitted.training_rows)
