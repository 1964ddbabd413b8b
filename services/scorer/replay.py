"""A labelled stream replayed through the scorer as the service runs it, without the service.

Pure (no Kafka, HTTP or SQL): batches scored in event-time order by ``AnomalyScorer``, the model
retrained on the newest scored rows whenever the service would retrain, confirmed fraud fed back
after a delay of event time. Every score is causal: it comes from the model serving when the row
arrived, never from one trained on later rows. ``spendstream eval anomalies --stream`` measures
the real pipeline; this is the fast loop for trying a change to the models, and what the bench
and the tests use.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from schemas import TransactionEvent
from services.scorer.confirmed import Confirmation, descriptor_key
from services.scorer.ensemble import (
    EnsembleModel,
    first_model_due,
    is_mature,
    rows_before_retraining,
    train_ensemble,
)
from services.scorer.model_features import MODEL_FEATURES
from services.scorer.scoring import AnomalyScorer

BATCH = 500


@dataclass
class ReplayResult:
    scores: np.ndarray
    flagged: np.ndarray
    versions: list[str]
    detector_scores: dict[str, np.ndarray] = field(default_factory=dict)
    features: np.ndarray | None = None


def replay(
    events: Sequence[TransactionEvent],
    labels: Sequence[int] | np.ndarray,
    *,
    threshold: float = 0.97,
    retrain_after: int = 5_000,
    min_training_rows: int = 1_000,
    max_training_rows: int = 50_000,
    feedback_delay: timedelta | None = None,
    seed: int = 0,
) -> ReplayResult:
    """Scores of ``events`` (in event-time order) as the live scorer would have served them.

    With ``feedback_delay``, each fraud label becomes known that much event time after its
    transaction, and training leaves confirmed fraud out, as the service's training does."""
    scorer = AnomalyScorer(threshold, seed=seed)
    rows: list[list[float]] = []
    scores: list[float] = []
    flagged: list[bool] = []
    versions: list[str] = []
    per_detector: dict[str, list[float]] = defaultdict(list)
    confirmed: set[int] = set()
    frauds = deque(i for i, label in enumerate(labels) if label)  # in event-time order
    trained_at = mature = 0
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        if feedback_delay is not None:
            now = batch[0].timestamp
            while (
                frauds and frauds[0] < start and events[frauds[0]].timestamp + feedback_delay <= now
            ):
                i = frauds.popleft()
                confirmed.add(i)
                scorer.confirmed.confirm(_confirmation(events[i]), events[i].transaction_id)
        for result in scorer.score_batch(batch):
            rows.append(result.features)
            scores.append(result.score)
            flagged.append(result.is_anomaly)
            versions.append(result.model_version)
            for name, value in result.detector_scores.items():
                per_detector[name].extend([math.nan] * (len(scores) - 1 - len(per_detector[name])))
                per_detector[name].append(value)
        for event in batch:  # the trade its confirmed fraud is a share of (live: PostgreSQL counts)
            scorer.confirmed.count_transaction(
                event.user_id,
                descriptor_key(event.merchant, event.description),
                event.timestamp.timestamp(),
            )
        if scorer.model is None:
            mature += sum(is_mature(row) for row in rows[len(rows) - len(batch) :])
            due = first_model_due(len(rows), mature, min_training_rows)
        else:
            due = len(rows) - trained_at >= rows_before_retraining(
                trained_at, min_training_rows, retrain_after
            )
        if due:
            first = max(0, len(rows) - max_training_rows)
            X = np.asarray([rows[i] for i in range(first, len(rows)) if i not in confirmed])
            model = train_ensemble(
                X, version=f"replay-{len(rows)}", feature_names=MODEL_FEATURES, seed=seed
            )
            _learn_from_labels(model, events, rows, confirmed, first, seed)
            scorer.use_model(model)
            trained_at = len(rows)
    width = len(scores)
    for values in per_detector.values():
        values.extend([math.nan] * (width - len(values)))
    return ReplayResult(
        scores=np.asarray(scores),
        flagged=np.asarray(flagged),
        versions=versions,
        detector_scores={name: np.asarray(values) for name, values in per_detector.items()},
        features=np.asarray(rows),
    )


def _learn_from_labels(
    model: EnsembleModel,
    events: Sequence[TransactionEvent],
    rows: list[list[float]],
    confirmed: set[int],
    first: int,
    seed: int,
) -> None:
    """As the service trains it: on rows up to the newest confirmed fraud."""
    if not confirmed:
        return
    horizon = max(events[i].timestamp for i in confirmed)
    known = [i for i in range(first, len(rows)) if events[i].timestamp <= horizon]
    model.learn_from_labels(
        np.asarray([rows[i] for i in known]),
        [int(i in confirmed) for i in known],
        [events[i].user_id for i in known],
        seed=seed,
    )


def _confirmation(event: TransactionEvent) -> Confirmation:
    return Confirmation(
        event.user_id,
        event.account_id,
        descriptor_key(event.merchant, event.description),
        event.timestamp.timestamp(),
    )


def amount_baseline(events: Sequence[TransactionEvent]) -> np.ndarray:
    """The simplest score: the amount itself."""
    return np.asarray([float(e.amount) for e in events])


def account_z_baseline(events: Sequence[TransactionEvent], min_history: int = 5) -> np.ndarray:
    """Causal robust z of each amount against the same account's earlier amounts (median and
    MAD); accounts with too little history score 0."""
    history: dict[tuple[str, str], list[float]] = defaultdict(list)
    recent: dict[tuple[str, str], deque[float]] = defaultdict(lambda: deque(maxlen=256))
    out = np.zeros(len(events))
    for i, event in enumerate(events):
        key = (event.user_id, event.account_id)
        amount = float(event.amount)
        values = history[key]
        if len(values) >= min_history:
            median = values[len(values) // 2]
            mad = float(np.median(np.abs(np.asarray(values) - median))) * 1.4826
            out[i] = (amount - median) / max(mad, 0.01 * max(median, 1.0))
        window = recent[key]
        if len(window) == window.maxlen:
            values.remove(window[0])
        window.append(amount)
        insort(values, amount)
    return np.where(np.isfinite(out), out, 0.0)


def last_days_mask(events: Sequence[TransactionEvent], days: float) -> np.ndarray:
    """Rows in the last ``days`` of event time."""
    if not events:
        return np.zeros(0, dtype=bool)
    end = max(e.timestamp for e in events)
    cut = end - timedelta(days=days)
    return np.asarray([e.timestamp > cut for e in events])
