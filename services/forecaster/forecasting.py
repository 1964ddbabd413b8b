"""Global XGBoost forecasts across many series, with intervals calibrated on the backtest's own
errors, and a rolling-origin backtest against seasonal naive and "same as last period". Pure: no
Kafka, HTTP or SQL.

The model works in log1p space. It starts from a base forecast, the value one season ago plus a
damped share of the last season's growth, and learns corrections from lags, rolling statistics,
the calendar and the series' identity (account and category). So one model serves every series,
and a trend carries on without trees having to extrapolate it.

Its quantiles (p10, p90) give the daily band. The intervals people read (over a whole horizon, or
a month) are conformal: the spread of the model's own errors on earlier backtest folds, so their
coverage is measured rather than assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from xgboost import XGBRegressor


@dataclass(frozen=True)
class ForecastConfig:
    season: int = 7
    lags: tuple[int, ...] = (1, 7, 14, 28)
    windows: tuple[int, ...] = (7, 28)
    horizon: int = 30
    calendar: Literal["daily", "monthly"] = "daily"
    n_estimators: int = 300
    max_depth: int = 4
    learning_rate: float = 0.05
    seed: int = 0
    # The share of the last season's growth carried into the base forecast. Daily spending's
    # week-on-week "growth" is noise, so the daily forecaster carries none of it.
    growth_damping: float = 0.0
    # "seasonal": start from the value one season ago (with drift), in log1p space, for smooth
    # series. "level": start from the mean of the longest window, in money, for intermittent
    # daily spending, whose sums must add up: a median or a log-space mean of a day that is
    # mostly zero forecasts almost nothing for the month.
    base: Literal["seasonal", "level"] = "level"
    coverage: float = 0.8  # of the conformal intervals
    calibration_decay: float = 0.97  # weight of an error one calibration origin older

    @property
    def log_space(self) -> bool:
        return self.base == "seasonal"

    @property
    def history_needed(self) -> int:
        return max(*self.lags, *self.windows, self.season) + 1

    @classmethod
    def monthly(cls, season: int = 12, horizon: int = 12) -> ForecastConfig:
        return cls(
            season=season,
            lags=(1, 2, 3, season),
            windows=(3, season),
            horizon=horizon,
            calendar="monthly",
            # A few hundred points: a small, strongly shrunk correction of the base.
            n_estimators=100,
            max_depth=2,
            learning_rate=0.01,
            growth_damping=0.75,
            base="seasonal",
        )


@dataclass
class Panel:
    """Dense, equally spaced series: ``values[i, t]`` is series i at ``dates[t]``."""

    keys: list[tuple[str, ...]]  # identity of each series, e.g. (user, account, category)
    dates: pd.DatetimeIndex
    values: np.ndarray  # shape (n_series, n_dates), float, >= 0
    key_names: tuple[str, ...] = ("series",)

    @classmethod
    def from_long(
        cls,
        frame: pd.DataFrame,
        key_columns: Sequence[str],
        date_column: str,
        value_column: str,
        freq: str = "D",
        end: pd.Timestamp | None = None,
    ) -> Panel:
        """Missing periods become 0: a day without spending spent nothing."""
        frame = frame.assign(**{date_column: pd.to_datetime(frame[date_column])})
        start = frame[date_column].min()
        last = end if end is not None else frame[date_column].max()
        dates = pd.date_range(start, last, freq=freq)
        wide = frame.pivot_table(
            index=list(key_columns),
            columns=date_column,
            values=value_column,
            aggfunc="sum",
            fill_value=0.0,
        )
        wide = wide.reindex(columns=dates, fill_value=0.0)
        keys = [k if isinstance(k, tuple) else (k,) for k in wide.index]
        return cls(
            [tuple(map(str, k)) for k in keys],
            dates,
            wide.to_numpy(dtype=float),
            tuple(key_columns),
        )

    def until(self, t: int) -> Panel:
        return Panel(self.keys, self.dates[:t], self.values[:, :t], self.key_names)


def _calendar(dates: pd.DatetimeIndex, kind: str) -> np.ndarray:
    if kind == "monthly":
        return np.column_stack([dates.month.to_numpy()])
    return np.column_stack([dates.weekday.to_numpy(), dates.day.to_numpy(), dates.month.to_numpy()])


def _base(z: np.ndarray, t: int, config: ForecastConfig) -> np.ndarray:
    """Seasonal naive with drift, in log space: the value one season ago, plus a damped share
    of the average season-on-season growth over the whole history (a long average, because a
    single flat or booming year says little about the next). Or the recent level."""
    if config.base == "level":
        return np.asarray(z[:, t - max(config.windows) : t].mean(axis=1))
    s = config.season
    base = z[:, t - s].copy()
    if config.growth_damping and t - 2 * s >= 0:
        growth = (z[:, s:t] - z[:, : t - s]).mean(axis=1)
        base += config.growth_damping * growth
    return base


def _features(
    z: np.ndarray, t: int, codes: np.ndarray, calendar_row: np.ndarray, config: ForecastConfig
) -> np.ndarray:
    """Features of period ``t`` for every series, from log values before ``t`` only."""
    columns = [z[:, t - lag] for lag in config.lags]
    for window in config.windows:
        block = z[:, t - window : t]
        columns += [block.mean(axis=1), block.std(axis=1)]
    columns.append(
        z[:, t - 1] - z[:, t - 1 - config.season]
        if t - 1 - config.season >= 0
        else np.zeros(len(z))
    )
    stacked = np.column_stack(columns)
    calendar = np.repeat(calendar_row[None, :], len(z), axis=0)
    return np.hstack([stacked, calendar, codes])


Vocabulary = tuple[dict[str, int], ...]


def _vocabulary(panel: Panel) -> Vocabulary:
    return tuple(
        {label: code for code, label in enumerate(sorted({key[i] for key in panel.keys}))}
        for i in range(len(panel.key_names))
    )


def _series_codes(keys: Sequence[tuple[str, ...]], vocabulary: Vocabulary) -> np.ndarray:
    """Each key column label-encoded as at fit time; XGBoost splits on them like on any number,
    and treats a series it never saw (a new user) as missing."""
    if not vocabulary:
        return np.zeros((len(keys), 0))
    return np.array(
        [[codes.get(key[i], np.nan) for i, codes in enumerate(vocabulary)] for key in keys],
        dtype=float,
    ).reshape(len(keys), len(vocabulary))


@dataclass
class FittedForecaster:
    config: ForecastConfig
    model: XGBRegressor
    vocabulary: Vocabulary
    training_rows: int

    def forecast(self, panel: Panel, horizon: int | None = None) -> np.ndarray:
        """Recursive multi-step point forecast, shape (n_series, horizon): each step feeds its
        forecast back as history. Intervals are conformal, from the backtest."""
        config = self.config
        steps = horizon or config.horizon
        z = _transform(panel.values, config)
        n, T = z.shape
        if config.history_needed > T:  # a young series: its missing past spent nothing
            z = np.hstack([np.zeros((n, config.history_needed - T)), z])
            T = config.history_needed
        z = np.hstack([z, np.zeros((n, steps))])
        codes = _series_codes(panel.keys, self.vocabulary)
        freq = panel.dates.freq or pd.infer_freq(panel.dates)
        future = pd.date_range(panel.dates[-1], periods=steps + 1, freq=freq)[1:]
        calendar = _calendar(future, config.calendar)
        # The recent level is the one observed at the origin: recomputed from fed-back
        # forecasts, a small bias would compound over a month of steps.
        observed_level = _base(z, T, config) if config.base == "level" else None
        for step in range(steps):
            t = T + step
            X = _features(z, t, codes, calendar[step], config)
            base = observed_level if observed_level is not None else _base(z, t, config)
            z[:, t] = base + self.model.predict(X)
            if not config.log_space:
                z[:, t] = np.maximum(z[:, t], 0.0)
        future_z = z[:, T:]
        if config.log_space:
            return np.asarray(np.maximum(np.expm1(future_z), 0.0))
        return np.asarray(future_z * _scale(panel.values, config)[:, None])


MIN_SCALE = 0.01
RECENT_PERIODS = 90


def _scale(values: np.ndarray, config: ForecastConfig) -> np.ndarray:
    """Per series, its typical level: money-space series are modelled in these units, so one
    model fits a $3 habit and a $300 one. The larger of the whole history's mean and the last
    ``RECENT_PERIODS``' mean: a trip months ago is not thousands of units of a series quiet
    since, and a habit taken up last month is not dozens of units of its long quiet past (the
    model then extrapolated it to twice its level)."""
    if config.log_space:
        return np.ones(len(values))
    recent = values[:, -RECENT_PERIODS:].mean(axis=1)
    return np.asarray(np.maximum(np.maximum(values.mean(axis=1), recent), MIN_SCALE))


def _transform(values: np.ndarray, config: ForecastConfig) -> np.ndarray:
    if config.log_space:
        return np.asarray(np.log1p(values))
    return np.asarray(values / _scale(values, config)[:, None])


def fit(panel: Panel, config: ForecastConfig, *, max_rows: int = 400_000) -> FittedForecaster:
    z = _transform(panel.values, config)
    n, T = z.shape
    start = config.history_needed
    if start >= T:
        raise ValueError(f"need more than {start} periods of history, got {T}")
    calendar = _calendar(panel.dates, config.calendar)
    vocabulary = _vocabulary(panel)
    codes = _series_codes(panel.keys, vocabulary)
    # Most recent periods first, so a row cap keeps the freshest behaviour.
    periods = list(range(T - 1, start - 1, -1))[: max(1, max_rows // max(n, 1))]
    X = np.vstack([_features(z, t, codes, calendar[t], config) for t in periods])
    y = np.concatenate([z[:, t] - _base(z, t, config) for t in periods])
    model = XGBRegressor(
        objective="reg:squarederror",
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        learning_rate=config.learning_rate,
        subsample=0.9,
        tree_method="hist",
        random_state=config.seed,
        n_jobs=1,
    )
    model.fit(X, y)
    return FittedForecaster(config, model, vocabulary, len(y))


def seasonal_naive(panel: Panel, horizon: int, season: int) -> np.ndarray:
    """Repeat the last season: shape (n_series, horizon)."""
    last = panel.values[:, -season:]
    reps = int(np.ceil(horizon / season))
    return np.tile(last, reps)[:, :horizon]


def mase(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int) -> np.ndarray:
    """Per series: forecast MAE over the in-sample MAE of seasonal naive. NaN where that is 0."""
    scale = np.abs(history[:, season:] - history[:, :-season]).mean(axis=1)
    error = np.abs(actual - forecast).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, error / scale, np.nan)


def smape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    denominator = np.abs(actual) + np.abs(forecast)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denominator > 0, 2 * np.abs(forecast - actual) / denominator, 0.0)
    return np.asarray(terms.mean(axis=1))


def last_value_naive(panel: Panel, horizon: int) -> np.ndarray:
    """Repeat the last period ("same as last month" for monthly series): shape (n, horizon)."""
    return np.repeat(panel.values[:, -1:], horizon, axis=1)


def log_residuals(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Errors in log1p space: a forecast 20% low is the same error at $50 as at $5,000."""
    return np.asarray(np.log1p(np.maximum(actual, 0.0)) - np.log1p(np.maximum(forecast, 0.0)))


