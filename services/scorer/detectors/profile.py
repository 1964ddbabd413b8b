from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Self

import numpy as np
from scipy.special import pdtrc

from services.scorer.calibration import Calibrator
from services.scorer.detectors.base import as_2d
from services.scorer.features import FEATURE_NAMES

# Which way each feature is unusual: +1 high, -1 low, 0 not evidence on its own (the hour of the
# day, the weekday: ordinary variety, which the other detectors already weigh in combination).
# Half weight where one fact has several features, so it is not counted three times over. The
# account's recent unusual amounts say something about the account, not about this transaction:
# not evidence on their own, they weigh the amount's evidence (``RECENT_UNUSUAL_BOOST``). The
# amount against the account's habit is read in dollars, not in log: better on personal-finance
# histories and on the demo through the pipeline, level on card streams
# (bench/results/anomaly_quality.json). The log z stays a feature: the density detectors read
# it, and before any model it speaks for the amount.
FEATURE_EVIDENCE: Mapping[str, float] = {
    "log_amount": 0.5,
    "amount_robust_z": 0.5,
    "amount_z_account_linear": 1.0,
    "amount_z_merchant": 0.5,
    "velocity_1h": 0.5,
    "velocity_24h": 0.5,
    "merchant_new": 0.5,
    "hour_share": -0.5,
    "foreign_country": 1.0,
    "foreign_currency": 0.5,
    "duplicate_within_24h": 1.0,
    "log_seconds_since_previous": -0.5,
}


# Surprise below this (a tail probability above about 1 in 3) is ordinary variety, not
# evidence: summed over a dozen features it would only add noise to the facts that stand out.
NOISE_FLOOR = 1.0
# An unusual amount on an account that had others this week is likelier fraud: a compromised card
# is used for days. Each earlier one adds this share to the amount's evidence, up to four.
RECENT_UNUSUAL_BOOST = 0.25
MAX_RECENT_UNUSUAL = 4


# Several unusual amounts on one account within a week mark a compromised card, whose next
# purchases are likelier fraud even at ordinary amounts: a thief inflates some and not others.
# One or two are a person's own big week (a sofa, then its delivery). So each unusual debit past
# the second adds this much evidence to every debit of the account, up to this many counted
# (bench/results/anomaly_quality.json, "compromise_context_2026_12_04").
COMPROMISE_FREE_UNUSUAL = 2
COMPROMISE_EVIDENCE = 0.5
MAX_COMPROMISE_UNUSUAL = 2


# The account's pace is read against its own: three purchases within the hour are news on an
# account that makes one a day and ordinary on one that makes ten. Once a model is fit, the count
# within the hour reads as its Poisson surprise at the account's hourly rate, the day's count as
# its ratio to the daily rate, and the gap since the previous transaction in units of the
# account's usual gap. Against the population instead, a busy account's every second purchase
# was rare, and a quiet account's burst was not (bench/results/anomaly_quality.json,
# "relative_pace_2026_12_03").
_VELOCITY_1H = FEATURE_NAMES.index("velocity_1h")
_VELOCITY_24H = FEATURE_NAMES.index("velocity_24h")
_GAP = FEATURE_NAMES.index("log_seconds_since_previous")
_DAILY_RATE = FEATURE_NAMES.index("log_daily_rate")
MIN_HOURLY_RATE = 1e-4


def relative_pace(X: np.ndarray) -> np.ndarray:
    """Spendstream feature rows with their pace read against the account's own daily rate;
    any other table's columns as they are."""
    if X.shape[1] != len(FEATURE_NAMES):
        return X
    daily = np.exp(X[:, _DAILY_RATE])
    within_hour = X[:, _VELOCITY_1H]
    hourly = np.maximum(daily / 24, MIN_HOURLY_RATE)
    at_least_as_many = pdtrc(np.maximum(within_hour - 1, 0), hourly)
    paced = X.copy()
    paced[:, _VELOCITY_1H] = np.where(
        within_hour > 0, -np.log(np.maximum(at_least_as_many, 1e-300)), 0.0
    )
    paced[:, _VELOCITY_24H] = np.log1p(np.maximum(X[:, _VELOCITY_24H], 0.0)) - np.log1p(daily)
    paced[:, _GAP] = X[:, _GAP] + X[:, _DAILY_RATE]
    return paced


# Whether pace is news depends on the fraud a population has: an account taken over spends in a
# burst, a stolen card number is used at the card's own pace. Each pace fact weighs, on the
# training rows and without labels, by its lift: how much the other facts' evidence rises where
# it fires, against the median fact's lift, squared and kept within ``PACE_WEIGHT_RANGE``. Where a
# burst comes with an unusual amount or a new merchant, it counts more; where it comes with
# nothing else, it is a busy account's variety and counts less. Every other fact counts as it
# did: weighed the same way, the amount's facts and the rest lost on the demo and on finforge
# (bench/results/anomaly_quality.json, "pace_lift_2026_12_03").
PACE_LIFT_POWER = 2.0
PACE_WEIGHT_RANGE = (0.25, 4.0)
_PACE_COLUMNS = (_VELOCITY_1H, _VELOCITY_24H, _GAP)


