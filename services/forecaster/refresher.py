"""Refreshes forecasts on a schedule and after enough new data. One forecaster refreshes at a
time (PostgreSQL advisory lock); training runs in a thread, so consumption never waits for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from math import nan
from typing import Any

import asyncpg
import pandas as pd
from prometheus_client import Counter, Gauge, Histogram

from schemas import ForecastsUpdated
from services.core.db import Lock, advisory_lock
from services.core.logging import ctx
from services.core.metrics import JOB_SKIPS
from services.core.settings import Settings
from services.core.tasks import repeat
from services.forecaster import store
from services.forecaster.composition import (
    KEYS,
    Forecast,
    Forecaster,
    Household,
    charges_frame,
    forecast_household,
    train_and_forecast,
)
from services.forecaster.forecasting import ForecastConfig, Panel

log = logging.getLogger(__name__)

BILL_HISTORY_DAYS = 400  # a year of bills, and the month before it
REFRESHES = Counter("spendstream_forecaster_refresh_runs_total", "Forecast refreshes.", ["outcome"])
REFRESH_DURATION = Histogram(
    "spendstream_forecaster_refresh_duration_seconds",
    "Time to refresh forecasts: scope 'all' backtests, fits and forecasts everyone; 'users'"
    " forecasts the users whose data changed with the last model.",
    ["scope"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BACKTEST_MASE = Gauge(
    "spendstream_forecaster_backtest_mase", "MASE of the latest backtest.", ["forecaster"]
)


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def rows_of(
    run_id: str, forecast: Forecast
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    daily = [
        (run_id, *key, day.date(), _money(p10), _money(p50), _money(p90))
        for i, key in enumerate(forecast.keys)
        for day, (p10, p50, p90) in zip(forecast.days, forecast.daily[i].tolist(), strict=True)
    ]
    monthly = [
        (
            run_id,
            *row.key,
            row.month,
            row.days,
            _money(row.p10),
            _money(row.p50),
            _money(row.p90),
            _money(row.bills),
        )
        for row in forecast.months
    ]
    return daily, monthly


HISTORY_YEARS = 10


def plausible_days(frame: pd.DataFrame, today: date) -> pd.DataFrame:
    """The rows whose day a dense daily panel can hold: the last ``HISTORY_YEARS`` years up to
    tomorrow. Others (a far-past or far-future date that got in before ingest checked) are
    skipped, counted and logged, instead of failing every user's forecast."""
    first = today - timedelta(days=365 * HISTORY_YEARS)
    last = today + timedelta(days=1)
    keep = frame["day"].map(lambda day: first <= day <= last).astype(bool)
    skipped = frame[~keep]
    if len(skipped):
        JOB_SKIPS.labels("forecast", "implausible_day").inc(len(skipped))
        for row in skipped.head(20).itertuples():
            log.warning(
                "skipping a day of spending outside the forecastable range",
                extra=ctx(user_id=row.user_id, account_id=row.account_id, day=row.day),
            )
    return frame[keep]


