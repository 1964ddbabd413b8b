from __future__ import annotations

from typing import Self

import numpy as np
from river import anomaly, preprocessing

from services.scorer.detectors.base import as_2d


class HalfSpaceTreesDetector:
    """River's Half-Space Trees: online, so it learns every transaction and scores from the first
    one on, before any batch model exists. Inputs are scaled to [0, 1] by an online min-max scaler,
    as the trees expect."""

    name = "hst"

    def __init__(self, seed: int = 0, n_trees: int = 25, height: int = 8, window_size: int = 250):
        self.seed = seed
        self._scaler = preprocessing.MinMaxScaler()
        self._model = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._names: list[str] | None = None

    def _row(self, x: np.ndarray) -> dict[str, float]:
        if self._names is None or len(self._names) != len(x):
            self._names = [f"f{i}" for i in range(len(x))]
        return dict(zip(self._names, map(float, x), strict=True))

    def fit(self, X: np.ndarray) -> Self:
        for x in as_2d(X):
            self.learn_one(x)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        scores = np.empty(len(X))
        for i, x in enumerate(as_2d(X)):
            scores[i] = self._model.score_one(self._scaler.transform_one(self._row(x)))
        return scores

    def learn_one(self, x: np.ndarray) -> None:
        row = self._row(x)
        self._scaler.learn_one(row)
        self._model.learn_one(self._scaler.transform_one(row))

    def score_then_learn(self, X: np.ndarray) -> np.ndarray:
        """Prequential use on a stream: each row is scored before it is learnt."""
        scores = np.empty(len(X))
        for i, x in enumerate(as_2d(X)):
            row = self._row(x)
            self._scaler.learn_one(row)
            scaled = self._scaler.transform_one(row)
            scores[i] = self._model.score_one(scaled)
            self._model.learn_one(scaled)
        return scores
