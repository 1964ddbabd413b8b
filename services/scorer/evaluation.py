"""Offline evaluation of every detector and the ensemble on any labelled table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from services.scorer.calibration import Calibrator
from services.scorer.detectors import HalfSpaceTreesDetector
from services.scorer.ensemble import train_ensemble
from services.scorer.model_features import account_view, detector_view


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    if k <= 0:
        return float("nan")
    top = np.argsort(-scores, kind="stable")[:k]
    return float(labels[top].mean())


def detection_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "precision_at_k": float("nan")}
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "precision_at_k": precision_at_k(labels, scores, int(labels.sum())),
    }


@dataclass(frozen=True)
class EvaluationResult:
    n_train: int
    n_test: int
    detectors: dict[str, dict[str, float]]
    weights: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "n_test": self.n_test,
            "detectors": self.detectors,
            "ensemble_weights": self.weights,
        }


def evaluate(
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int = 0,
    feature_names: tuple[str, ...] | None = None,
) -> EvaluationResult:
    """Train on ``X_train`` as the scorer would, score ``X_test`` and compare with the labels.

    Half-Space Trees runs as it does live: it learns the training rows, then scores each test row
    before learning it.
    """
    started = time.perf_counter()
    X_train, X_test = account_view(X_train), account_view(X_test)  # as the detectors read them
    hst = HalfSpaceTreesDetector(seed=seed).fit(detector_view(X_train, anchor=False))
    hst_fit = time.perf_counter() - started
    model = train_ensemble(
        X_train,
        version="eval",
        feature_names=feature_names or tuple(f"f{i}" for i in range(X_train.shape[1])),
        seed=seed,
        hst=hst,
    )
    split = int(len(X_train) * 0.8)
    hst_calibrator = Calibrator.fit(hst.score(detector_view(X_train[split:], anchor=False)))

    results: dict[str, dict[str, float]] = {}
    p_values: dict[str, np.ndarray] = {}
    for name, detector in model.detectors.items():
        started = time.perf_counter()
        raw = detector.score(detector_view(X_test, anchor=name == model.anchor))
        score_s = time.perf_counter() - started
        p_values[name] = model.calibrators[name].p_value(raw)
        results[name] = {
            **detection_metrics(y_test, raw),
            "fit_s": model.metrics["fit_seconds"][name],
            "score_s": round(score_s, 3),
        }
    started = time.perf_counter()
    raw_hst = hst.score_then_learn(detector_view(X_test, anchor=False))
    p_values["hst"] = hst_calibrator.p_value(raw_hst)
    results["hst"] = {
        **detection_metrics(y_test, raw_hst),
        "fit_s": round(hst_fit, 3),
        "score_s": round(time.perf_counter() - started, 3),
    }
    # Ranked by the combined statistic itself: the calibrated score is monotone in it but ties
    # rows that fall between two calibration values.
    results["ensemble"] = {
        **detection_metrics(y_test, model.statistic(p_values)),
        "fit_s": round(sum(r["fit_s"] for r in results.values()), 3),
        "score_s": round(sum(r["score_s"] for r in results.values()), 3),
    }
    return EvaluationResult(len(X_train), len(X_test), results, model.weights)
