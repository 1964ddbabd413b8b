"""Events the pipeline publishes, besides transactions themselves."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.scores import Reason, Severity


class DeadLetter(BaseModel):
    """A message that could not be processed, kept with its original bytes for replay."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Version of this event schema.")
    topic: str = Field(description="Topic the message was read from.")
    partition: int = Field(description="Partition it was read from.")
    offset: int = Field(description="Its offset there.")
    key: str | None = Field(None, description="Message key, decoded as UTF-8 with replacement.")
    value_b64: str = Field(description="The original message bytes, base64.")
    error: str = Field(description="Why it was rejected, naming the field where one is at fault.")
    consumer_group: str = Field(description="The consumer that rejected it.")
    failed_at: datetime = Field(description="When it was rejected (UTC).")


class AnomalyAlert(BaseModel):
    """A transaction the ensemble found unusual, on ``alerts.anomalies.v1``.

    Delivery is at-least-once: ``alert_id`` is stable, so consumers can drop repeats.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Version of this event schema.")
    alert_id: str = Field(description="Stable id, `<user_id>:<transaction_id>`.")
    user_id: str = Field(description="Owner of the transaction.")
    transaction_id: str = Field(description="The transaction that raised the alert.")
    account_id: str = Field(description="Account it happened on.")
    timestamp: datetime = Field(description="When the transaction happened.")
    amount: Decimal = Field(description="Its amount.")
    currency: str = Field(description="Its currency.")
    merchant: str | None = Field(None, description="Merchant as the bank printed it.")
    category: str | None = Field(None, description="Category, provided or predicted.")
    score: float = Field(ge=0, le=1, description="Ensemble score in [0, 1].")
    severity: Severity = Field(description="How far past the threshold the score is.")
    detector_scores: dict[str, float] = Field(description="Calibrated score of each detector.")
    explanation: list[Reason] = Field(description="Readable reasons, strongest first.")
    model_version: str = Field(description="Ensemble version that scored it.")
    scored_at: datetime = Field(description="When it was scored (UTC).")


class DriftEvent(BaseModel):
    """Spending in a scope moved past the drift threshold, on ``drift.events.v1``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Version of this event schema.")
    scope: Literal["global", "account"] = Field(description="What was compared.")
    user_id: str | None = Field(None, description="Owner of the account; null for global.")
    account_id: str | None = Field(None, description="The account; null for global.")
    metric: str = Field(description="The metric that crossed the threshold, e.g. category_jsd.")
    value: float = Field(description="Its value.")
    threshold: float = Field(description="The threshold it crossed.")
    metrics: dict[str, float] = Field(description="Every drift metric of this comparison.")
    current_window: tuple[datetime, datetime] = Field(description="Current window [start, end).")
    reference_window: tuple[datetime, datetime] = Field(description="Reference window.")
    top_contributors: list[dict[str, Any]] = Field(
        description="Categories whose share moved most (by PSI contribution)."
    )
    computed_at: datetime = Field(description="When it was computed (UTC).")


class ForecastsUpdated(BaseModel):
    """A forecast refresh finished, on ``forecasts.updated.v1``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Version of this event schema.")
    run_id: str = Field(description="The run; GET /v1/forecasts serves the latest.")
    horizon_days: int = Field(description="How many days ahead it forecasts.")
    n_series: int = Field(description="How many (user, account, category) series it covers.")
    backtest: dict[str, Any] = Field(
        description="Rolling-origin backtest: MASE and sMAPE of the model and of seasonal naive."
    )
    created_at: datetime = Field(description="When the run finished (UTC).")


class BudgetAlert(BaseModel):
    """A category's spending reached 80% or 100% of its monthly budget, or is projected to
    exceed it, on ``budgets.alerts.v1``.

    Raised at most once per user, category, month and kind. Delivery is at-least-once:
    ``alert_id`` is stable, so consumers can drop repeats.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "alert_id": "demo:budget:Dining:2026-11:reached_80",
                    "user_id": "demo",
                    "category": "Dining",
                    "month": "2026-11",
                    "kind": "reached_80",
                    "budget": "400.00",
                    "spent": "331.20",
                    "projected_p50": "452.00",
                    "status": "at_risk",
                    "text": "You have spent $331.20 of your $400.00 Dining budget for November.",
                    "raised_at": "2026-11-21T08:00:00Z",
                }
            ]
        },
    )

    schema_version: int = Field(1, description="Version of this event schema.")
    alert_id: str = Field(description="Stable id, `<user_id>:budget:<category>:<YYYY-MM>:<kind>`.")
    user_id: str = Field(description="Owner of the budget.")
    category: str = Field(description="The budgeted category.")
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="The calendar month, YYYY-MM.")
    kind: Literal["reached_80", "reached_100", "projected_over"] = Field(
        description="80% of the budget spent, all of it spent, or projected to end over it."
    )
    budget: Decimal = Field(description="The month's budget.")
    spent: Decimal = Field(description="Spent in the category this month when it was raised.")
    projected_p50: Decimal = Field(description="Projected month-end spending (median).")
    status: Literal["on_track", "at_risk", "over"] = Field(description="Budget status then.")
    text: str = Field(description="A sentence a person can read.")
    raised_at: datetime = Field(description="When it was raised (UTC).")
