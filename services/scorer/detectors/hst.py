from __future__ import annotations

from typing import Self

import numpy as np
from river import anomaly

from services.scorer.detectors.base import as_2d


class HalfSpaceTreesDetector:
    """River's Half-Space Trees: online, so it learns every transaction and scores from the first
    one on, before any batch model exists.

    The trees expect inputs in [0, 1]. Rows are min-max scaled online, as River's MinMaxScaler
    does (each row with the extremes seen up to and including it), but vectorized over a batch.
    """

    name = "hst"

    def __init__(self, seed: int = 0, n_trees: int = 10, height: int = 8, window_size: int = 250):
        self.seed = seed
        self._model = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._low: np.ndarray | None = None
        self._high: np.ndarray | None = None
        self._names: list[str] = []

    def _scale(self, X: np.ndarray, *, learn: bool) -> list[dict[str, float]]:
        if self._low is None or self._high is None or self._low.shape[0] != X.shape[1]:
            self._low, self._high = X[0].copy(), X[0].copy()
            self._names = [f"f{i}" for i in range(X.shape[1])]
        if learn:
            low = np.minimum.accumulate(np.vstack([self._low, X]), axis=0)[1:]
            high = np.maximum.accumulate(np.vstack([self._high, X]), axis=0)[1:]
            self._low, self._high = low[-1].copy(), high[-1].copy()
        else:
            low, high = self._low, self._high
        span = np.where(high > low, high - low, 1.0)
        scaled = np.clip((X - low) / span, 0.0, 1.0)
        return [dict(zip(self._names, row, strict=True)) for row in scaled.tolist()]

    def fit(self, X: np.ndarray) -> Self:
        for row in self._scale(as_2d(X), learn=True):
            self._model.learn_one(row)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.array([self._model.score_one(row) for row in self._scale(as_2d(X), learn=False)])

    def learn_one(self, x: np.ndarray) -> None:
        self._model.learn_one(self._scale(as_2d(x.reshape(1, -1)), learn=True)[0])

    def score_then_learn(self, X: np.ndarray) -> np.ndarray:
        """Prequential use on a stream: each row is scored before it is learnt."""
        scores = np.empty(len(X))
        for i, row in enumerate(self._scale(as_2d(X), learn=True)):
            scores[i] = self._model.score_one(row)
            self._model.learn_one(row)
        return scores
