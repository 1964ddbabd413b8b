"""The ensemble: batch detectors trained together, each calibrated, combined by weighted Fisher.

How the scores combine, and why:
- every detector's raw score becomes a p-value against a held-out calibration split (the last
  20% of the training rows, in time order), so scores on different scales become comparable;
- p-values combine by Fisher's method, ``sum_i w_i * -log p_i``: one detector with strong
  evidence can carry an anomaly that the others miss, which a plain mean would dilute;
- the weights come without labels, from how well each detector agrees with the consensus of the
  others on the calibration split (squared Spearman correlation, floored at zero). A detector that
  is noise on some data (LOF on Shuttle, for example) stops dragging the ensemble down;
- the combined statistic is calibrated once more, so the ensemble score reads like the detectors':
  0.99 means "more unusual than 99% of the calibration rows";
- on Spendstream's own features, the profile anchors (``ANCHOR``), the density detectors add
  only strong evidence, and that in proportion to the account's history while it is young.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from services.scorer.calibration import Calibrator
from services.scorer.detectors import BATCH_DETECTORS, Detector, HalfSpaceTreesDetector
from services.scorer.features import MIN_HOME_HISTORY
from services.scorer.model_features import MODEL_FEATURES, account_view, detector_view
from services.scorer.supervised import SupervisedModel, train_supervised

_IS_CREDIT = MODEL_FEATURES.index("is_credit")
# Stored rows and model rows alike: the account features come first in both.
HISTORY_COLUMN = MODEL_FEATURES.index("log_history_size")
MIN_CREDIT_SHARE = 0.01
# The density detectors compare a row with everyone's rows. A young account's rows differ from
# those for being young (long gaps, first visits, a habit not yet formed), so until it has this
# many transactions their evidence counts in proportion; the profile, with its population
# priors, speaks for it meanwhile.
YOUNG_ACCOUNT_HISTORY = 50
CALIBRATION_FRACTION = 0.2
MIN_TRAINING_ROWS = 200
WEIGHT_POWER = 2
# On Spendstream's own features the profile detector, which reads each account's behaviour
# against its own history, anchors the ensemble; the detectors of feature-space density add
# their evidence at this fraction of their agreement weight. On third-party card streams they
# alone rank worse than the amount itself (bench/results/anomaly_quality.json).
ANCHOR = "profile"
SECONDARY_SHARE = 0.25
# ...and only their strong evidence counts: a tail probability under 1%. Their everyday
# disagreement with the anchor is the variety of feature space, not news about an account.
SECONDARY_FLOOR = float(np.log(100))
# What confirmed fraud taught (``supervised``, stacked on the anchor's evidence) leads once it
# exists: it is the one piece of evidence that knows what unusual means for fraud here, and it has
# already weighed the anchor. The anchor then orders what it leaves level, and still speaks for
# kinds of fraud nobody has confirmed yet. The weight is measured on the Handbook's card stream
# with fraud confirmed a week late (bench/results/anomaly_quality.json).
SUPERVISED = "supervised"
SUPERVISED_WEIGHT = 150.0


def _evidence(p_values: np.ndarray) -> np.ndarray:
    return np.asarray(-np.log(np.maximum(p_values, 1e-300)))


# The first model waits for accounts with a history. A young account's features sit at neutral
# values, or are cut short by the windows they count over (its purchases of the past day, on its
# first day); tails fitted on a fresh installation's first rows then call the same accounts'
# ordinary purchases a week later rare. Until half the rows come from accounts with this many
# earlier transactions, the cold-start prior serves (bench/results/anomaly_quality.json,
# "first_model_2026_12_03").
FIRST_MODEL_HISTORY = MIN_HOME_HISTORY
FIRST_MODEL_MATURE_SHARE = 0.5
# Stored as float4: half a transaction below, so an account of exactly this many is counted.
MATURE_LOG_HISTORY = math.log1p(FIRST_MODEL_HISTORY - 0.5)


def first_model_due(rows: int, mature_rows: int, min_rows: int) -> bool:
    """Whether a fresh installation has the data for its first model: ``min_rows`` scored rows,
    and half as many from accounts with a history (``is_mature``)."""
    return rows >= min_rows and mature_rows >= min_rows * FIRST_MODEL_MATURE_SHARE


def is_mature(features: Sequence[float]) -> bool:
    """Whether a feature row's account had ``FIRST_MODEL_HISTORY`` earlier transactions."""
    return features[HISTORY_COLUMN] >= MATURE_LOG_HISTORY


