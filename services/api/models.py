"""Response models of the query API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str = Field(description="A sentence a person can read.")
    feature: str | None = Field(None, description="The feature behind the reason.")
    value: float | None = Field(None, description="That feature's value for this transaction.")


class Score(BaseModel):
    score: float = Field(description="Ensemble anomaly score in [0, 1].")
    is_anomaly: bool = Field(description="Whether the score crossed the alert threshold.")
    severity: str | None = Field(description="low, medium, high or critical; null if normal.")
    detectors: dict[str, float] = Field(description="Calibrated score of each detector.")
    explanation: list[Reason] = Field(description="Why the score is what it is.")
    model_version: str
    scored_at: datetime


class TransactionOut(BaseModel):
    transaction_id: str
    account_id: str
    timestamp: datetime
    amount: Decimal
    direction: str
    currency: str
    merchant: str | None
    description: str | None
    category: str | None
    category_source: str = Field(description="provided, predicted, or none.")
    category_confidence: float | None
    channel: str
    country: str | None
    metadata: dict[str, Any] | None
    ingested_at: datetime
    score: Score | None = Field(description="Absent until the scorer has stored it.")


class Anomaly(TransactionOut):
    feedback: Literal["fraud", "legit"] | None = Field(description="The user's verdict, if any.")


class AnomalyPage(BaseModel):
    items: list[Anomaly]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "fraud"}]})

    label: Literal["fraud", "legit"] = Field(
        description="`fraud` keeps it out of training; `legit` teaches the models it is fine."
    )


class FeedbackOut(BaseModel):
    transaction_id: str
    label: Literal["fraud", "legit"]
    updated_at: datetime


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
