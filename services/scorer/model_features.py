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


def detector_view(X: np.ndarray, *, anchor: bool) -> np.ndarray:
    """The columns a detector reads. The anchor (the profile) reads the account's features; the
    density detectors read them without ``recent_unusual_amounts``, a fact about the account's
    past week rather than this transaction: to them, every purchase on a card with an unusual one
    this week would be a rare point, the ordinary ones included."""
    own = account_view(X)
    if anchor or own.ndim != 2 or own.shape[1] != len(FEATURE_NAMES):
        return own
    return own[:, : len(FEATURE_NAMES) - 1]


# Rows stored before ``recent_unusual_amounts`` existed: the account's features without it, then
# the confirmed-fraud columns.
_BEFORE_RECENT_UNUSUAL = len(FEATURE_NAMES) - 1
_STORED_BEFORE_RECENT_UNUSUAL = _BEFORE_RECENT_UNUSUAL + len(RISK_FEATURES)


def feature_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Stored feature rows as one matrix of ``MODEL_FEATURES`` columns. Columns a row was stored
    without (the confirmed-fraud ones, the recent unusual amounts) read zero: what they were."""
    X = np.zeros((len(rows), len(MODEL_FEATURES)))
    for i, row in enumerate(rows):
        if len(row) == len(MODEL_FEATURES):
            X[i] = row
        elif len(row) == _STORED_BEFORE_RECENT_UNUSUAL:
            X[i, :_BEFORE_RECENT_UNUSUAL] = row[:_BEFORE_RECENT_UNUSUAL]
            X[i, len(FEATURE_NAMES) :] = row[_BEFORE_RECENT_UNUSUAL:]
        else:  # stored before the confirmed-fraud columns too
            width = min(len(row), _BEFORE_RECENT_UNUSUAL)
            X[i, :width] = row[:width]
    return X
