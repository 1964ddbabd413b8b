"""Refreshes forecasts on a schedule and after enough new data. One forecaster refreshes at a
time (PostgreSQL advisory lock); training runs in a thread, so consumption never waits for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pandas as pd
from prometheus_client import Counter, Gauge, Histogram

from schemas import ForecastsUpdated
from services.core.db import advisory_lock
from services.core.logging import ctx
from services.core.metrics import JOB_SKIPS
from services.core.settings import Settings
from services.core.tasks import repeat
from services.forecaster import store
from services.forecaster.forecasting import ForecastConfig, ForecastRun, forecast_all

log = logging.getLogger(__name__)

REFRESH_LOCK_ID = 0x5E7D_0004
KEYS = ("user_id", "account_id", "category")
REFRESHES = Counter("spendstream_forecaster_refresh_runs_total", "Forecast refreshes.", ["outcome"])
REFRESH_DURATION = Histogram(
    "spendstream_forecaster_refresh_duration_seconds",
    "Time to backtest, fit and forecast.",
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BACKTEST_MASE = Gauge(
    "spendstream_forecaster_backtest_mase", "MASE of the latest backtest.", ["forecaster"]
)


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def rows_of(
    run_id: str, run: ForecastRun
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    daily = [
        (run_id, *key, day.date(), _money(p10), _money(p50), _money(p90))
        for i, key in enumerate(run.keys)
        for day, (p10, p50, p90) in zip(run.dates, run.daily[i].tolist(), strict=True)
    ]
    monthly = [
        (run_id, *key, month.date(), days, _money(p10), _money(p50), _money(p90))
        for key, month, days, p10, p50, p90 in run.monthly()
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
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        publish: Callable[[ForecastsUpdated], Awaitable[None]],
    ):
        self.pool = pool
        self.settings = settings
        self.publish = publish

    async def due(self) -> bool:
        s = self.settings
        if await store.history_days(self.pool) < s.forecast_min_days:
            return False
        latest = await store.latest_run(self.pool)
        if latest is None:
            return True
        new = await store.counted_since(self.pool, latest["created_at"])
        age = (datetime.now(UTC) - latest["created_at"]).total_seconds()
        return new >= s.forecast_refresh_after_transactions or (
            new > 0 and age >= s.forecast_refresh_interval_s
        )

    async def refresh_if_due(self) -> str | None:
        if not await self.due():
            return None
        async with advisory_lock(self.pool, REFRESH_LOCK_ID) as conn:
            if conn is None or not await self.due():
                return None
            return await self._refresh(conn)

    async def _refresh(self, conn: asyncpg.Connection) -> str:
        s = self.settings
        started = time.perf_counter()
        records = await store.daily_debits(self.pool)
        frame = plausible_days(
            pd.DataFrame([dict(r) for r in records], columns=[*KEYS, "day", "spent"]),
            datetime.now(UTC).date(),
        )
        config = ForecastConfig(horizon=s.forecast_horizon_days)
        try:
            run = await asyncio.to_thread(
                forecast_all,
                frame,
                KEYS,
                config,
                n_folds=s.forecast_backtest_folds,
                max_rows=s.forecast_max_training_rows,
            )
        except ValueError:
            REFRESHES.labels("skipped").inc()
            raise
        run_id = f"fc-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        daily, monthly = await asyncio.to_thread(rows_of, run_id, run)
        duration = time.perf_counter() - started
        backtest = run.backtest.as_dict() | {"folds": run.backtest.folds}
        await store.save_run(
            conn,
            {
                "run_id": run_id,
                "horizon_days": config.horizon,
                "history_start": run.history_start.date(),
                "history_end": run.history_end.date(),
                "n_series": len(run.keys),
                "training_rows": run.training_rows,
                "backtest": backtest,
                "duration_s": duration,
            },
            daily,
            monthly,
        )
        REFRESHES.labels("ok").inc()
        REFRESH_DURATION.observe(duration)
        BACKTEST_MASE.labels("model").set(run.backtest.model["mase"])
        BACKTEST_MASE.labels("seasonal_naive").set(run.backtest.seasonal_naive["mase"])
        await self.publish(
            ForecastsUpdated(
                run_id=run_id,
                horizon_days=config.horizon,
                n_series=len(run.keys),
                backtest=run.backtest.as_dict(),
                created_at=datetime.now(UTC),
            )
        )
        log.info("forecast run %s: %d series in %.1fs", run_id, len(run.keys), duration)
        return run_id

    async def run(self) -> None:
        await repeat(
            self.refresh_if_due,
            every_s=lambda: self.settings.forecast_check_interval_s,
            what="forecast refresh",
        )
