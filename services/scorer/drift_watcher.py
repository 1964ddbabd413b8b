"""Computes drift as transactions arrive: for every scope with new data, at most once per interval
of event time, compare the current window with the reference window, store, and publish drift."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from schemas import DriftEvent
from services.core.db import Lock, advisory_lock
from services.core.logging import ctx
from services.core.metrics import JOB_SKIPS
from services.core.settings import Settings
from services.core.tasks import repeat
from services.scorer import store
from services.scorer.backlog import Backlog
from services.scorer.drift import DriftResult, WindowData, compare_windows, time_windows

log = logging.getLogger(__name__)

BACKFILL_WINDOWS = 35  # five weeks of daily comparisons for a history that arrives at once
# Drift is a slow signal: while the scorer works off a backlog, a pass waits, but never longer
# than this (a stream that always fills its batches must not starve drift).
MAX_DEFER_S = 60.0
DEFERRED = Counter(
    "spendstream_drift_passes_deferred_total",
    "Drift passes put off while the scorer worked off a backlog.",
)
GLOBAL_DRIFT = Gauge(
    "spendstream_drift_global", "Latest drift metrics of the global scope.", ["metric"]
)


@dataclass(frozen=True)
class Scope:
    kind: str  # "global" or "account"
    user_id: str = ""
    account_id: str = ""


class DriftWatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        publish: Callable[[DriftEvent], Awaitable[None]],
        backlog: Backlog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pool = pool
        self.settings = settings
        self.publish = publish
        self.backlog = backlog
        self.clock = clock
        self._last_pass = clock()

    @property
    def interval(self) -> timedelta:
        return timedelta(hours=self.settings.drift.interval_hours)

    def deferred(self) -> bool:
        """Whether this pass waits for the backlog: the windows of a backfilled history cost
        four queries each, on the event loop the scoring shares."""
        if self.backlog is None or not self.backlog.busy():
            return False
        return self.clock() - self._last_pass < MAX_DEFER_S

    async def check(self) -> int:
        """One pass over scopes with new data; returns how many comparisons were stored."""
        if self.deferred():
            DEFERRED.inc()
            return 0
        self._last_pass = self.clock()
        async with advisory_lock(self.pool, Lock.DRIFT) as conn:
            return 0 if conn is None else await self._check()  # None: another scorer is on it

    async def _check(self) -> int:
        after = await store.drift_progress(self.pool)
        accounts, last_seq = await store.accounts_with_new_data(self.pool, after)
        if not accounts:
            return 0
        stored = 0
        # The global window ends at the latest plausible event: one account's future-dated row
        # must not move everyone's window out of reach.
        plausible = datetime.now(UTC) + timedelta(days=1)
        sane = [r for r in accounts if r["watermark"] <= plausible]
        scopes = (
            [(Scope("global"), min(r["earliest"] for r in sane), max(r["watermark"] for r in sane))]
            if sane
            else []
        )
        scopes += [
            (Scope("account", r["user_id"], r["account_id"]), r["earliest"], r["watermark"])
            for r in accounts
        ]
        for scope, earliest, watermark in scopes:
            try:
                for end in self._window_ends(earliest, watermark):
                    stored += await self._compare(scope, end)
            except (OverflowError, ValueError, ArithmeticError) as exc:
                # One account's impossible data must not stop drift for everyone else.
                JOB_SKIPS.labels("drift", type(exc).__name__).inc()
                log.warning(
                    "skipping drift for a scope it cannot compute",
                    extra=ctx(
                        scope=scope.kind,
                        user_id=scope.user_id or None,
                        account_id=scope.account_id or None,
                        error_type=type(exc).__name__,
                    ),
                )
        await store.set_drift_progress(self.pool, last_seq)
        return stored

    def _window_ends(self, earliest: datetime, watermark: datetime) -> list[datetime]:
        """The watermarks to compare at, oldest first: one per interval of event time the new
        data spans, so a backfilled history shows the drift that happened in it, not only
        where it ends; at most BACKFILL_WINDOWS of them."""
        ends = [watermark]
        while len(ends) < BACKFILL_WINDOWS and ends[-1] - self.interval >= earliest:
            ends.append(ends[-1] - self.interval)
        return ends[::-1]

    async def _compare(self, scope: Scope, watermark: datetime) -> int:
        s = self.settings
        windows = time_windows(
            watermark, self.interval, s.drift.current_days, s.drift.reference_days
        )
        end = windows.end
        if await store.drift_computed(self.pool, scope.kind, scope.user_id, scope.account_id, end):
            return 0
        user = scope.user_id or None
        account = scope.account_id or None
        if s.drift.window_mode == "count":
            current_rows = await store.drift_window_rows(
                self.pool, user, account, None, end, limit=s.drift.current_events
            )
            reference_rows = await store.drift_window_rows(
                self.pool,
                user,
                account,
                None,
                end,
                skip=s.drift.current_events,
                limit=s.drift.reference_events,
            )
            current_start = reference_start = reference_end = None
        else:
            current_start = reference_end = windows.current_start
            reference_start = windows.reference_start
            current_rows = await store.drift_window_rows(
                self.pool, user, account, current_start, end
            )
            reference_rows = await store.drift_window_rows(
                self.pool, user, account, reference_start, reference_end
            )
        result = await asyncio.to_thread(
            compare_windows,
            WindowData.from_transactions(current_rows),
            WindowData.from_transactions(reference_rows),
            threshold=s.drift.threshold,
            min_events=s.drift.min_events,
        )
        row: dict[str, Any] = {
            "scope": scope.kind,
            "user_id": scope.user_id,
            "account_id": scope.account_id,
            "window_end": end,
            "current_start": current_start,
            "reference_start": reference_start,
            "reference_end": reference_end,
            "window_mode": s.drift.window_mode,
            "status": result.status,
            "n_current": result.n_current,
            "n_reference": result.n_reference,
            **result.metrics,
            "top_contributors": result.top_contributors,
            "breached": result.breached,
            "threshold": s.drift.threshold,
        }
        if not await store.save_drift(self.pool, row):
            return 0
        if scope.kind == "global":
            for name, value in result.metrics.items():
                GLOBAL_DRIFT.labels(name).set(value)
        if result.status == "drift":
            await self.publish(self._event(scope, result, row))
        return 1

    def _event(self, scope: Scope, result: DriftResult, row: dict[str, Any]) -> DriftEvent:
        metric = max(result.breached, key=lambda name: result.metrics[name])
        end: datetime = row["window_end"]
        return DriftEvent(
            scope="global" if scope.kind == "global" else "account",
            user_id=scope.user_id or None,
            account_id=scope.account_id or None,
            metric=metric,
            value=result.metrics[metric],
            threshold=self.settings.drift.threshold,
            metrics=result.metrics,
            current_window=(row["current_start"] or end, end),
            reference_window=(row["reference_start"] or end, row["reference_end"] or end),
            top_contributors=result.top_contributors,
            computed_at=datetime.now(UTC),
        )

    async def run(self) -> None:
        await repeat(
            self.check, every_s=lambda: self.settings.drift.check_interval_s, what="drift check"
        )