def rows_before_retraining(
    trained_on: int, min_rows: int, every: int, *, as_data_doubles: bool = True
) -> int:
    """New rows that make the next training due: the data doubled since the last model, so a
    fresh installation's first models, trained on its first days, are soon replaced; then at
    most ``every``. Without ``as_data_doubles``, ``every`` alone."""
    if not as_data_doubles:
        return every
    return min(every, max(min_rows, trained_on))


def fisher_statistic(
    p_values: dict[str, np.ndarray], weights: dict[str, float], anchor: str | None = None
) -> np.ndarray:
    """Weighted Fisher combination over the detectors present, with weights renormalized. With
    an ``anchor`` present: its evidence, plus the others' evidence past ``SECONDARY_FLOOR``."""
    if anchor is not None and anchor in p_values:
        return np.asarray(
            _evidence(p_values[anchor])
            + sum(
                weights.get(name, 0.0) * np.maximum(_evidence(p) - SECONDARY_FLOOR, 0.0)
                for name, p in p_values.items()
                if name not in (anchor, SUPERVISED)
            )
            + SUPERVISED_WEIGHT * _evidence(np.asarray(p_values.get(SUPERVISED, 1.0)))
        )
    present = [name for name in p_values if weights.get(name, 0.0) > 0]
    if not present:
        present = list(p_values)
        weights = dict.fromkeys(present, 1.0)
    total = sum(weights[name] for name in present)
    return np.asarray(sum(weights[name] / total * _evidence(p_values[name]) for name in present))


def account_maturity(X: np.ndarray) -> np.ndarray:
    """Per row, the account's history over ``YOUNG_ACCOUNT_HISTORY``, at most 1."""
    return np.asarray(np.clip(np.expm1(X[:, HISTORY_COLUMN]) / YOUNG_ACCOUNT_HISTORY, 0.0, 1.0))


def weigh_density_evidence(p_values: dict[str, np.ndarray], trust: np.ndarray, anchor: str) -> None:
    """Raise the density detectors' p-values to the power of ``trust`` (per row, 0 to 1): their
    evidence, ``-log p``, counts in proportion, and not at all at 0. Never the anchor's or what
    confirmed fraud taught."""
    if (trust >= 1.0).all():
        return
    for name in p_values:
        if name not in (anchor, SUPERVISED):
            p_values[name] = np.power(p_values[name], trust)


def discount_young_accounts(
    p_values: dict[str, np.ndarray], X: np.ndarray, anchor: str | None
) -> None:
    """The density detectors' evidence in proportion to the account's maturity. Only on
    Spendstream's own features (where there is an ``anchor``)."""
    if anchor is not None and X.ndim == 2:
        weigh_density_evidence(p_values, account_maturity(X), anchor)


def agreement_weights(
    p_values: dict[str, np.ndarray], anchor: str | None = None
) -> dict[str, float]:
    """Each detector's squared rank agreement with the consensus of the others; with an
    ``anchor``, it weighs 1 and the others ``SECONDARY_SHARE`` of their agreement."""
    names = list(p_values)
    evidence = {name: -np.log(p_values[name]) for name in names}
    weights = {}
    for name in names:
        others = [evidence[o] for o in names if o != name]
        if not others:
            weights[name] = 1.0
            continue
        rho = spearmanr(evidence[name], np.mean(others, axis=0)).statistic
        weights[name] = float(max(0.0, 0.0 if np.isnan(rho) else rho) ** WEIGHT_POWER)
    if sum(weights.values()) == 0:
        weights = dict.fromkeys(names, 1.0)
    if anchor in weights:
        weights = {
            name: 1.0 if name == anchor else SECONDARY_SHARE * w for name, w in weights.items()
        }
    return weights


