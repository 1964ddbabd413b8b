"""Calibration of raw detector scores to [0, 1] against a reference distribution of scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibrator:
    """Maps a raw score to the probability of seeing one at least as extreme in the reference.

    ``p_value`` is the smoothed upper-tail empirical probability. Beyond the largest reference
    score it keeps shrinking exponentially, so scores far outside everything seen still rank above
    those just outside it. ``calibrate`` is ``1 - p_value``: 0.99 means "more unusual than 99% of
    what the detector was calibrated on".
    """

    reference: np.ndarray  # sorted
    tail_scale: float

    @classmethod
    def fit(cls, scores: np.ndarray) -> Calibrator:
        reference = np.sort(np.asarray(scores, dtype=np.float64))
        if len(reference) == 0:
            raise ValueError("cannot calibrate against no scores")
        q25, q75 = np.quantile(reference, [0.25, 0.75])
        spread = float(q75 - q25) or float(np.std(reference)) or 1.0
        return cls(reference=reference, tail_scale=spread)

    def p_value(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        m = len(self.reference)
        at_least = m - np.searchsorted(self.reference, scores, side="left")
        p = (at_least + 1.0) / (m + 1.0)
        beyond = np.maximum(scores - self.reference[-1], 0.0) / self.tail_scale
        return np.asarray(p * np.exp(-np.minimum(beyond, 700.0)))

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 - self.p_value(scores)


class RollingCalibrator:
    """Calibration for an online detector: against a bounded reservoir of its recent scores."""

    def __init__(self, capacity: int = 5_000, min_reference: int = 200, seed: int = 0):
        self.capacity = capacity
        self.min_reference = min_reference
        self._scores: list[float] = []
        self._seen = 0
        self._rng = np.random.default_rng(seed)
        self._fitted: Calibrator | None = None
        self._stale = 0

    @property
    def ready(self) -> bool:
        return len(self._scores) >= self.min_reference

    def observe(self, scores: np.ndarray) -> None:
        values = np.asarray(scores, dtype=np.float64)
        room = max(0, self.capacity - len(self._scores))
        self._scores.extend(values[:room].tolist())
        rest = values[room:]
        if len(rest):
            # Reservoir sampling keeps a uniform sample of everything seen: the i-th score seen
            # replaces a random slot with probability capacity / i. One draw for the batch, then
            # the replacements in order, so a later score wins a slot drawn twice.
            seen = self._seen + room + np.arange(1, len(rest) + 1)
            slots = self._rng.integers(seen)
            kept = slots < self.capacity
            for slot, score in zip(slots[kept].tolist(), rest[kept].tolist(), strict=True):
                self._scores[slot] = score
        self._seen += len(values)
        self._stale += len(values)
        if self.ready and (self._fitted is None or self._stale >= self.capacity // 10):
            self._fitted = Calibrator.fit(np.asarray(self._scores))
            self._stale = 0

    def p_value(self, scores: np.ndarray) -> np.ndarray:
        if self._fitted is None:
            return np.ones(len(scores))
        return self._fitted.p_value(scores)
