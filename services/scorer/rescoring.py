"""Re-scoring with a new model: the transactions of the last days scored by an older model (or by
the online detector alone, before any ensemble was trained) get the new model's score, so the
anomalies list, the dashboard and each transaction's score show what the model now thinks. A
transaction the new model flags, and no model flagged before, is alerted then, once.

The stored feature rows make this cheap: no account history is replayed. The online detector's
score stays as it was when the transaction arrived (it learns from the stream, and cannot be
asked again about the past); the batch detectors and the combination are the new model's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import numpy as np
from prometheus_client import Counter

from schemas import AnomalyAlert
from schemas.scores import Reason, Severity
from services.core.db import Lock, advisory_lock
from services.scorer import store
from services.scorer.ensemble import EnsembleModel
from services.scorer.model_features import feature_matrix
from services.scorer.scoring import AnomalyScorer, severity

log = logging.getLogger(__name__)

RESCORE_DAYS = 30
BATCH = 2_000
RESCORED = Counter(
    "spendstream_scorer_rescored_total",
    "Transactions re-scored by a newer model, by whether that newly flagged them.",
    ["newly_flagged"],
)


@dataclass(frozen=True)
class Rescored:
    user_id: str
    transaction_id: str
    score: float
    is_anomaly: bool
    severity: Severity | None
    detector_scores: dict[str, float]
    explanation: list[Reason]
    newly_flagged: bool


def rescore(
    model: EnsembleModel, threshold: float, rows: Sequence[dict[str, Any]]
) -> list[Rescored]:
    """The new model's verdict on stored rows (features, detector_scores, explanation,
    is_anomaly). Pure."""
    X = feature_matrix([row["features"] for row in rows])
    p_values = model.p_values(X, [row["user_id"] for row in rows])
    p_values["hst"] = np.asarray(
        [1.0 - float(row["detector_scores"].get("hst", 0.0)) for row in rows]
    )
    scores = np.clip(model.combine(p_values), 0.0, 1.0).tolist()
    names = list(p_values)
    columns = {name: np.round(1.0 - p_values[name], 6).tolist() for name in names}
    out = []
    for i, row in enumerate(rows):
        detectors = {name: columns[name][i] for name in names}
        score = round(scores[i], 6)
        flagged = score >= threshold
        out.append(
            Rescored(
                row["user_id"],
                row["transaction_id"],
                score,
                flagged,
                severity(score, threshold),
                detectors,
                _explanation(row["explanation"], detectors, flagged),
                flagged and not row["is_anomaly"],
            )
        )
    return out


def _explanation(before: list[Reason], detectors: dict[str, float], flagged: bool) -> list[Reason]:
    """The reasons read from the transaction's context stay; the fallback naming the strongest
    detector is made anew from the new scores, and only for a flagged transaction."""
    reasons = [r for r in before if r.get("feature") not in detectors]
    if not reasons and flagged:
        name, value = max(detectors.items(), key=lambda item: item[1])
        reasons.append(
            {
                "text": f"unusual combination of features (strongest signal: {name})",
                "feature": name,
                "value": round(value, 4),
            }
        )
    return reasons


class Rescorer:
    """Brings recent scores up to the served model; one scorer at a time (advisory lock)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        scorer: AnomalyScorer,
        publish: Callable[[list[AnomalyAlert]], Awaitable[None]],
        days: int = RESCORE_DAYS,
    ):
        self.pool = pool
        self.scorer = scorer
        self.publish = publish
        self.days = days

    async def catch_up(self) -> int:
        """Re-score every stale row of the window; return how many were re-scored."""
        model = self.scorer.model
        if model is None:
            return 0
        done = 0
        async with advisory_lock(self.pool, Lock.RESCORING) as conn:
            if conn is None:
                return 0  # another scorer is at it
            while rows := await store.stale_scores(self.pool, model.version, self.days, BATCH):
                results = await asyncio.to_thread(
                    rescore, model, self.scorer.threshold, [dict(r) for r in rows]
                )
                await store.update_scores(self.pool, model.version, results)
                await self.publish(
                    [
                        _alert(row, r, model.version)
                        for row, r in zip(rows, results, strict=True)
                        if r.newly_flagged and not row["historical"]
                    ]
                )
                for r in results:
                    RESCORED.labels(str(r.newly_flagged).lower()).inc()
                done += len(results)
        if done:
            log.info("re-scored %d transactions with anomaly model %s", done, model.version)
        return done


def _alert(row: asyncpg.Record, result: Rescored, version: str) -> AnomalyAlert:
    return AnomalyAlert(
        alert_id=f"{result.user_id}:{result.transaction_id}",
        user_id=result.user_id,
        transaction_id=result.transaction_id,
        account_id=row["account_id"],
        timestamp=row["ts"].astimezone(timezone(timedelta(minutes=row["utc_offset_minutes"]))),
        amount=row["amount"],
        currency=row["currency"],
        merchant=row["merchant"],
        category=row["category"],
        score=result.score,
        severity=result.severity or "low",
        detector_scores=result.detector_scores,
        explanation=result.explanation,
        model_version=version,
        scored_at=datetime.now(UTC),
    )