@dataclass
class EnsembleModel:
    """A versioned, trained set of batch detectors with their calibration and weights."""

    version: str
    feature_names: tuple[str, ...]
    detectors: dict[str, Detector]
    calibrators: dict[str, Calibrator]
    weights: dict[str, float]  # includes the online detector, "hst"
    ensemble_calibrator: Calibrator
    metrics: dict[str, Any] = field(default_factory=dict)
    # Class defaults too, so models pickled before these fields existed still load.
    anchor: str | None = None
    supervised: SupervisedModel | None = None
    credit_share: float = 0.0  # of the training rows

    def p_values(
        self,
        X: np.ndarray,
        users: Sequence[str] | None = None,
        online: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each detector's p-values, with the ``online`` detectors' given; with the rows'
        owners, the supervised model's too."""
        p_values = dict(online or {})
        p_values.update(
            (
                name,
                self.calibrators[name].p_value(
                    detector.score(detector_view(X, anchor=name == self.anchor))
                ),
            )
            for name, detector in self.detectors.items()
        )
        if self.anchor is not None:
            weigh_density_evidence(p_values, self._density_trust(X), self.anchor)
        if self.supervised is not None and users is not None:
            evidence = _evidence(p_values.get(self.anchor or "", np.ones(len(X))))
            p_values[SUPERVISED] = self.supervised.p_values(X, users, evidence)
        return p_values

    def _density_trust(self, X: np.ndarray) -> np.ndarray:
        """How far the density detectors' evidence counts, per row: in proportion to the
        account's maturity, and not at all for money coming in where they saw hardly any in
        training (a card stream), since they find every refund or card payment novel; only the
        anchor then speaks, which knows which of its facts are evidence for a credit. Detectors
        that saw credits enough keep their say: mule transfers in and refund abuse are credits
        too."""
        trust = account_maturity(X)
        if self.credit_share < MIN_CREDIT_SHARE:
            trust = np.where(X[:, _IS_CREDIT] >= 0.5, 0.0, trust)
        return trust

    def learn_from_labels(
        self, X: np.ndarray, labels: Sequence[int], users: Sequence[str], seed: int = 0
    ) -> None:
        """Train the supervised model on labelled rows, stacked on this model's anchor; then
        calibrate the ensemble again on the newest of those rows, with its evidence in: scores
        far beyond the old reference would all read 1.0 and tie."""
        evidence = np.zeros(len(X))
        if self.anchor is not None:
            raw = self.detectors[self.anchor].score(account_view(X))
            evidence = _evidence(self.calibrators[self.anchor].p_value(raw))
        self.supervised = train_supervised(X, labels, users, evidence, seed=seed)
        if self.supervised is None:
            return
        newest = slice(int(len(X) * (1 - CALIBRATION_FRACTION)), None)
        statistic = self.statistic(self.p_values(X[newest], list(users)[newest]))
        self.ensemble_calibrator = Calibrator.fit(statistic)

    def combine(self, p_values: dict[str, np.ndarray]) -> np.ndarray:
        """Ensemble score in [0, 1] from per-detector p-values (batch detectors and online ones)."""
        return self.ensemble_calibrator.calibrate(self.statistic(p_values))

    def statistic(self, p_values: dict[str, np.ndarray]) -> np.ndarray:
        """The combined evidence, before its calibration: ranks as the score does, without ties."""
        return fisher_statistic(p_values, self.weights, self.anchor)


def train_ensemble(
    X: np.ndarray,
    *,
    version: str,
    feature_names: tuple[str, ...],
    seed: int = 0,
    hst: Detector | None = None,
) -> EnsembleModel:
    """Fit every batch detector on the first 80% of ``X`` (rows in time order) and calibrate on
    the rest. ``hst``, an online detector trained on the same rows, takes part in the weights."""
    X = account_view(np.asarray(X, dtype=np.float64))
    if len(X) < MIN_TRAINING_ROWS:
        raise ValueError(f"need at least {MIN_TRAINING_ROWS} rows to train, got {len(X)}")
    split = int(len(X) * (1 - CALIBRATION_FRACTION))
    fit_rows, calibration_rows = X[:split], X[split:]
    detectors: dict[str, Detector] = {}
    calibrators: dict[str, Calibrator] = {}
    p_values: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    anchor = ANCHOR if feature_names == MODEL_FEATURES else None
    for name, cls in BATCH_DETECTORS.items():
        started = time.perf_counter()
        reads_all = name == anchor
        detector = cls(seed=seed).fit(detector_view(fit_rows, anchor=reads_all))
        scores = detector.score(detector_view(calibration_rows, anchor=reads_all))
        timings[name] = round(time.perf_counter() - started, 3)
        detectors[name] = detector
        calibrators[name] = Calibrator.fit(scores)
        p_values[name] = calibrators[name].p_value(scores)
    online = hst or HalfSpaceTreesDetector(seed=seed).fit(detector_view(fit_rows, anchor=False))
    online_scores = online.score(detector_view(calibration_rows, anchor=False))
    p_values["hst"] = Calibrator.fit(online_scores).p_value(online_scores)
    discount_young_accounts(p_values, calibration_rows, anchor)
    weights = agreement_weights(p_values, anchor)
    statistic = fisher_statistic(p_values, weights, anchor)
    return EnsembleModel(
        version=version,
        feature_names=feature_names,
        detectors=detectors,
        calibrators=calibrators,
        weights=weights,
        ensemble_calibrator=Calibrator.fit(statistic),
        anchor=anchor,
        credit_share=float((fit_rows[:, _IS_CREDIT] >= 0.5).mean()) if anchor else 0.0,
        metrics={
            "features": list(feature_names),
            "training_rows": len(fit_rows),
            "calibration_rows": len(calibration_rows),
            "fit_seconds": timings,
            "weights": {k: round(v, 4) for k, v in weights.items()},
        },
    )
