"""scorer_throughput: one scorer's in-process path, full ensemble and database writes included."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime

import numpy as np

from bench.harness import BenchResult, median, services_stopped, with_percentiles
from schemas import TransactionEvent
from services.cli.stack import Stack
from services.core.db import create_pool
from services.demo.generator import generate
from services.scorer import store
from services.scorer.ensemble import train_ensemble
from services.scorer.features import FEATURE_NAMES
from services.scorer.scoring import AnomalyScorer
from services.scorer.worker import ScoringWorker

TARGET_TX_PER_S = 5_000


def demo_events(users: int, months: int, seed: int) -> list[TransactionEvent]:
    records = generate(users=users, months=months, seed=seed, end=date(2026, 9, 1))
    records.sort(key=lambda r: r.transaction["timestamp"])
    now = datetime.now(UTC)
    run = time.time_ns()  # fresh users per run: the benchmark writes, never skips
    return [
        TransactionEvent.model_validate(
            {**r.transaction, "user_id": f"{r.user_id}-{run}", "ingested_at": now}
        )
        for r in records
    ]


async def _one_run(
    dsn: str, events: list[TransactionEvent], batch: int
) -> tuple[float, list[float]]:
    """The handler's path for each batch of ``batch``: look up what is stored, score on the
    scoring thread, store. Returns tx/s and the in-process scoring ms of each batch."""
    pool = await create_pool(dsn, size=4)
    worker = ScoringWorker()
    try:
        scorer = AnomalyScorer(threshold=0.97)
        warm, stream = events[:5000], events[5000:]
        warm_scores = await worker.score(scorer, warm)
        await store.persist_scored(pool, warm, warm_scores)
        X = np.array([s.features for s in warm_scores])
        scorer.use_model(train_ensemble(X, version="bench", feature_names=FEATURE_NAMES))
        scoring_ms: list[float] = []
        started = time.perf_counter()
        for i in range(0, len(stream), batch):
            chunk = stream[i : i + batch]
            stored = await store.already_stored(pool, chunk)
            fresh = [e for e in chunk if (e.user_id, e.transaction_id) not in stored]
            began = time.perf_counter()
            scores = await worker.score(scorer, fresh)
            scoring_ms.append((time.perf_counter() - began) * 1000)
            await store.persist_scored(pool, fresh, scores)
        return len(stream) / (time.perf_counter() - started), scoring_ms
    finally:
        worker.close()
        await pool.close()


def scorer_throughput(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    """Stands in for the stack's scorer, so that one and the forecaster are stopped meanwhile."""
    dsn = stack.settings.require_database_url()
    rates, latencies = [], []
    with services_stopped(stack, "scorer", "forecaster"):
        for _ in range(repeats):
            events = demo_events(users=40 if quick else 120, months=6, seed=11)
            rate, batch_ms = asyncio.run(_one_run(dsn, events, 500))
            rates.append(rate)
            latencies.extend(batch_ms)
    rate = median(rates)
    params = {"batch_size": 500, "transactions": len(events) - 5000, "repeats": repeats}
    return [
        BenchResult(
            name="scorer_throughput",
            unit="tx/s",
            median=rate,
            params=params,
            runs=rates,
            target=f">= {TARGET_TX_PER_S}",
            met=rate >= TARGET_TX_PER_S,
        ),
        with_percentiles(
            BenchResult(
                name="scorer_batch_scoring_latency",
                unit="ms per 500-row batch (in-process scoring, no I/O)",
                median=median(latencies),
                params=params,
            ),
            latencies,
        ),
    ]


def semantic_categories(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    """Embedding throughput (batched, cold), the cache hit rate on a demo stream, and what
    auto-categorization adds to a 500-transaction batch."""
    from services.core.embeddings import Embedder, load_model
    from services.core.settings import Settings
    from services.core.text import normalize_text
    from services.scorer.categorize import Categorizer
    from services.scorer.features import merchant_key

    model = load_model()
    texts = [
        f"{normalize_text(raw)} {word}"
        for raw in ("corner shop", "city cafe", "fuel stop")
        for word in (f"branch {i}" for i in range(300 if quick else 1000))
    ]
    rates = []
    for _ in range(repeats):
        began = time.perf_counter()
        Embedder(None, model=model).encode_now(texts)
        rates.append(len(texts) / (time.perf_counter() - began))

    events = demo_events(users=20 if quick else 60, months=6, seed=13)
    stream = Embedder(None, model=model)
    for start in range(0, len(events), 500):
        asyncio.run(stream.embed([merchant_key(e) for e in events[start : start + 500]]))
    hit_rate = stream.hits / max(stream.hits + stream.encoded, 1)

    async def added_latency() -> list[float]:
        pool = await create_pool(stack.settings.require_database_url(), size=2)
        try:
            categorizer = Categorizer(pool, Embedder(pool, model=model), Settings())
            await categorizer.refresh_index()
            uncategorized = [e.model_copy(update={"category": None}) for e in events[:5000]]
            samples = []
            for start in range(0, len(uncategorized), 500):
                began = time.perf_counter()
                await categorizer.apply(uncategorized[start : start + 500])
                samples.append((time.perf_counter() - began) * 1000)
            return samples
        finally:
            await pool.close()

    latency = asyncio.run(added_latency())
    return [
        BenchResult(
            "embedding_throughput", "texts/s", median(rates), {"texts": len(texts)}, runs=rates
        ),
        BenchResult(
            "embedding_cache_hit_rate",
            "fraction",
            round(hit_rate, 4),
            {"transactions": len(events)},
        ),
        with_percentiles(
            BenchResult(
                "categorize_added_latency",
                "ms per 500-row batch",
                median(latency),
                {"batch_size": 500},
            ),
            latency,
        ),
    ]
