"""The columns the models read: the account's features, then what confirmed fraud says."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.scorer.confirmed import RISK_FEATURES
from services.scorer.features import FEATURE_NAMES

MODEL_FEATURES: tuple[str, ...] = FEATURE_NAMES + RISK_FEATURES


def account_view(X: np.ndarray) -> np.ndarray:
    """The columns the unsupervised detectors read: the account's own features. Confirmed fraud
    is for the supervised model, which knows what it means; to a density model a terminal with a
    confirmed fraud would only be a rare point, and so would every card its owner still uses."""
    if X.ndim == 2 and X.shape[1] == len(MODEL_FEATURES):
        return X[:, : len(FEATURE_NAMES)]
    return X


def feature_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Stored feature rows as one matrix of ``MODEL_FEATURES`` columns. Rows stored before the
    confirmed-fraud columns existed had none then: zeros, which is what they were."""
    X = np.zeros((len(rows), len(MODEL_FEATURES)))
    for i, row in enumerate(rows):
        width = min(len(row), len(MODEL_FEATURES))
        X[i, :width] = row[:width]
    return X
