"""Scoring, free of Kafka, HTTP and SQL so that eval and the benchmarks can call it directly."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Sequence

import numpy as np

from schemas import TransactionEvent
from services.scorer.store import ScoreRow

MODEL_VERSION = "baseline-1"
HISTORY_PER_SERIES = 200
MIN_HISTORY = 5


class BaselineScorer:
    """Robust z-score of the log amount against the account's own history in that category.

    A bounded history per (user, account, category) keeps memory flat however long it runs.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._history: dict[tuple[str, str, str], deque[float]] = defaultdict(
            lambda: deque(maxlen=HISTORY_PER_SERIES)
        )

    def score_batch(self, events: Sequence[TransactionEvent]) -> list[ScoreRow]:
        return [self._score_one(e) for e in events]

    def _score_one(self, event: TransactionEvent) -> ScoreRow:
        category = event.category or "Uncategorized"
        history = self._history[(event.user_id, event.account_id, category)]
        log_amount = math.log1p(float(event.amount))
        score, reasons = 0.0, []
        if len(history) >= MIN_HISTORY:
            values = np.fromiter(history, dtype=float)
            median = float(np.median(values))
            mad = float(np.median(np.abs(values - median))) * 1.4826 or 0.1
            z = (log_amount - median) / mad
            score = 1.0 / (1.0 + math.exp(-(z - 4.0)))
            ratio = math.expm1(log_amount) / max(math.expm1(median), 0.01)
            if score >= self.threshold:
                reasons.append(
                    {
                        "feature": "amount_robust_z",
                        "value": round(z, 2),
                        "text": f"amount {ratio:.1f}x your usual {category} spend",
                    }
                )
        history.append(log_amount)
        return ScoreRow(
            score=round(score, 4),
            is_anomaly=score >= self.threshold,
            model_version=MODEL_VERSION,
            detector_scores={"baseline": round(score, 4)},
            explanation=reasons,
        )
