"""The columns the models read: the account's features, then what confirmed fraud says."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.scorer.confirmed import RISK_FEATURES, RISK_FEATURES_V1
from services.scorer.features import FEATURE_NAMES

MODEL_FEATURES: tuple[str, ...] = FEATURE_NAMES + RISK_FEATURES

# Facts the profile weighs and the density detectors never see:
# - ``recent_unusual_amounts`` is about the account's past week rather than this transaction: to
#   them, every purchase on a card with an unusual one this week would be a rare point, the
#   ordinary ones included;
# - ``amount_z_account_linear`` says again what ``amount_z_account`` says, in dollars: read by
#   distance, one fact would count twice, and its long tail would stretch their scale
#   (bench/results/anomaly_quality.json);
# - ``log_daily_rate`` is how busy the account is, the measure the profile reads its pace
#   against: to them, every purchase of an account busier or quieter than most would be rare.
PROFILE_ONLY = frozenset({"recent_unusual_amounts", "amount_z_account_linear", "log_daily_rate"})
DENSITY_COLUMNS = np.asarray(
    [i for i, name in enumerate(FEATURE_NAMES) if name not in PROFILE_ONLY]
)


def account_view(X: np.ndarray) -> np.ndarray:
    """The columns the unsupervised detectors read: the account's own features. Confirmed fraud
    is for the supervised model, which knows what it means; to a density model a terminal with a
    confirmed fraud would only be a rare point, and so would every card its owner still uses."""
    if X.ndim == 2 and X.shape[1] == len(MODEL_FEATURES):
        return X[:, : len(FEATURE_NAMES)]
    return X


def detector_view(X: np.ndarray, *, anchor: bool) -> np.ndarray:
    """The columns a detector reads. The anchor (the profile) reads the account's features; the
    density detectors read them without ``PROFILE_ONLY``."""
    own = account_view(X)
    if anchor or own.ndim != 2 or own.shape[1] != len(FEATURE_NAMES):
        return own
    return own[:, DENSITY_COLUMNS]


# The account's features as rows were stored before each was added, oldest first. The first was
# stored before the confirmed-fraud columns too, with as many columns as it had then; the others
# with the first five confirmed-fraud columns after them, and today's account features with
# either those five or all of them.
_ADDED_IN_ORDER = ("recent_unusual_amounts", "amount_z_account_linear", "log_daily_rate")
_STORED_LAYOUTS: tuple[tuple[str, ...], ...] = tuple(
    tuple(n for n in FEATURE_NAMES if n not in _ADDED_IN_ORDER[i:])
    for i in range(len(_ADDED_IN_ORDER))
)
_COLUMNS = {name: i for i, name in enumerate(MODEL_FEATURES)}
_POSITIONS = {
    len(layout) + len(RISK_FEATURES_V1): [_COLUMNS[name] for name in layout + RISK_FEATURES_V1]
    for layout in (*_STORED_LAYOUTS, FEATURE_NAMES)
}


def feature_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Stored feature rows as one matrix of ``MODEL_FEATURES`` columns. Columns a row was stored
    without (the confirmed-fraud ones, the recent unusual amounts, the amount's z in dollars,
    the account's daily rate, the merchant's confirmed fraud share) read zero: the value of an
    ordinary transaction, and of an account making one a day."""
    X = np.zeros((len(rows), len(MODEL_FEATURES)))
    oldest = len(_STORED_LAYOUTS[0])
    for i, row in enumerate(rows):
        if len(row) == len(MODEL_FEATURES):
            X[i] = row
        elif len(row) in _POSITIONS:
            X[i, _POSITIONS[len(row)]] = row
        else:  # stored before the confirmed-fraud columns too
            width = min(len(row), oldest)
            X[i, :width] = row[:width]
    return X
