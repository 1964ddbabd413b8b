"""Live scoring: features, the online detector, the current batch ensemble, explanations.

Pure (no Kafka, HTTP or SQL), so eval and the benchmarks drive exactly what the service runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from schemas import TransactionEvent
from schemas.scores import Reason, Severity
from services.scorer.calibration import RollingCalibrator
from services.scorer.confirmed import ConfirmedFraud, descriptor_key
from services.scorer.detectors import HalfSpaceTreesDetector
from services.scorer.detectors.profile import prior_evidence
from services.scorer.ensemble import (
    ANCHOR,
    SECONDARY_SHARE,
    EnsembleModel,
    discount_young_accounts,
    fisher_statistic,
)
from services.scorer.explain import explain
from services.scorer.features import FeatureExtractor
from services.scorer.model_features import account_view, detector_view

COLD_START_VERSION = "hst-online"
LIVE_WITHIN = timedelta(days=3)


def is_historical(event: TransactionEvent, live_within: timedelta = LIVE_WITHIN) -> bool:
    """Whether the transaction reached ingest more than ``live_within`` after it happened: an
    import or a backfill. Scored like any other, but no live alert: nobody can act on it now."""
    return event.ingested_at - event.timestamp > live_within


def severity(score: float, threshold: float) -> Severity | None:
    """How far past the threshold, in tail probability: each step is a tenfold rarer score."""
    if score < threshold:
        return None
    tail = max(1.0 - score, 1e-12) / max(1.0 - threshold, 1e-12)
    if tail <= 0.01:
        return "critical"
    if tail <= 0.1:
        return "high"
    if tail <= 0.5:
        return "medium"
    return "low"


@dataclass(frozen=True)
class ScoredTransaction:
    score: float
    is_anomaly: bool
    severity: Severity | None
    model_version: str
    detector_scores: dict[str, float]
    explanation: list[Reason]
    features: list[float] = field(repr=False)
    historical: bool = False

    @property
    def alerts(self) -> bool:
        """Flagged, and live: only these go out on the alerts topic."""
        return self.is_anomaly and not self.historical


class AnomalyScorer:
    """Scores a batch in order. Half-Space Trees learns every transaction and serves alone until a
    batch ensemble is installed with ``use_model``; swapping models between batches drops nothing.
    """

    def __init__(
        self,
        threshold: float,
        *,
        seed: int = 0,
        max_accounts: int = 20_000,
        window: int = 256,
        live_within: timedelta = LIVE_WITHIN,
    ):
        self.threshold = threshold
        self.live_within = live_within
        self.features = FeatureExtractor(max_accounts=max_accounts, window=window)
        self.hst = HalfSpaceTreesDetector(seed=seed)
        self.hst_calibrator = RollingCalibrator(seed=seed)
        self.model: EnsembleModel | None = None
        self.confirmed = ConfirmedFraud()

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else COLD_START_VERSION

    def use_model(self, model: EnsembleModel) -> None:
        self.model = model

    @staticmethod
    def _cold_scores(X: np.ndarray, p_values: dict[str, np.ndarray]) -> np.ndarray:
        """Before any model: the profile's prior evidence, with the online detector's strong
        evidence, read as a tail probability (``1 - exp(-evidence)``). Absolute, not relative
        to a reference: a fresh stack flags what is rare for any account, not a quota of rows."""
        discount_young_accounts(p_values, X, ANCHOR)
        p_values["profile"] = np.exp(-prior_evidence(account_view(X)))
        evidence = fisher_statistic(p_values, {"hst": SECONDARY_SHARE}, anchor=ANCHOR)
        return np.asarray(1.0 - np.exp(-evidence))

    def score_batch(self, events: Sequence[TransactionEvent]) -> list[ScoredTransaction]:
        if not events:
            return []
        rows = []
        for event in events:
            features, context = self.features.transform(event)
            signals = self.confirmed.signals(
                event.user_id,
                event.account_id,
                descriptor_key(event.merchant, event.description),
                event.timestamp.timestamp(),
            )
            rows.append((features + signals.features(), context, signals))
        X = np.array([features for features, _, _ in rows], dtype=np.float64)
        hst_raw = self.hst.score_then_learn(detector_view(X, anchor=False))
        p_values = {"hst": self.hst_calibrator.p_value(hst_raw)}
        self.hst_calibrator.observe(hst_raw)
        model = self.model  # one model for the whole batch, even if a swap lands meanwhile
        if model is not None:
            p_values = model.p_values(X, [event.user_id for event in events], online=p_values)
            ensemble = model.combine(p_values)
        else:
            ensemble = self._cold_scores(X, p_values)
        version = model.version if model is not None else COLD_START_VERSION
        # Whole columns at once: per-row numpy scalars cost more than the detectors' own work.
        names = list(p_values)
        detector_rows = zip(
            *(np.round(1.0 - p_values[name], 6).tolist() for name in names), strict=True
        )
        scores = np.clip(ensemble, 0.0, 1.0).tolist()
        scored = []
        for event, (features, context, signals), score, detector_row in zip(
            events, rows, scores, detector_rows, strict=True
        ):
            detectors = dict(zip(names, detector_row, strict=True))
            flagged = score >= self.threshold
            scored.append(
                ScoredTransaction(
                    score=round(score, 6),
                    is_anomaly=flagged,
                    severity=severity(score, self.threshold),
                    model_version=version,
                    detector_scores=detectors,
                    explanation=explain(context, detectors, flagged=flagged, signals=signals),
                    features=features,
                    historical=is_historical(event, self.live_within),
                )
            )
        return scored
