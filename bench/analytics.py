"""analytics_10k: the dashboard's questions for one user with 10,000 transactions, answered by
the API from what the pipeline keeps ready, against recomputing every model for the request the
way a recompute-per-request design does."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pandas as pd

from bench.harness import BenchResult, collector_paused, median, with_percentiles
from bench.pipeline import bench_tx, new_api_key, timed_ms, until_scored
from schemas import TransactionEvent
from services.analytics.embeddings import Embedder
from services.analytics.insights import Charge, possible_duplicates, recurring_payments
from services.analytics.semantic import TextSpace, cluster
from services.core.db import create_pool
from services.core.settings import Settings
from services.devstack.stack import Stack, service_url
from services.forecaster.clustering import ClusterRefresher
from services.forecaster.composition import CHARGE_COLUMNS, KEYS, train_and_forecast
from services.forecaster.forecasting import ForecastConfig
from services.scorer.drift import WindowData, compare_windows
from services.scorer.ensemble import train_ensemble
from services.scorer.features import FeatureExtractor
from services.scorer.model_features import MODEL_FEATURES, feature_matrix

TRANSACTIONS = 10_000
MONTH = "2026-03"  # inside the user's history, which runs from January to April 2026
QUESTIONS = [
    ("/v1/insights/summary", {"month": MONTH}),
    ("/v1/anomalies", {}),
    ("/v1/forecasts", {}),
    ("/v1/categories/clusters", {}),
    ("/v1/drift", {}),
]


def _answered(body: Any) -> bool:
    """Whether a response holds something, not an empty list: an empty answer is fast and
    would flatter the pipeline."""
    if isinstance(body, list):
        return bool(body)
    return isinstance(body, dict) and any(_answered(v) for v in body.values())


async def _prepared_user(stack: Stack) -> tuple[str, str]:
    """A new user whose 10,000 transactions went through ingest, were scored and aggregated by
    the running services, with forecasts, drift and clusters in place as the dashboard finds
    them. Clusters are refreshed with the forecaster's own code instead of waiting for its
    five-minute round."""
    settings = stack.settings
    dsn = settings.database.require_url()
    user = f"bench-analytics-{time.time_ns()}"
    key = await new_api_key(dsn, user)
    headers = {"Authorization": f"Bearer {key}"}
    ingest, api = service_url(settings, "ingest"), service_url(settings, "api")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        for first in range(0, TRANSACTIONS, 1000):
            batch = [bench_tx(user, i, start) for i in range(first, first + 1000)]
            response = await client.post(f"{ingest}/v1/transactions", json={"transactions": batch})
            assert response.status_code == 202, response.text
        pool = await create_pool(dsn, size=2)
        try:
            why = "the scorer did not score the user in time"
            await until_scored(pool, user, TRANSACTIONS, within_s=600, why=why)
            await ClusterRefresher(pool, Embedder(pool), settings).refresh_user(user)
        finally:
            await pool.close()
        deadline = time.monotonic() + 600
        for path, params in QUESTIONS:
            while not _answered((await client.get(f"{api}{path}", params=params)).json()):
                assert time.monotonic() < deadline, f"{path} has no answer for the user yet"
                await asyncio.sleep(2)
    return user, key


async def _rows(dsn: str, user: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        records = await conn.fetch(
            """SELECT user_id, transaction_id, account_id, ts, amount, direction, currency,
                      merchant, category, merchant_key, ingested_at
               FROM transactions WHERE user_id = $1 ORDER BY ts""",
            user,
        )
        return [dict(r) for r in records]
    finally:
        await conn.close()


def _recompute(rows: list[dict[str, Any]], settings: Settings, embedder: Embedder) -> None:
    """Every answer from the raw rows, with the pipeline's own models and settings: features and
    the four-detector ensemble, the forecasts with their backtest, clusters, drift, summary."""
    events = [
        TransactionEvent.model_validate(
            {
                "transaction_id": row["transaction_id"],
                "account_id": row["account_id"],
                "user_id": row["user_id"],
                "timestamp": row["ts"],
                "amount": row["amount"],
                "direction": row["direction"],
                "currency": row["currency"],
                "merchant": row["merchant"],
                "category": row["category"],
                "ingested_at": row["ingested_at"],
            }
        )
        for row in rows
    ]
    extractor = FeatureExtractor(window=settings.scorer.history_per_account)
    X = feature_matrix([extractor.transform(event)[0] for event in events])
    train_ensemble(X, version="recompute", feature_names=MODEL_FEATURES).p_values(X)

    frame = pd.DataFrame(rows)
    frame["amount"] = frame.amount.astype(float)
    frame["day"] = frame.ts.map(lambda t: t.date())
    daily = frame.groupby([*KEYS, "day"], as_index=False).amount.sum()
    charges = frame[frame.direction == "debit"].assign(
        display=frame.merchant, at=frame.ts.map(lambda t: t.replace(tzinfo=None))
    )[list(CHARGE_COLUMNS)]
    train_and_forecast(
        daily.rename(columns={"amount": "spent"}),
        charges,
        ForecastConfig(horizon=settings.forecast.horizon_days),
        n_folds=settings.forecast.backtest_folds,
        max_rows=settings.forecast.max_training_rows,
    )

    texts = sorted(set(frame.merchant_key) | set(frame.category.str.lower()))
    cluster(
        TextSpace(texts, embedder.encode_now(texts)), settings.categories.cluster_distance_threshold
    )

    latest = frame.ts.max()
    current = frame[frame.ts > latest - pd.Timedelta(days=settings.drift.current_days)]
    reference = frame[
        (frame.ts <= latest - pd.Timedelta(days=settings.drift.current_days))
        & (
            frame.ts
            > latest
            - pd.Timedelta(days=settings.drift.current_days + settings.drift.reference_days)
        )
    ]
    compare_windows(
        WindowData.from_transactions(list(zip(reference.category, reference.amount, strict=True))),
        WindowData.from_transactions(list(zip(current.category, current.amount, strict=True))),
        threshold=settings.drift.threshold,
        min_events=settings.drift.min_events,
    )

    frame["month"] = frame.ts.map(lambda t: t.strftime("%Y-%m"))
    frame.groupby(["month", "category"]).amount.agg(["sum", "count"])
    charges = [
        Charge(r["transaction_id"], r["merchant_key"], r["merchant"], float(r["amount"]), r["ts"])
        for r in rows
    ]
    recurring_payments(charges)
    possible_duplicates([c for c in charges if c.at.strftime("%Y-%m") == MONTH])


async def _served(api: str, key: str, times: int) -> list[float]:
    """Milliseconds to answer the five questions, asked at once as the dashboard asks them
    (`Promise.all` in static/app.js), after one warm-up round."""
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:

        async def ask() -> float:
            began = time.perf_counter()
            answers = await asyncio.gather(
                *(client.get(f"{api}{path}", params=params) for path, params in QUESTIONS)
            )
            assert all(a.status_code == 200 for a in answers)
            return (time.perf_counter() - began) * 1000

        await ask()
        with collector_paused():
            return [await ask() for _ in range(times)]


def analytics_10k(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    settings = stack.settings
    api = service_url(settings, "api")
    user, key = asyncio.run(_prepared_user(stack))
    served = asyncio.run(_served(api, key, repeats * 5))
    rows = asyncio.run(_rows(settings.database.require_url(), user))
    embedder = Embedder(None)
    recomputed = timed_ms(lambda: _recompute(rows, settings, embedder), max(1, repeats))
    ratio = median(recomputed) / median(served)
    return [
        with_percentiles(
            BenchResult("analytics_10k_served", "ms", median(served), {"transactions": 10_000}),
            served,
        ),
        BenchResult(
            "analytics_10k_recomputed",
            "ms",
            median(recomputed),
            {"transactions": 10_000},
            runs=recomputed,
        ),
        BenchResult(
            "analytics_10k_ratio",
            "x faster",
            ratio,
            {"transactions": 10_000},
            target=">= 50x",
            met=ratio >= 50,
        ),
    ]
