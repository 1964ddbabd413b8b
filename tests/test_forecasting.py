"""The forecaster's pure core: features, quantiles, backtests, and the eval CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from river import datasets

from services.forecaster.forecasting import (
    ForecastConfig,
    Panel,
    backtest,
    fit,
    forecast_all,
    mase,
    seasonal_naive,
    smape,
)


def weekly_spend(n_series: int = 6, days: int = 200, seed: int = 0) -> pd.DataFrame:
    """Daily spend with a weekly rhythm and noise, per (user, account, category)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2026-01-01", periods=days, freq="D")
    rows = []
    for s in range(n_series):
        level = 20 + 15 * s
        weekly = np.array([0.6, 0.7, 0.8, 0.9, 1.2, 1.8, 1.5])
        for d in dates:
            value = level * weekly[d.weekday()] * rng.lognormal(0, 0.25)
            rows.append(("u1", f"acct{s % 2}", f"cat{s}", d, value))
    return pd.DataFrame(rows, columns=["user_id", "account_id", "category", "day", "spent"])


def test_metrics() -> None:
    actual = np.array([[10.0, 20.0, 30.0]])
    history = np.array([[1.0, 2.0, 3.0, 5.0]])  # seasonal (1) naive in-sample MAE = 4/3
    assert mase(actual, actual + 2, history, season=1)[0] == pytest.approx(2 / (4 / 3))
    assert smape(actual, actual)[0] == 0
    assert np.allclose(
        seasonal_naive(Panel([("a",)], pd.date_range("2026-01-01", periods=4), history), 6, 2),
        [[3, 5, 3, 5, 3, 5]],
    )


def test_quantiles_are_ordered_and_the_model_beats_seasonal_naive() -> None:
    panel = Panel.from_long(weekly_spend(), ["user_id", "account_id", "category"], "day", "spent")
    config = ForecastConfig(horizon=28, n_estimators=150)
    fitted = fit(panel, config)
    forecast = fitted.forecast(panel)
    assert forecast.shape == (6, 28, 3)
    assert np.all(forecast[:, :, 0] <= forecast[:, :, 1]) and np.all(
        forecast[:, :, 1] <= forecast[:, :, 2]
    )
    assert np.all(forecast >= 0)
    result = backtest(panel, config, n_folds=2)
    assert result.n_folds == 2
    assert result.model["mase"] < result.seasonal_naive["mase"]
    assert 0.5 <= result.model["coverage_80"] <= 1.0


def test_forecast_all_rolls_up_months() -> None:
    run = forecast_all(
        weekly_spend(n_series=2, days=120),
        ["user_id", "account_id", "category"],
        ForecastConfig(horizon=40, n_estimators=80),
        n_folds=1,
        max_rows=50_000,
    )
    months = run.monthly()
    first_series = [m for m in months if m[0] == run.keys[0]]
    assert sum(m[2] for m in first_series) == 40
    assert sum(m[4] for m in first_series) == pytest.approx(
        float(run.daily[0, :, 1].sum()), rel=1e-6
    )
    assert all(low <= mid <= high for _, _, _, low, mid, high in months)


def test_too_little_history_is_a_clear_error() -> None:
    panel = Panel.from_long(
        weekly_spend(n_series=1, days=20), ["user_id", "account_id", "category"], "day", "spent"
    )
    with pytest.raises(ValueError, match="too few"):
        backtest(panel, ForecastConfig(horizon=30))


def test_eval_forecast_on_airline_passengers(tmp_path: Path) -> None:
    path = tmp_path / "air.csv"
    pd.DataFrame(
        [(x["month"], y) for x, y in datasets.AirlinePassengers()], columns=["month", "passengers"]
    ).to_csv(path, index=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "eval",
            "forecast",
            "--csv",
            str(path),
            "--date",
            "month",
            "--value",
            "passengers",
            "--season",
            "12",
            "--horizon",
            "12",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = orjson.loads(done.stdout)
    assert set(result) == {"model", "seasonal_naive", "n_folds", "horizon"}
    assert set(result["model"]) == {"mase", "smape", "coverage_80"}
    assert result["n_folds"] == 3
    assert result["model"]["mase"] < result["seasonal_naive"]["mase"]


def test_on_demo_data_the_model_beats_seasonal_naive() -> None:
    from datetime import date

    from services.demo.generator import generate

    records = generate(users=6, months=8, seed=4, end=date(2026, 9, 1))
    frame = pd.DataFrame(
        [
            (
                r.user_id,
                r.transaction["account_id"],
                r.transaction.get("category") or "Uncategorized",
                r.transaction["timestamp"][:10],
                float(r.transaction["amount"]),
            )
            for r in records
            if r.transaction["direction"] == "debit"
        ],
        columns=["user_id", "account_id", "category", "day", "spent"],
    )
    daily = frame.groupby(["user_id", "account_id", "category", "day"], as_index=False).spent.sum()
    panel = Panel.from_long(daily, ["user_id", "account_id", "category"], "day", "spent")
    result = backtest(panel, ForecastConfig(horizon=30, n_estimators=150), n_folds=2)
    assert result.model["mase"] < result.seasonal_naive["mase"]


def test_days_no_panel_can_hold_are_skipped_not_fatal() -> None:
    from datetime import date

    from services.core.metrics import JOB_SKIPS
    from services.forecaster.refresher import plausible_days

    frame = pd.DataFrame(
        [
            ("u1", "card", "Dining", date(2026, 11, 30), 12.0),
            ("u2", "card", "Dining", date(9999, 12, 31), 5.0),
            ("u3", "card", "Dining", date(1, 1, 1), 5.0),
            ("u1", "card", "Dining", date(2026, 12, 3), 7.0),  # tomorrow: clock skew, kept
        ],
        columns=["user_id", "account_id", "category", "day", "spent"],
    )
    skipped = JOB_SKIPS.labels("forecast", "implausible_day")
    before = skipped._value.get()
    kept = plausible_days(frame, today=date(2026, 12, 2))
    assert list(kept["user_id"]) == ["u1", "u1"]
    assert skipped._value.get() == before + 2
