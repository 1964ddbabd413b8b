from __future__ import annotations

from typing import Self

import numpy as np
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import RobustScaler

from services.scorer.detectors.base import as_2d

MAX_TRAINING_ROWS = 2_000  # every score is a neighbour query against these rows


class LOFDetector:
    """Local Outlier Factor in novelty mode: how much sparser a row's neighbourhood is than its
    neighbours' neighbourhoods, against a (sub-sampled) training set."""

    name = "lof"

    def __init__(self, seed: int = 0, n_neighbors: int = 35):
        self.seed = seed
        self.n_neighbors = n_neighbors
        self._scaler = RobustScaler(quantile_range=(5, 95))
        self._model: LocalOutlierFactor | None = None

    def fit(self, X: np.ndarray) -> Self:
        X = as_2d(X)
        if len(X) > MAX_TRAINING_ROWS:
            rows = np.random.default_rng(self.seed).choice(len(X), MAX_TRAINING_ROWS, replace=False)
            X = X[np.sort(rows)]
        Xs = self._scaler.fit_transform(X)
        self._model = LocalOutlierFactor(
            n_neighbors=min(self.n_neighbors, len(X) - 1), novelty=True, n_jobs=1
        ).fit(Xs)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("fit the detector first")
        return np.asarray(-self._model.score_samples(self._scaler.transform(as_2d(X))))

    def learn_one(self, x: np.ndarray) -> None:
        """Batch model: learns only in ``fit``."""
