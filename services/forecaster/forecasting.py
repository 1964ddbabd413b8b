"""Global XGBoost forecasts across many series, with quantile intervals and a rolling-origin
backtest against seasonal naive. Pure: no Kafka, HTTP or SQL.

The model predicts the seasonal difference of log1p(value): how this period will differ from the
same period one season ago. So it starts from seasonal naive and learns corrections from lags,
rolling statistics, the calendar and the series' identity (account and category), which lets one
model serve every series and cope with trend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from xgboost import XGBRegressor

QUANTILES = (0.1, 0.5, 0.9)


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


def _series_codes(panel: Panel) -> np.ndarray:
    """Each key column label-encoded; XGBoost splits on them like on any number."""
    columns = []
    for i in range(len(panel.key_names)):
        labels = [key[i] for key in panel.keys]
        _, codes = np.unique(labels, return_inverse=True)
        columns.append(codes.astype(float))
    return np.column_stack(columns) if columns else np.zeros((len(panel.keys), 0))


@dataclass
class FittedForecaster:
    config: ForecastConfig
    model: XGBRegressor
    codes: np.ndarray
    training_rows: int

    def forecast(self, panel: Panel, horizon: int | None = None) -> np.ndarray:
        """Recursive multi-step forecast: shape (n_series, horizon, 3) for p10, p50, p90.

        Each step feeds the p50 back as history; the interval at each step is the model's
        conditional quantile given that path.
        """
        config = self.config
        steps = horizon or config.horizon
        z = np.log1p(panel.values)
        n, T = z.shape
        z = np.hstack([z, np.zeros((n, steps))])
        freq = panel.dates.freq or pd.infer_freq(panel.dates)
        future = pd.date_range(panel.dates[-1], periods=steps + 1, freq=freq)[1:]
        calendar = _calendar(future, config.calendar)
        out = np.zeros((n, steps, len(QUANTILES)))
        for step in range(steps):
            t = T + step
            X = _features(z, t, self.codes, calendar[step], config)
            deltas = np.sort(self.model.predict(X).reshape(n, len(QUANTILES)), axis=1)
            levels = z[:, t - config.season][:, None] + deltas
            out[:, step, :] = np.maximum(np.expm1(levels), 0.0)
            z[:, t] = levels[:, 1]
        return out


def fit(panel: Panel, config: ForecastConfig, *, max_rows: int = 400_000) -> FittedForecaster:
    z = np.log1p(panel.values)
    n, T = z.shape
    start = config.history_needed
    if start >= T:
        raise ValueError(f"need more than {start} periods of history, got {T}")
    calendar = _calendar(panel.dates, config.calendar)
    codes = _series_codes(panel)
    # Most recent periods first, so a row cap keeps the freshest behaviour.
    periods = list(range(T - 1, start - 1, -1))[: max(1, max_rows // max(n, 1))]
    X = np.vstack([_features(z, t, codes, calendar[t], config) for t in periods])
    y = np.concatenate([z[:, t] - z[:, t - config.season] for t in periods])
    model = XGBRegressor(
        objective="reg:quantileerror",
        quantile_alpha=np.array(QUANTILES),
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        learning_rate=config.learning_rate,
        subsample=0.9,
        tree_method="hist",
        random_state=config.seed,
        n_jobs=1,
    )
    model.fit(X, y)
    return FittedForecaster(config, model, codes, len(y))


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


@dataclass
class BacktestResult:
    n_folds: int
    horizon: int
    model: dict[str, float]
    seasonal_naive: dict[str, float]
    folds: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seasonal_naive": self.seasonal_naive,
            "n_folds": self.n_folds,
            "horizon": self.horizon,
        }


def backtest(
    panel: Panel,
    config: ForecastConfig,
    *,
    n_folds: int = 3,
    horizon: int | None = None,
    max_rows: int = 400_000,
) -> BacktestResult:
    """Rolling origin: for each fold, train on everything before the origin, forecast the next
    ``horizon`` periods, and compare with what happened; seasonal naive gets the same folds."""
    h = horizon or config.horizon
    T = panel.values.shape[1]
    origins = [
        T - h * k
        for k in range(n_folds, 0, -1)
        if T - h * k > config.history_needed + config.season
    ]
    if not origins:
        raise ValueError(f"{T} periods are too few to backtest a horizon of {h}")
    model_mase, naive_mase, model_smape, naive_smape, covered = [], [], [], [], []
    folds = []
    for origin in origins:
        history = panel.until(origin)
        actual = panel.values[:, origin : origin + h]
        fitted = fit(history, config, max_rows=max_rows)
        predicted = fitted.forecast(history, h)
        naive = seasonal_naive(history, h, config.season)
        m_mase = mase(actual, predicted[:, :, 1], history.values, config.season)
        n_mase = mase(actual, naive, history.values, config.season)
        model_mase.append(m_mase)
        naive_mase.append(n_mase)
        model_smape.append(smape(actual, predicted[:, :, 1]))
        naive_smape.append(smape(actual, naive))
        inside = (actual >= predicted[:, :, 0]) & (actual <= predicted[:, :, 2])
        covered.append(inside.mean(axis=1))
        folds.append(
            {
                "origin": str(panel.dates[origin].date()),
                "model_mase": float(np.nanmean(m_mase)),
                "naive_mase": float(np.nanmean(n_mase)),
            }
        )
    return BacktestResult(
        n_folds=len(origins),
        horizon=h,
        model={
            "mase": float(np.nanmean(np.concatenate(model_mase))),
            "smape": float(np.mean(np.concatenate(model_smape))),
            "coverage_80": float(np.mean(np.concatenate(covered))),
        },
        seasonal_naive={
            "mase": float(np.nanmean(np.concatenate(naive_mase))),
            "smape": float(np.mean(np.concatenate(naive_smape))),
        },
        folds=folds,
    )


@dataclass
class ForecastRun:
    backtest: BacktestResult
    training_rows: int
    dates: pd.DatetimeIndex  # the forecast days
    keys: list[tuple[str, ...]]
    daily: np.ndarray  # (n_series, horizon, 3)
    history_start: pd.Timestamp
    history_end: pd.Timestamp

    def monthly(self) -> list[tuple[tuple[str, ...], pd.Timestamp, int, float, float, float]]:
        """Per series and calendar month: p50 summed; the interval combines the days' half-widths
        in quadrature, as if days were independent (narrower than adding quantiles, which would
        assume every day lands at its extreme together)."""
        months = self.dates.to_period("M")
        out = []
        for i, key in enumerate(self.keys):
            for month in months.unique():
                days = months == month
                p10, p50, p90 = (self.daily[i, days, q] for q in range(3))
                centre = float(p50.sum())
                low = float(np.sqrt(((p50 - p10) ** 2).sum()))
                high = float(np.sqrt(((p90 - p50) ** 2).sum()))
                out.append(
                    (
                        key,
                        month.to_timestamp(),
                        int(days.sum()),
                        max(centre - low, 0.0),
                        centre,
                        centre + high,
                    )
                )
        return out


def forecast_all(
    frame: pd.DataFrame,
    key_columns: Sequence[str],
    config: ForecastConfig,
    *,
    n_folds: int,
    max_rows: int,
) -> ForecastRun:
    """Backtest, then fit on everything and forecast every series ``config.horizon`` days."""
    panel = Panel.from_long(frame, key_columns, "day", "spent")
    result = backtest(panel, config, n_folds=n_folds, max_rows=max_rows)
    fitted = fit(panel, config, max_rows=max_rows)
    daily = fitted.forecast(panel)
    dates = pd.date_range(panel.dates[-1], periods=config.horizon + 1, freq="D")[1:]
    return ForecastRun(
        result, fitted.training_rows, dates, panel.keys, daily, panel.dates[0], panel.dates[-1]
    )
