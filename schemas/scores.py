"""A transaction's anomaly score and its explanation: one model for the scorer, the alert event
and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

Severity = Literal["low", "medium", "high", "critical"]


@with_config(ConfigDict(extra="ignore"))  # a newer scorer may say more; readers keep what they know
class Reason(TypedDict):
    """One reason a transaction scored as it did. A typed dict, not a model: the scorer builds
    one per reason on its hot path, and stores and publishes them as JSON as they are."""

    text: Annotated[str, Field(description="A sentence a person can read.")]
    feature: NotRequired[
        Annotated[str | None, Field(description="The feature behind the reason, if one is.")]
    ]
    value: NotRequired[
        Annotated[float | None, Field(description="That feature's value for this transaction.")]
    ]


class Score(BaseModel):
    """A transaction's anomaly score, as the API shows it with the transaction."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "score": 0.9991,
                    "is_anomaly": True,
                    "historical": False,
                    "severity": "high",
                    "detectors": {
                        "lof": 0.97,
                        "ocsvm": 0.999,
                        "autoencoder": 0.99,
                        "profile": 0.995,
                        "hst": 0.98,
                    },
                    "explanation": [
                        {
                            "text": "$412.00 at Groceries is 9.2× your usual $45.00",
                            "feature": "amount_robust_z",
                            "value": 8.3,
                        }
                    ],
                    "model_version": "ens-20261101T020000-48000",
                    "scored_at": "2026-11-03T11:41:08Z",
                }
            ]
        },
    )

    score: float = Field(description="Ensemble anomaly score in [0, 1].")
    is_anomaly: bool = Field(description="Whether the score crossed the alert threshold.")
    historical: bool = Field(
        False,
        description="Ingested days after it happened (an import, a backfill): scored, and "
        "listed if unusual, but never alerted live.",
    )
    severity: Severity | None = Field(description="How far past the threshold; null if normal.")
    detectors: dict[str, float] = Field(description="Calibrated score of each detector.")
    explanation: list[Reason] = Field(description="Why the score is what it is, strongest first.")
    model_version: str = Field(description="The model version that scored it.")
    scored_at: datetime = Field(description="When it was scored (UTC).")
