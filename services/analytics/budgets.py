"""Budgets against actual spending, pure: how much of a month's budget is spent, where the month
is heading, and which alerts that earns.

The projection is month-to-date spending plus the forecast of the days still to come. The
forecast's month total carries the month-level (calibrated) interval; the days still to come take
the share of it that their daily medians make up, so the interval is never built by summing daily
quantiles. Without a forecast, the month-to-date pace is carried to the month's end, and the
projection says so.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from services.core.budgets import ForecastOfMonth, MonthInputs

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
WARNING_SHARE = Decimal("0.8")


class BudgetStatus(StrEnum):
    on_track = "on_track"
    at_risk = "at_risk"  # projected to end the month over budget
    over = "over"  # already spent more than the budget


class BudgetAlertKind(StrEnum):
    reached_80 = "reached_80"
    reached_100 = "reached_100"
    projected_over = "projected_over"


class ProjectionMethod(StrEnum):
    final = "final"  # the month is over: what was spent is what it came to
    forecast = "forecast"  # month to date plus the forecast of the remaining days
    pace = "pace"  # no forecast: month to date carried forward at its daily pace


@dataclass(frozen=True)
class Projection:
    p10: Decimal
    p50: Decimal
    p90: Decimal
    method: ProjectionMethod


@dataclass(frozen=True)
class BudgetLine:
    category: str
    month: date
    budget: Decimal
    spent: Decimal
    remaining: Decimal  # negative once over budget
    projected: Projection
    status: BudgetStatus
    override: bool = False  # the month has its own amount, not the standing monthly budget
    unconverted: dict[str, Decimal] = field(default_factory=dict)  # per currency, with no rate

    @property
    def spent_share(self) -> float:
        return float(self.spent / self.budget)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def days_in_month(month: date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def project(
    month: date, spent: Decimal, known_through: date | None, forecast: ForecastOfMonth | None
) -> Projection:
    """Where the month's spending ends. ``known_through`` is the last day whose spending is in
    (None: nothing of this month has happened yet); days after it are still to come."""
    last_day = month.replace(day=days_in_month(month))
    if known_through is not None and known_through >= last_day:
        return Projection(spent, spent, spent, ProjectionMethod.final)
    if forecast is not None and forecast.days:
        ahead = [p50 for day, p50 in forecast.days if known_through is None or day > known_through]
        total = sum((p50 for _, p50 in forecast.days), ZERO)
        share = sum(ahead, ZERO) / total if total > 0 else Decimal(len(ahead)) / len(forecast.days)
        low, mid, high = (_money(q * share) for q in (forecast.p10, forecast.p50, forecast.p90))
        return Projection(
            spent + low, spent + max(mid, low), spent + max(high, mid), ProjectionMethod.forecast
        )
    if known_through is None or known_through < month:
        return Projection(spent, spent, spent, ProjectionMethod.pace)
    elapsed = known_through.day
    at_pace = _money(spent * days_in_month(month) / elapsed)
    return Projection(spent, at_pace, at_pace, ProjectionMethod.pace)


def status_of(budget: Decimal, spent: Decimal, projected_p50: Decimal) -> BudgetStatus:
    if spent > budget:
        return BudgetStatus.over
    if projected_p50 > budget:
        return BudgetStatus.at_risk
    return BudgetStatus.on_track


def budget_line(
    category: str,
    month: date,
    budget: Decimal,
    spent: Decimal,
    known_through: date | None,
    forecast: ForecastOfMonth | None,
) -> BudgetLine:
    projected = project(month, spent, known_through, forecast)
    return BudgetLine(
        category=category,
        month=month,
        budget=budget,
        spent=spent,
        remaining=budget - spent,
        projected=projected,
        status=status_of(budget, spent, projected.p50),
    )


def lines_of(inputs: MonthInputs) -> list[BudgetLine]:
    return [
        replace(
            budget_line(
                b.category, inputs.month, b.amount, b.spent, inputs.known_through, b.forecast
            ),
            override=b.override is not None,
            unconverted=b.unconverted,
        )
        for b in inputs.budgets
    ]


def alert_kinds(line: BudgetLine) -> list[BudgetAlertKind]:
    """The alerts the line has earned so far. Each is raised once per category, month and kind,
    so a line that earns 'reached_100' has earned 'reached_80' as well. A projection only warns
    while the budget still holds: once it is spent, 'reached_100' has said more."""
    kinds = []
    if line.spent >= line.budget * WARNING_SHARE:
        kinds.append(BudgetAlertKind.reached_80)
    if line.spent >= line.budget:
        kinds.append(BudgetAlertKind.reached_100)
    elif line.projected.method is ProjectionMethod.forecast and line.projected.p50 > line.budget:
        kinds.append(BudgetAlertKind.projected_over)
    return kinds


def alert_id(user_id: str, category: str, month: date, kind: BudgetAlertKind) -> str:
    """Stable across re-deliveries and restarts: one id per user, category, month and kind."""
    return f"{user_id}:budget:{category}:{month:%Y-%m}:{kind.value}"
