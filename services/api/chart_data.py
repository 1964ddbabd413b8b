"""Fetches and shapes the data of each chart; the definitions themselves are in charts.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np

from services.api import charts, store
from services.api.summary import budget_month, first_of

DEFAULT_WEEKS = 26


async def chart_spec(
    pool: asyncpg.Pool,
    name: str,
    user_id: str,
    account_id: str | None,
    weeks: int,
    drift_threshold: float,
) -> dict[str, Any]:
    latest = await store.latest_activity(pool, user_id) or datetime.now(UTC)
    since = latest - timedelta(weeks=weeks)
    if name in ("trend", "heatmap"):
        base = await store.base_currency(pool, user_id)
        weekly = [dict(r) for r in await store.weekly_spend(pool, user_id, account_id, since, base)]
        if name == "heatmap":
            return charts.heatmap(weekly)
        by_week: defaultdict[Any, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for row in await store.forecast_by_category(pool, user_id, account_id):
            week = row["day"] - timedelta(days=row["day"].weekday())
            for i, q in enumerate(("p10", "p50", "p90")):
                by_week[week][i] += row[q]
        ahead = [
            {"week": w, "p10": v[0], "p50": v[1], "p90": v[2]} for w, v in sorted(by_week.items())
        ]
        return charts.trend(weekly, ahead, base)
    if name == "anomalies":
        points = []
        for r in await store.anomaly_points(pool, user_id, account_id, since):
            reasons = r["explanation"] or []
            points.append({**dict(r), "reason": "; ".join(x.get("text", "") for x in reasons)})
        return charts.anomalies(points)
    if name == "categories":
        rows = await store.cluster_points(pool, user_id)
        return charts.categories(project_2d(rows))
    if name == "drift":
        rows = await store.drift_series(pool, user_id, account_id, None, None, 365)
        points = [
            {
                "window_end": r["window_end"],
                "account_id": r["account_id"],
                "metric": metric,
                "value": r[metric],
            }
            for r in rows
            for metric in ("category_jsd", "amount_jsd")
            if r[metric] is not None
        ]
        return charts.drift(points, drift_threshold)
    return charts.forecast(
        [dict(r) for r in await store.forecast_by_category(pool, user_id, account_id)]
    )


async def budget_chart(pool: asyncpg.Pool, user_id: str, month: str | None) -> dict[str, Any]:
    view = await budget_month(pool, user_id, first_of(month))
    lines = [
        {
            "category": b.category,
            "budget": b.budget,
            "spent": b.spent,
            "p10": b.projected.p10,
            "p50": b.projected.p50,
            "p90": b.projected.p90,
            "status": b.status,
        }
        for b in view.budgets
    ]
    return charts.budget(lines, view.month, view.currency)


def project_2d(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """PCA of the embeddings onto their two main directions."""
    if not rows:
        return []
    vectors = np.asarray([r["embedding"] for r in rows], dtype=float)
    centred = vectors - vectors.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ axes[:2].T if len(rows) > 1 else np.zeros((1, 2))
    return [
        {
            "x": float(p[0]),
            "y": float(p[1]) if len(p) > 1 else 0.0,
            "text": r["text"],
            "cluster": r["cluster"],
        }
        for r, p in zip(rows, xy, strict=True)
    ]
