"""Events the pipeline publishes, besides transactions themselves."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    severity: Literal["low", "medium", "high", "critical"] = Field(
        description="How far past the threshold the score is."
    )
    detector_scores: dict[str, float] = Field(description="Calibrated score of each detector.")
    explanation: list[dict[str, Any]] = Field(description="Readable reasons, strongest first.")
    model_version: str = Field(description="Ensemble version that scored it.")
    scored_at: datetime = Field(description="When it was scored (UTC).")
