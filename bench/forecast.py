"""The forecaster's refresh: a full refresh (month-by-month backtest, fit, forecast) for many
users, and the per-user refresh a new user's history gets with the fitted model. Pure: the same
functions the refresher runs in its thread, on demo histories, without the database around them."""

from __future__ import annotations

import time
from datetime import date, datetime

import pandas as pd

from bench.harness import BenchResult, median
from services.core.text import normalize_text
from services.demo.generator import generate
from services.forecaster.composition import (
    CHARGE_COLUMNS,
    KEYS,
    Household,
    forecast_household,
    train_and_forecast,
)
from services.forecaster.forecasting import ForecastConfig, Panel

FOLDS = 3
MAX_TRAINING_ROWS = 400_000  # the setting's default


def demo_history(users: int, months: int, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily debits per (user, account, category) and the charges behind them, as the
    forecaster's store returns them."""
    rows = []
    for record in generate(users=users, months=months, seed=seed, end=date(2026, 11, 1)):
        t = record.transaction
        if t["direction"] != "debit":
            continue
        at = datetime.fromisoformat(t["timestamp"]).replace(tzinfo=None)
        merchant = t.get("merchant") or ""
        rows.append(
            (
                record.user_id,
                t["account_id"],
                t.get("category") or "Uncategorized",
                normalize_text(merchant),
                merchant,
                float(t["amount"]),
                at,
            )
        )
    charges = pd.DataFrame(rows, columns=list(CHARGE_COLUMNS))
    daily = (
        charges.assign(day=charges["at"].dt.date)
        .groupby([*KEYS, "day"], as_index=False)["amount"]
        .sum()
        .rename(columns={"amount": "spent"})
    )
    return daily, charges[charges["merchant_key"] != ""]


def forecast_refresh(stack: object, *, quick: bool, repeats: int) -> list[BenchResult]:
    users = 100 if quick else 1_000
    daily, charges = demo_history(users, months=12)
    config = ForecastConfig()
    full, per_user = [], []
    for _ in range(max(1, repeats - 1)):
        began = time.perf_counter()
        run = train_and_forecast(daily, charges, config, n_folds=FOLDS, max_rows=MAX_TRAINING_ROWS)
        full.append(time.perf_counter() - began)
        newcomer = daily["user_id"] == daily["user_id"].iloc[0]
        for _ in range(5):
            began = time.perf_counter()
            panel = Panel.from_long(daily[newcomer], KEYS, "day", "spent")
            own = charges[charges["user_id"] == daily["user_id"].iloc[0]]
            forecast_household(run.model, Household.at(panel, own, len(panel.dates)))
            per_user.append((time.perf_counter() - began) * 1000)
    series = int(daily.groupby(list(KEYS)).ngroups)
    params = {"users": users, "months": 12, "series": series, "folds": FOLDS}
    backtest = run.backtest.as_dict()
    return [
        BenchResult(
            "forecast_refresh_full",
            "s",
            median(full),
            params,
            runs=full,
            extra={"backtest": backtest},
        ),
        BenchResult(
            "forecast_refresh_one_user",
            "ms",
            median(per_user),
            {"users": 1, "months": 12},
            runs=per_user,
            target="< 60,000 ms (a new user's forecast within a minute)",
            met=median(per_user) < 60_000,
        ),
    ]
