"""Drift metrics, checked against scipy, and on generated streams."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from services.core.settings import Settings
from services.scorer.backlog import RECENT_S, Backlog
from services.scorer.drift import (
    WindowData,
    compare_windows,
    jensen_shannon,
    population_stability,
)
from services.scorer.drift_watcher import MAX_DEFER_S, DriftWatcher

CATEGORIES = ["Groceries", "Dining", "Transport", "Shopping", "Utilities"]
NORMAL_MIX = [0.35, 0.3, 0.15, 0.15, 0.05]


@pytest.mark.parametrize("seed", range(5))
def test_jsd_matches_scipy_squared(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, q = rng.integers(0, 40, 9), rng.integers(0, 40, 9)
    # scipy returns the Jensen-Shannon *distance*; the divergence is its square
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)


def test_jsd_bounds() -> None:
    assert jensen_shannon([5, 5], [5, 5]) == 0
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)


def test_psi_names_the_categories_that_moved() -> None:
    psi, top = population_stability({"Travel": 40, "Groceries": 60}, {"Travel": 5, "Groceries": 95})
    assert psi > 0.2
    assert top[0]["category"] == "Travel" and top[0]["current_share"] == 0.4


def stream(
    days: int, seed: int, shift_day: int | None = None, shift: str = ""
) -> list[tuple[date, str, float]]:
    rng = np.random.default_rng(seed)
    start = date(2026, 1, 1)
    rows = []
    for day in range(days):
        mix, scale = NORMAL_MIX, 1.0
        if shift_day is not None and day >= shift_day:
            if shift == "categories":
                mix = [0.05, 0.1, 0.05, 0.7, 0.1]
            if shift == "amounts":
                scale = 4.0
        for _ in range(rng.poisson(12)):
            category = CATEGORIES[rng.choice(len(CATEGORIES), p=mix)]
            rows.append(
                (start + timedelta(days=day), category, float(rng.lognormal(3, 0.6) * scale))
            )
    return rows


def daily_drift(rows: list[tuple[date, str, float]]) -> list[tuple[date, str]]:
    """Evaluate once a day, last 7 days against the 28 before, as the watcher does."""
    first, last = rows[0][0], rows[-1][0]
    out = []
    day = first + timedelta(days=35)
    while day <= last:
        current = [(c, a) for d, c, a in rows if day - timedelta(days=7) < d <= day]
        reference = [
            (c, a) for d, c, a in rows if day - timedelta(days=35) < d <= day - timedelta(days=7)
        ]
        result = compare_windows(
            WindowData.from_transactions(current),
            WindowData.from_transactions(reference),
            threshold=0.1,
            min_events=30,
        )
        out.append((day, result.status))
        day += timedelta(days=1)
    return out


@pytest.mark.parametrize("shift", ["categories", "amounts"])
def test_a_shift_is_detected_within_one_window(shift: str) -> None:
    shift_day = 45
    statuses = daily_drift(stream(70, seed=3, shift_day=shift_day, shift=shift))
    shift_date = date(2026, 1, 1) + timedelta(days=shift_day)
    before = [s for d, s in statuses if d < shift_date]
    first_drift = next(d for d, s in statuses if s == "drift")
    assert "drift" not in before
    assert first_drift - shift_date < timedelta(days=7), "detected within one current window"


def test_a_stationary_stream_raises_no_drift() -> None:
    statuses = daily_drift(stream(95, seed=8))  # 60 days of comparisons after the first 35
    assert len(statuses) >= 60
    assert {s for _, s in statuses} == {"ok"}


def test_small_windows_are_insufficient_not_drift() -> None:
    result = compare_windows(
        WindowData.from_transactions([("Dining", 5.0)] * 3),
        WindowData.from_transactions([("Travel", 900.0)] * 100),
        threshold=0.1,
        min_events=30,
    )
    assert result.status == "insufficient" and result.metrics == {}


def test_all_metrics_are_reported() -> None:
    rows = stream(40, seed=1)
    current = WindowData.from_transactions([(c, a) for _, c, a in rows[:200]])
    reference = WindowData.from_transactions([(c, a * 3) for _, c, a in rows[200:]])
    result = compare_windows(current, reference, threshold=0.1, min_events=30)
    assert set(result.metrics) == {
        "category_jsd",
        "category_psi",
        "amount_jsd",
        "amount_ks",
        "amount_ks_pvalue",
        "amount_wasserstein",
    }
    assert result.status == "drift" and "amount_jsd" in result.breached
    assert 0 <= result.metrics["amount_ks_pvalue"] < 0.01


def test_drift_waits_while_the_scorer_works_off_a_backlog_but_not_for_ever() -> None:
    now = [1000.0]
    backlog = Backlog(batch_size=500, clock=lambda: now[0])
    watcher = DriftWatcher(
        None,  # type: ignore[arg-type]  # deciding needs no database
        Settings(),
        publish=lambda event: asyncio.sleep(0),
        backlog=backlog,
        clock=lambda: now[0],
    )
    assert not watcher.deferred(), "no batch yet: nothing waits"
    backlog.saw_batch(500)
    assert watcher.deferred(), "a full batch: more is waiting to be scored"
    now[0] += RECENT_S + 1
    assert not watcher.deferred(), "the last full batch is old news"
    backlog.saw_batch(500)
    now[0] += MAX_DEFER_S - RECENT_S
    backlog.saw_batch(500)
    assert not watcher.deferred(), "deferred long enough: drift runs even under a steady flood"
    backlog.saw_batch(120)
    assert not watcher.deferred(), "a batch that was not full: the backlog is gone"
