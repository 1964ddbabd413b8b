"""Drift between a current window of spending and a reference window: pure metrics.

Category mix: Jensen-Shannon divergence (base 2, so in [0, 1]) and PSI with the categories that
contribute most. Amounts: JSD over fixed log-spaced bins, the two-sample KS test and the
Wasserstein distance. Windows with too few transactions are reported as insufficient, never as
drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy import stats

# Fixed amount bins: under 1, then 32 log-spaced bins up to 100,000, then above.
AMOUNT_EDGES: tuple[float, ...] = (1.0, *np.logspace(0, 5, 33)[1:].round(4).tolist())
PSI_EPSILON = 1e-4
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def align(moment: datetime, interval: timedelta) -> datetime:
    """The end of the interval that ``moment`` falls in: windows end on interval boundaries."""
    steps = -(-(moment - EPOCH) // interval)  # ceiling division
    return EPOCH + steps * interval


@dataclass(frozen=True)
class TimeWindows:
    """A reference window directly followed by the current one, in event time: [start, end)."""

    reference_start: datetime
    current_start: datetime
    end: datetime


def time_windows(
    watermark: datetime, interval: timedelta, current_days: float, reference_days: float
) -> TimeWindows:
    """The windows compared once the latest event time is ``watermark``. They are exact spans of
    days in UTC, whatever the calendar: month lengths, leap days and year ends play no part."""
    end = align(watermark, interval)
    current_start = end - timedelta(days=current_days)
    return TimeWindows(current_start - timedelta(days=reference_days), current_start, end)


@dataclass(frozen=True)
class WindowData:
    """What drift needs to know about one window of transactions."""

    categories: Mapping[str, int]
    amount_bins: Sequence[int]  # counts per bin of AMOUNT_EDGES (len(AMOUNT_EDGES) + 1 bins)
    amounts: Sequence[float]  # a sample of the amounts, for KS and Wasserstein
    n: int

    @classmethod
    def from_transactions(cls, rows: Sequence[tuple[str, float]]) -> WindowData:
        """From (category, amount) rows."""
        categories: dict[str, int] = {}
        for category, _ in rows:
            categories[category] = categories.get(category, 0) + 1
        amounts = [amount for _, amount in rows]
        return cls(categories, amount_histogram(amounts), amounts, len(rows))


def amount_histogram(amounts: Sequence[float]) -> list[int]:
    counts = np.bincount(
        np.searchsorted(AMOUNT_EDGES, amounts, side="right"), minlength=len(AMOUNT_EDGES) + 1
    )
    return [int(c) for c in counts]


def _distribution(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))


def jensen_shannon(p_counts: Sequence[float], q_counts: Sequence[float]) -> float:
    """JSD in bits, in [0, 1]. Equal to scipy's ``jensenshannon(p, q, base=2) ** 2``."""
    p = _distribution(np.asarray(p_counts, dtype=float))
    q = _distribution(np.asarray(q_counts, dtype=float))
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return min(1.0, max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def population_stability(
    current: Mapping[str, int], reference: Mapping[str, int], top: int = 3
) -> tuple[float, list[dict[str, Any]]]:
    """PSI over categories, and the categories that contribute most to it."""
    keys = sorted(set(current) | set(reference))
    cur = _distribution(np.array([current.get(k, 0) for k in keys], dtype=float))
    ref = _distribution(np.array([reference.get(k, 0) for k in keys], dtype=float))
    cur_s, ref_s = np.maximum(cur, PSI_EPSILON), np.maximum(ref, PSI_EPSILON)
    contributions = (cur_s - ref_s) * np.log(cur_s / ref_s)
    order = np.argsort(-contributions)[:top]
    contributors = [
        {
            "category": keys[i],
            "contribution": round(float(contributions[i]), 4),
            "current_share": round(float(cur[i]), 4),
            "reference_share": round(float(ref[i]), 4),
        }
        for i in order
        if contributions[i] > 0
    ]
    return float(contributions.sum()), contributors


@dataclass(frozen=True)
class DriftResult:
    status: str  # "ok", "drift" or "insufficient"
    n_current: int
    n_reference: int
    metrics: dict[str, float] = field(default_factory=dict)
    top_contributors: list[dict[str, Any]] = field(default_factory=list)
    breached: list[str] = field(default_factory=list)  # metrics at or over the threshold


def compare_windows(
    current: WindowData, reference: WindowData, *, threshold: float, min_events: int
) -> DriftResult:
    if current.n < min_events or reference.n < min_events:
        return DriftResult("insufficient", current.n, reference.n)
    category_jsd = jensen_shannon(
        *zip(
            *[
                (current.categories.get(k, 0), reference.categories.get(k, 0))
                for k in sorted(set(current.categories) | set(reference.categories))
            ],
            strict=True,
        )
    )
    psi, contributors = population_stability(current.categories, reference.categories)
    amount_jsd = jensen_shannon(current.amount_bins, reference.amount_bins)
    ks = stats.ks_2samp(current.amounts, reference.amounts)
    metrics = {
        "category_jsd": round(category_jsd, 6),
        "category_psi": round(psi, 6),
        "amount_jsd": round(amount_jsd, 6),
        "amount_ks": round(float(ks.statistic), 6),
        "amount_ks_pvalue": float(ks.pvalue),
        "amount_wasserstein": round(
            float(stats.wasserstein_distance(current.amounts, reference.amounts)), 4
        ),
    }
    breached = [name for name in ("category_jsd", "amount_jsd") if metrics[name] >= threshold]
    return DriftResult(
        "drift" if breached else "ok",
        current.n,
        reference.n,
        metrics,
        contributors,
        breached,
    )
