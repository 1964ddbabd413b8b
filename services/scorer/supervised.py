"""Learning from confirmed fraud: a gradient-boosted classifier on the same features.

The unsupervised detectors say what is unusual; confirmed fraud says what unusual means here: that
a large amount on a card with fraud last week matters more than one on a quiet card, that a
terminal with fraud a week ago is still skimming. XGBoost learns those interactions from the
labels people and chargeback feeds post. It is stacked on the ensemble's anchor: the anchor's
evidence is one of its inputs, so it also learns how far to trust "unusual for this account" on
this data, and its probability then leads the ensemble's verdict.

Labels are known only up to a horizon: fraud is confirmed days after it happens, so the newest
rows look innocent merely because nobody has looked yet. Rows after the newest confirmed fraud
are left out of training.

Privacy: a model learned from fewer than ``MIN_DISTINCT_USERS`` users' labels serves only those
users, trained on their rows alone. Only one learned from enough users serves everyone, with no
user above ``MAX_TRAINING_SHARE`` of the confirmed fraud it learned from.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from services.core.tenancy import MAX_TRAINING_SHARE, shareable

MIN_CONFIRMED = 20


@dataclass
class SupervisedModel:
    classifier: xgb.XGBClassifier
    users: frozenset[str] | None  # who it may serve; None: everyone
    confirmed: int

    def serves(self, user_id: str) -> bool:
        return self.users is None or user_id in self.users

    def p_values(
        self, X: np.ndarray, users: Sequence[str], anchor_evidence: np.ndarray
    ) -> np.ndarray:
        """``1 - P(fraud)`` per row, as the other detectors' p-values read; 1 (no evidence) for
        rows of users this model may not serve."""
        served = np.asarray([self.serves(user) for user in users], dtype=bool)
        out = np.ones(len(X))
        if served.any():
            inputs = stacked_inputs(X[served], anchor_evidence[served])
            out[served] = 1.0 - self.classifier.predict_proba(inputs)[:, 1]
        return np.clip(out, 1e-9, 1.0)


def stacked_inputs(X: np.ndarray, anchor_evidence: np.ndarray) -> np.ndarray:
    """The model features, then the anchor's evidence (``-log p``) for the same rows."""
    return np.column_stack([X, anchor_evidence])


def _capped_positives(labels: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Confirmed fraud to learn from, no user above ``MAX_TRAINING_SHARE`` of it (newest kept)."""
    positives = np.flatnonzero(labels == 1)
    cap = max(1, math.ceil(len(positives) * MAX_TRAINING_SHARE))
    taken: Counter[str] = Counter()
    keep = np.zeros(len(labels), dtype=bool)
    for i in positives[::-1]:
        if taken[users[i]] < cap:
            taken[users[i]] += 1
            keep[i] = True
    return keep


def train_supervised(
    X: np.ndarray,
    labels: Sequence[int],
    users: Sequence[str],
    anchor_evidence: np.ndarray,
    *,
    seed: int = 0,
) -> SupervisedModel | None:
    """A classifier from rows (in time order) whose labels are known (1 confirmed fraud, 0 not)
    and the anchor's evidence on them. None while there is too little confirmed fraud."""
    y = np.asarray(labels, dtype=int)
    owners = np.asarray(users, dtype=object)
    if y.sum() < MIN_CONFIRMED:
        return None
    confirmed_by = set(owners[y == 1].tolist())
    if shareable(len(confirmed_by)):
        scope = None
        rows = (y == 0) | _capped_positives(y, owners)
    else:
        scope = frozenset(confirmed_by)
        rows = np.isin(owners, list(confirmed_by))
    if len(set(y[rows].tolist())) < 2:
        return None  # all fraud or none among the rows it may learn from: nothing to tell apart
    # Leaves of at least 3 rows' weight, 80% of the columns per tree and a firmer L2 penalty:
    # confirmed fraud is a few hundred rows, and a leaf fitted to one compromised card's week
    # does not carry to the next card (bench/results/anomaly_quality.json, "supervised_tuning").
    classifier = xgb.XGBClassifier(
        n_estimators=150,
        max_depth=4,
        learning_rate=0.1,
        subsample=0.8,
        min_child_weight=3,
        colsample_bytree=0.8,
        reg_lambda=5.0,
        n_jobs=1,
        random_state=seed,
        verbosity=0,
    )
    classifier.fit(stacked_inputs(X[rows], np.asarray(anchor_evidence)[rows]), y[rows])
    return SupervisedModel(classifier, scope, int(y[rows].sum()))