def pace_weights(evidence: np.ndarray) -> np.ndarray:
    """Per fact, what its weight is multiplied by: 1, or for the pace facts their lift on the
    other facts' evidence (``evidence``: rows by facts, on the training rows)."""
    multipliers = np.ones(evidence.shape[1])
    total = evidence.sum(axis=1)
    lifts = {}
    for j in np.flatnonzero(evidence.any(axis=0)).tolist():
        fires, rest = evidence[:, j] > 0, total - evidence[:, j]
        if rest.mean() > 0:
            lifts[j] = float(rest[fires].mean() / rest.mean())
    if len(lifts) < 3:
        return multipliers
    typical = float(np.median(list(lifts.values())))
    for j in _PACE_COLUMNS:
        if j in lifts and typical > 0:
            ratio = (lifts[j] / typical) ** PACE_LIFT_POWER
            multipliers[j] = float(np.clip(ratio, *PACE_WEIGHT_RANGE))
    return multipliers


# Money coming in (a refund, a card payment, a salary) is judged as what it is: its size and its
# sender are no evidence of fraud against the account's spending habits.
AMOUNT_FACTS = frozenset(
    {
        "log_amount",
        "amount_robust_z",
        "amount_z_account",
        "amount_z_account_linear",
        "amount_z_merchant",
    }
)
NOT_EVIDENCE_FOR_CREDITS = AMOUNT_FACTS | {"merchant_new"}
_IS_CREDIT = FEATURE_NAMES.index("is_credit")
_RECENT_UNUSUAL = FEATURE_NAMES.index("recent_unusual_amounts")
_AMOUNT_COLUMNS = frozenset(FEATURE_NAMES.index(name) for name in AMOUNT_FACTS)