@dataclass(frozen=True)
class Conformal:
    """An interval from errors seen before: the forecast, moved by the low and high quantiles
    of those errors. Errors are weighted by recency (each older origin counts ``decay`` times
    less), because a spending series is not exchangeable over years: weighted conformal
    prediction for drifting data (Barber et al., 2023)."""

    low: float
    high: float
    n: int

    @classmethod
    def from_residuals(
        cls, residuals: np.ndarray, coverage: float, weights: np.ndarray | None = None
    ) -> Conformal:
        finite = np.isfinite(residuals)
        errors = residuals[finite]
        if len(errors) == 0:
            return cls(0.0, 0.0, 0)
        w = np.ones(len(errors)) if weights is None else weights[finite]
        tail = (1 - coverage) / 2
        low = -_conformal_upper(-errors, w, 1 - tail)
        high = _conformal_upper(errors, w, 1 - tail)
        return cls(float(min(low, 0.0)), float(max(high, 0.0)), len(errors))

    def interval(self, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For errors measured in log1p space."""
        z = np.log1p(np.maximum(centre, 0.0))
        return np.expm1(z + self.low), np.expm1(z + self.high)

    def scaled(self, centre: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For errors measured in multiples of each series' own scale."""
        return np.maximum(centre + self.low * scale, 0.0), centre + self.high * scale


def _conformal_upper(values: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The ``level`` quantile of the errors with the next error's own weight (the newest's)
    counted as a value above them all: the finite-sample correction of split conformal
    prediction, which makes 80% mean at least 80% also on a few dozen errors, where the plain
    quantile holds only about n/(n+1) of that."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / (weights.sum() + weights.max())
    return float(values[order][min(int(np.searchsorted(cumulative, level)), len(values) - 1)])


@dataclass
class BacktestResult:
    n_folds: int
    horizon: int
    model: dict[str, float]
    seasonal_naive: dict[str, float]
    last_value: dict[str, float] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    level: str = "period"  # "period", or "category-month" for the forecaster's monthly totals

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seasonal_naive": self.seasonal_naive,
            "last_value": self.last_value,
            "n_folds": self.n_folds,
            "horizon": self.horizon,
            "level": self.level,
        }


