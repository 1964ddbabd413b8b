from __future__ import annotations

from typing import Protocol, Self, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    """What every detector offers. Scores are raw: higher means more anomalous; calibration to
    [0, 1] happens outside, against the detector's own score distribution.

    ``learn_one`` updates an online detector with one row; batch detectors ignore it and learn
    only in ``fit``. The seed is given to ``__init__``, so the same seed gives the same scores.
    """

    name: str

    def __init__(self, seed: int = 0) -> None: ...

    def fit(self, X: np.ndarray) -> Self: ...

    def score(self, X: np.ndarray) -> np.ndarray: ...

    def learn_one(self, x: np.ndarray) -> None: ...


def as_2d(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array of rows, got shape {X.shape}")
    return X