def column_evidence(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each column's unusual direction (+1 high, -1 low, 0 either tail) and weight: Spendstream's
    features by ``FEATURE_EVIDENCE``, any other table's columns two-sided with weight 1."""
    if width != len(FEATURE_NAMES):
        return np.zeros(width), np.ones(width)
    signed = np.asarray([FEATURE_EVIDENCE.get(name, 0.0) for name in FEATURE_NAMES])
    return np.sign(signed), np.abs(signed)


_CREDIT_NEUTRAL = np.asarray([name in NOT_EVIDENCE_FOR_CREDITS for name in FEATURE_NAMES])


def _counts(X: np.ndarray) -> np.ndarray:
    """Per row and column: 1 where the column is evidence for the row, 0 for credits where it
    is not."""
    counts = np.ones(X.shape)
    if X.shape[1] == len(FEATURE_NAMES):
        counts[np.ix_(X[:, _IS_CREDIT] >= 0.5, _CREDIT_NEUTRAL)] = 0.0
    return counts


def compromise_evidence(X: np.ndarray) -> np.ndarray:
    """Per row, the evidence the account's recent unusual debits add to a debit
    (``COMPROMISE_EVIDENCE``); 0 for money in, and for another table's columns."""
    if X.shape[1] != len(FEATURE_NAMES):
        return np.zeros(len(X))
    beyond = np.clip(X[:, _RECENT_UNUSUAL] - COMPROMISE_FREE_UNUSUAL, 0.0, MAX_COMPROMISE_UNUSUAL)
    return np.asarray(COMPROMISE_EVIDENCE * beyond * (X[:, _IS_CREDIT] < 0.5))


# Before any model is trained: a prior tail for each fact, ``p = exp(-(v - at) / scale)`` past
# ``at`` in the feature's unusual direction, so the very first transaction of a fresh stack gets
# a score that means something. Each says how rare a value is for a typical card account:
# amounts 3 robust z above the account's habit about 1 in 20, three more purchases within the
# hour 1 in 30, a duplicate 1 in 100, a foreign country 1 in 50, a first visit 1 in 3. The
# amount's z in dollars has none: at a young account its spread is mostly the prior's own guess.
PRIOR_TAILS: Mapping[str, tuple[float, float]] = {  # feature: (at, scale)
    "log_amount": (math.log1p(150) - 2.3 * 0.8, 0.8),  # 1 in 10 above $150
    "amount_robust_z": (0.0, 1.0),
    "amount_z_account": (0.0, 1.0),
    "amount_z_merchant": (0.0, 1.0),
    "velocity_1h": (0.0, 0.9),
    "velocity_24h": (3.0, 3.0),
    "merchant_new": (0.0, 1 / math.log(3)),
    "hour_share": (-0.25, 0.25 / math.log(33)),  # oriented: minus the share
    "foreign_country": (0.0, 1 / math.log(50)),
    "foreign_currency": (0.0, 1 / math.log(30)),
    "duplicate_within_24h": (0.0, 1 / math.log(100)),
    "log_seconds_since_previous": (-7.0, 1.2),  # oriented: minus the log gap
}


# The amount's tails are read on the rows of accounts that had no unusual amount in their past
# week. A compromised card's inflated purchases come several to a week: in the reference, on a
# stream where a tenth of the rows are fraud, they taught the profile that an amount five times
# the habit is common, far more than any genuine one is, which flattened the evidence of a card's
# first inflated purchase. A person's own big amounts come after calm weeks as well as busy ones,
# so heavy-tailed spending keeps its tail (bench/results/anomaly_quality.json,
# "calm_reference_2026_12_04").
MIN_CALM_ROWS = 200


def calm_rows(X: np.ndarray) -> np.ndarray:
    """Which training rows the amount's tails are read on: those of accounts with no unusual
    amount in the past week, where there are ``MIN_CALM_ROWS``; else every row."""
    every = np.ones(len(X), dtype=bool)
    if X.shape[1] != len(FEATURE_NAMES):
        return every
    calm = X[:, _RECENT_UNUSUAL] < 0.5
    return calm if int(calm.sum()) >= MIN_CALM_ROWS else every


def _evidence(surprise: np.ndarray, weight: float) -> np.ndarray:
    return np.asarray(float(weight) * np.maximum(surprise - NOISE_FLOOR, 0.0))


def _amount_boost(X: np.ndarray) -> np.ndarray:
    """Per row, what the amount's evidence is multiplied by: 1, plus the account's recent
    unusual amounts' share."""
    if X.shape[1] != len(FEATURE_NAMES):
        return np.ones(len(X))  # another table's columns: no such fact
    recent = np.minimum(X[:, _RECENT_UNUSUAL], MAX_RECENT_UNUSUAL)
    return np.asarray(1.0 + RECENT_UNUSUAL_BOOST * recent)


# Before any model, the log z speaks for the amount against the account's habit, at the weight
# the dollar reading has once a model is fit.
_PRIOR_WEIGHTS = {
    **FEATURE_EVIDENCE,
    "amount_z_account": FEATURE_EVIDENCE["amount_z_account_linear"],
}


def prior_evidence(X: np.ndarray) -> np.ndarray:
    """The profile's evidence for Spendstream feature rows from ``PRIOR_TAILS`` alone."""
    X = as_2d(X)
    total = compromise_evidence(X)
    if X.shape[1] != len(FEATURE_NAMES):
        return total
    counts = _counts(X)
    for j, name in enumerate(FEATURE_NAMES):
        signed = _PRIOR_WEIGHTS.get(name, 0.0)
        if name in PRIOR_TAILS and signed != 0:
            at, scale = PRIOR_TAILS[name]
            surprise = np.maximum(X[:, j] * np.sign(signed) - at, 0.0) / scale
            total += _evidence(surprise, abs(signed)) * counts[:, j]
    return total


class ProfileDetector:
    """How surprising each behavioural fact is against the population, summed: the amount
    against the account's own habit and the category's, bursts, duplicates, a foreign country, an
    hour the account rarely spends at; with the account's unusual week (``compromise_evidence``).
    Each feature's tail probability comes from the training rows, and ``-log p`` adds up over
    features (a histogram-based outlier score, one-sided where the direction is known). The
    features themselves are per account, so this is the detector that reads each account's own
    behaviour first; a young account's features sit at their neutral values and score low."""

    name = "profile"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._signs = self._weights = self._centres = np.zeros(0)
        self._tails: list[Calibrator | None] = []

    def _oriented(self, X: np.ndarray) -> np.ndarray:
        two_sided = np.abs(X - self._centres)
        return np.asarray(np.where(self._signs == 0, two_sided, X * self._signs))

    def fit(self, X: np.ndarray) -> Self:
        X = relative_pace(as_2d(X))
        self._signs, self._weights = column_evidence(X.shape[1])
        self._centres = np.median(X, axis=0)
        oriented, calm = self._oriented(X), calm_rows(X)
        self._tails = [
            Calibrator.fit(oriented[calm if j in _AMOUNT_COLUMNS else slice(None), j])
            if self._weights[j] > 0
            else None
            for j in range(X.shape[1])
        ]
        if X.shape[1] == len(FEATURE_NAMES):
            self._weights = self._weights * pace_weights(self._evidence_by_fact(X))
        return self

    def _evidence_by_fact(self, paced: np.ndarray) -> np.ndarray:
        """(rows, facts): each fact's evidence for each row of ``relative_pace`` rows."""
        oriented, counts = self._oriented(paced), _counts(paced)
        boosted = _amount_boost(paced)
        evidence = np.zeros(paced.shape)
        for j, tail in enumerate(self._tails):
            if tail is not None:
                surprise = -np.log(tail.p_value(oriented[:, j]))
                evidence[:, j] = _evidence(surprise, self._weights[j]) * counts[:, j]
                if j in _AMOUNT_COLUMNS:
                    evidence[:, j] *= boosted
        return evidence

    def score(self, X: np.ndarray) -> np.ndarray:
        if not self._tails:
            raise RuntimeError("fit the detector first")
        X = as_2d(X)
        by_fact = self._evidence_by_fact(relative_pace(X))
        return np.asarray(by_fact.sum(axis=1) + compromise_evidence(X))

    def learn_one(self, x: np.ndarray) -> None:
        """Batch model: learns only in ``fit``."""