def backtest(
    panel: Panel,
    config: ForecastConfig,
    *,
    n_folds: int = 3,
    horizon: int | None = None,
    max_rows: int = 400_000,
    calibration_origins: int = 48,
) -> BacktestResult:
    """Rolling origin: for each fold, train on everything before the origin, forecast the next
    ``horizon`` periods, and compare with what happened; the baselines get the same folds.

    Each fold's interval is conformal: the spread of the errors of forecasts made from earlier
    origins whose outcomes were known by the fold's origin (the earlier folds, and
    ``calibration_origins`` more, spaced over the horizon before the first fold). A fold never
    calibrates on its own outcomes."""
    h = horizon or config.horizon
    T = panel.values.shape[1]
    earliest = config.history_needed + config.season
    folds_at = [T - h * k for k in range(n_folds, 0, -1) if T - h * k - h > earliest]
    if not folds_at:
        raise ValueError(f"{T} periods are too few to backtest a horizon of {h}")
    stride = max(1, h // calibration_origins)
    calibrate_at = [
        o for j in range(calibration_origins) if (o := folds_at[0] - h - j * stride) > earliest
    ]
    forecasts = {
        origin: fit(panel.until(origin), config, max_rows=max_rows).forecast(panel.until(origin), h)
        for origin in sorted({*calibrate_at, *folds_at})
    }
    scores: dict[str, list[np.ndarray]] = {}
    folds = []
    for origin in folds_at:
        known = [(o, p50) for o, p50 in forecasts.items() if o + h <= origin]
        errors = [log_residuals(panel.values[:, o : o + h], p50).ravel() for o, p50 in known]
        weights = [
            np.full(len(e), config.calibration_decay ** ((origin - o) / stride))
            for (o, _), e in zip(known, errors, strict=True)
        ]
        calibrated = Conformal.from_residuals(
            np.concatenate(errors), config.coverage, np.concatenate(weights)
        )
        p50 = forecasts[origin]
        low, high = calibrated.interval(p50)
        history = panel.until(origin)
        actual = panel.values[:, origin : origin + h]
        fold = _score_fold(actual, p50, low, high, history, config.season, h)
        for name, values in fold.items():
            scores.setdefault(name, []).append(values)
        folds.append(
            {
                "origin": str(panel.dates[origin].date()),
                "model_mase": float(np.nanmean(fold["model_mase"])),
                "naive_mase": float(np.nanmean(fold["naive_mase"])),
                "coverage_80": float(np.mean(fold["covered"])),
            }
        )

    def mean(name: str) -> float:
        return float(np.nanmean(np.concatenate(scores[name])))

    return BacktestResult(
        n_folds=len(folds),
        horizon=h,
        model={
            "mase": mean("model_mase"),
            "smape": mean("model_smape"),
            "coverage_80": mean("covered"),
        },
        seasonal_naive={"mase": mean("naive_mase"), "smape": mean("naive_smape")},
        last_value={"mase": mean("last_mase"), "smape": mean("last_smape")},
        folds=folds,
    )


def _score_fold(
    actual: np.ndarray,
    p50: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    history: Panel,
    season: int,
    h: int,
) -> dict[str, np.ndarray]:
    naive = seasonal_naive(history, h, season)
    last = last_value_naive(history, h)
    return {
        "model_mase": mase(actual, p50, history.values, season),
        "naive_mase": mase(actual, naive, history.values, season),
        "last_mase": mase(actual, last, history.values, season),
        "model_smape": smape(actual, p50),
        "naive_smape": smape(actual, naive),
        "last_smape": smape(actual, last),
        "covered": ((actual >= low) & (actual <= high)).mean(axis=1),
    }