class ForecastRefresher:
    """Two kinds of refresh. The full one backtests, fits the everyday model on everyone and
    forecasts everyone: on a schedule, or after enough new transactions. In between, users whose
    data changed get a per-user refresh with the last fitted model: seconds, not hours."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        publish: Callable[[ForecastsUpdated], Awaitable[None]],
    ):
        self.pool = pool
        self.settings = settings
        self.publish = publish
        self.model: Forecaster | None = None
        self.backtest: dict[str, Any] | None = None
        self.checked_until: datetime | None = None

    async def due(self) -> bool:
        s = self.settings
        if await store.history_days(self.pool) < s.forecast.min_days:
            return False
        latest = await store.latest_run(self.pool)
        if latest is None:
            return True
        new = await store.counted_since(self.pool, latest["created_at"])
        age = (datetime.now(UTC) - latest["created_at"]).total_seconds()
        return new >= s.forecast.refresh_after_transactions or (
            new > 0 and (age >= s.forecast.refresh_interval_s or self.model is None)
        )

    async def refresh_if_due(self) -> str | None:
        async with advisory_lock(self.pool, Lock.FORECAST_REFRESH) as conn:
            if conn is None:
                return None
            if await self.due():
                return await self._refresh(conn)
            return await self._refresh_changed_users(conn)

    async def _history(self, users: list[str] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        today = datetime.now(UTC).date()
        records = await store.daily_debits(self.pool, users)
        frame = plausible_days(
            pd.DataFrame([dict(r) for r in records], columns=[*KEYS, "day", "spent"]), today
        )
        since = today - timedelta(days=BILL_HISTORY_DAYS)
        charges = charges_frame(await store.charges(self.pool, since, users))
        return frame, charges

    async def _refresh(self, conn: asyncpg.Connection) -> str:
        s = self.settings
        started = time.perf_counter()
        checked = await self.pool.fetchval("SELECT now()")
        frame, charges = await self._history(None)
        config = ForecastConfig(horizon=s.forecast.horizon_days)
        try:
            run = await asyncio.to_thread(
                train_and_forecast,
                frame,
                charges,
                config,
                n_folds=s.forecast.backtest_folds,
                max_rows=s.forecast.max_training_rows,
            )
        except ValueError:
            REFRESHES.labels("skipped").inc()
            raise
        self.model, self.checked_until = run.model, checked
        self.backtest = run.backtest.as_dict() | {"folds": run.backtest.folds}
        run_id = await self._save(conn, run.forecast, "all", run.training_rows, started)
        for name, scores in (
            ("model", run.backtest.model),
            ("seasonal_naive", run.backtest.seasonal_naive),
            ("last_month", run.backtest.last_month),
        ):
            BACKTEST_MASE.labels(name).set(scores["mase"] if scores["mase"] is not None else nan)
        return run_id

    async def _refresh_changed_users(self, conn: asyncpg.Connection) -> str | None:
        """Forecast the users whose data changed since the last check with the last model."""
        if self.model is None or self.checked_until is None:
            return None
        checked = await self.pool.fetchval("SELECT now()")
        changed = await store.users_counted_since(self.pool, self.checked_until)
        days = await store.history_days_of(self.pool, changed) if changed else {}
        users = [u for u in changed if days.get(u, 0) >= self.settings.forecast.min_days]
        self.checked_until = checked
        if not users:
            return None
        started = time.perf_counter()
        frame, charges = await self._history(users)
        if frame.empty:
            return None
        panel = Panel.from_long(frame, KEYS, "day", "spent")
        household = await asyncio.to_thread(Household.at, panel, charges, len(panel.dates))
        forecast = await asyncio.to_thread(forecast_household, self.model, household)
        return await self._save(conn, forecast, "users", 0, started)

    async def _save(
        self,
        conn: asyncpg.Connection,
        forecast: Forecast,
        scope: str,
        training_rows: int,
        started: float,
    ) -> str:
        run_id = f"fc-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        daily, monthly = await asyncio.to_thread(rows_of, run_id, forecast)
        duration = time.perf_counter() - started
        await store.save_run(
            conn,
            {
                "run_id": run_id,
                "horizon_days": len(forecast.days),
                "history_start": forecast.history_start,
                "history_end": forecast.history_end,
                "n_series": len(forecast.keys),
                "training_rows": training_rows,
                "backtest": self.backtest or {},
                "duration_s": duration,
                "scope": scope,
            },
            daily,
            monthly,
        )
        REFRESHES.labels("ok" if scope == "all" else "users").inc()
        REFRESH_DURATION.labels(scope).observe(duration)
        await self.publish(
            ForecastsUpdated(
                run_id=run_id,
                horizon_days=len(forecast.days),
                n_series=len(forecast.keys),
                backtest=self.backtest or {},
                created_at=datetime.now(UTC),
            )
        )
        log.info(
            "forecast run %s (%s): %d series in %.1fs", run_id, scope, len(forecast.keys), duration
        )
        return run_id

    async def run(self) -> None:
        await repeat(
            self.refresh_if_due,
            every_s=lambda: self.settings.forecast.check_interval_s,
            what="forecast refresh",
        )
