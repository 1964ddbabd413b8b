"""The budget job: raises an alert on ``budgets.alerts.v1`` when a category's spending reaches
80% or 100% of its monthly budget, or is projected to end the month over it.

Each alert is raised at most once per user, category, month and kind: it is written to the
``budget_alerts`` outbox first (its key makes a second write a no-op), published, and then marked.
A crash between the two re-publishes it with the same ``alert_id`` on the next check, so delivery
is at-least-once and consumers drop repeats by id. One forecaster checks at a time (advisory lock).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import asyncpg
from prometheus_client import Counter

from schemas import BudgetAlert
from services.analytics.budgets import (
    BudgetAlertKind,
    BudgetLine,
    alert_id,
    alert_kinds,
    lines_of,
)
from services.core.budgets import month_inputs
from services.core.db import Lock, advisory_lock
from services.core.logging import ctx
from services.core.settings import Settings
from services.core.tasks import repeat
from services.forecaster import store

log = logging.getLogger(__name__)

BUDGET_ALERTS = Counter(
    "spendstream_budget_alerts_total",
    "Budget alerts published on budgets.alerts.v1 (each once per category, month and kind).",
    ["kind"],
)


def describe(line: BudgetLine, kind: BudgetAlertKind) -> str:
    """The sentence a person reads. Amounts carry no currency symbol: a budget counts the
    category's spending in whatever currency it was made."""
    month = f"{line.month:%B %Y}"
    of_budget = f"{line.spent:,.2f} of your {line.budget:,.2f} {line.category} budget for {month}"
    if kind is BudgetAlertKind.projected_over:
        return (
            f"At this rate your {line.category} spending ends {month} near "
            f"{line.projected.p50:,.2f}, over its {line.budget:,.2f} budget "
            f"({line.spent:,.2f} spent so far)."
        )
    if kind is BudgetAlertKind.reached_100:
        return f"You have spent all of your {line.category} budget: {of_budget}."
    return f"You have spent {of_budget}."


def alert_of(user_id: str, line: BudgetLine, kind: BudgetAlertKind, now: datetime) -> BudgetAlert:
    return BudgetAlert(
        alert_id=alert_id(user_id, line.category, line.month, kind),
        user_id=user_id,
        category=line.category,
        month=f"{line.month:%Y-%m}",
        kind=kind.value,
        budget=line.budget,
        spent=line.spent,
        projected_p50=line.projected.p50,
        status=line.status.value,
        text=describe(line, kind),
        raised_at=now,
    )


class BudgetWatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        publish: Callable[[BudgetAlert], Awaitable[None]],
    ):
        self.pool = pool
        self.live_within = timedelta(hours=settings.scorer.live_alert_within_hours)
        self.every_s = settings.forecast.budget_check_interval_s
        self.publish = publish

    async def check(self) -> int:
        """Raise what is due and publish what is unpublished; returns how many were published."""
        async with advisory_lock(self.pool, Lock.BUDGET_ALERTS) as conn:
            if conn is None:
                return 0
            await self.raise_due(datetime.now(UTC))
            return await self.publish_pending()

    async def raise_due(self, now: datetime) -> int:
        """Write each newly earned alert of each user's current month to the outbox."""
        raised = 0
        for row in await store.budget_users_live(self.pool, self.live_within):
            month = date(row["last_day"].year, row["last_day"].month, 1)
            inputs = await month_inputs(self.pool, row["user_id"], month, now.date())
            for line in lines_of(inputs):
                for kind in alert_kinds(line):
                    alert = alert_of(row["user_id"], line, kind, now)
                    raised += await store.record_budget_alert(self.pool, alert)
        return raised

    async def publish_pending(self) -> int:
        published = 0
        for alert in await store.unpublished_budget_alerts(self.pool):
            await self.publish(alert)
            await store.mark_budget_alert_published(self.pool, alert.alert_id)
            BUDGET_ALERTS.labels(alert.kind).inc()
            published += 1
            log.info(
                "budget alert %s",
                alert.kind,
                extra=ctx(user_id=alert.user_id, category=alert.category, month=alert.month),
            )
        return published

    async def run(self) -> None:
        await repeat(self.check, every_s=lambda: self.every_s, what="budget check")
