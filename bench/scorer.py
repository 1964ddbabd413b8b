"""The scorer's benchmarks: the service draining a backlog with 1, 2 and 3 processes, the
in-process scoring time per batch, and the semantic categorization costs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime

import asyncpg
import numpy as np

from bench.harness import (
    BenchResult,
    consumers_stopped,
    median,
    start_group_at_end,
    with_percentiles,
)
from schemas import TransactionEvent
from services.core.auth import create_key
from services.core.db import create_pool
from services.demo.generator import generate
from services.demo.loader import post_records
from services.devstack.stack import Stack, service_url
from services.scorer import store
from services.scorer.ensemble import train_ensemble
from services.scorer.model_features import MODEL_FEATURES
from services.scorer.registry import serialize, sign_artifact
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


async def _scoring_latencies(dsn: str, events: list[TransactionEvent]) -> list[float]:
    """The in-process part of each 500-row batch (features, four detectors, ensemble,
    explanations) on the scoring thread, after a warm-up that trains the ensemble."""
    worker = ScoringWorker()
    try:
        scorer = AnomalyScorer(threshold=0.97)
        warm, stream = events[:5000], events[5000:]
        warm_scores = await worker.score(scorer, warm)
        X = np.array([s.features for s in warm_scores])
        scorer.use_model(train_ensemble(X, version="bench", feature_names=MODEL_FEATURES))
        latencies = []
        for i in range(0, len(stream), 500):
            began = time.perf_counter()
            await worker.score(scorer, stream[i : i + 500])
            latencies.append((time.perf_counter() - began) * 1000)
        return latencies
    finally:
        worker.close()


async def _register_model(dsn: str, signing_key: bytes) -> str:
    """Train the ensemble on demo data and register it, so the scorers serve all four
    detectors from their first batch."""
    events = demo_events(users=20, months=6, seed=3)
    features = np.array([s.features for s in AnomalyScorer(threshold=0.97).score_batch(events)])
    version = f"bench-{time.time_ns()}"
    model = train_ensemble(features, version=version, feature_names=MODEL_FEATURES)
    pool = await create_pool(dsn, size=1)  # with the JSON codecs the store expects
    try:
        async with pool.acquire() as conn:
            artifact = sign_artifact(serialize(model), signing_key)
            await store.save_model(conn, version, len(features), model.metrics, artifact, "bench")
    finally:
        await pool.close()
    return version


async def _queue(stack: Stack, total: int, tag: str) -> tuple[int, list[str]]:
    """POST ``total`` demo transactions of fresh users through ingest; they wait in Kafka."""
    records = generate(users=max(2, total // 280), months=12, seed=21, end=date(2026, 9, 1))
    records = [type(r)(f"{tag}-{r.user_id}", r.transaction, r.anomaly) for r in records][:total]
    conn = await asyncpg.connect(stack.settings.database.require_url())
    try:
        keys = {u: (await create_key(conn, u)).secret for u in sorted({r.user_id for r in records})}
    finally:
        await conn.close()
    url = service_url(stack.settings, "ingest")
    return await post_records(records, url, keys, concurrency=2), sorted(keys)


async def _drained(dsn: str, users: list[str], total: int, timeout_s: float = 900) -> float:
    """Once all ``total`` transactions of these users are scored: tx/s between the first and
    the last commit, from the database's own commit times (so polling adds no error)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        query = "SELECT count(*) FROM scores WHERE user_id = ANY($1::text[])"
        while await conn.fetchval(query, users) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"scorers did not drain {total} transactions in {timeout_s}s")
            await asyncio.sleep(0.25)
        # Two plain aggregates: joined into one, PostgreSQL sometimes planned it to take a
        # minute or more, a core busy all the while.
        first = await conn.fetchval(
            "SELECT min(scored_at) FROM scores WHERE user_id = ANY($1::text[])", users
        )
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE scored_at > $2) AS after_first,
                      extract(epoch FROM max(scored_at) - $2) AS seconds
               FROM scores WHERE user_id = ANY($1::text[])""",
            users,
            first,
        )
        return float(row["after_first"]) / max(float(row["seconds"]), 1e-6)
    finally:
        await conn.close()


def _drain_rate(stack: Stack, scorers: int, total: int) -> float:
    """Queue ``total`` transactions, then time ``scorers`` scorer processes working them off.
    Each run has a consumer group of its own: the embedded broker can keep a member that was
    stopped in the middle of a rebalance, and scorers joining that group would wait for it."""
    tag = f"drain{scorers}x{time.time_ns()}"
    group = f"bench-{tag}"
    asyncio.run(start_group_at_end(stack, group))
    queued, users = asyncio.run(_queue(stack, total, tag))
    overrides = {"SPENDSTREAM_SCORER_GROUP_ID": group}
    labels = [
        stack.start_service("scorer", replica=i + 1, settings=overrides) for i in range(scorers)
    ]
    try:
        stack.wait_healthy(tuple(labels))
        return asyncio.run(_drained(stack.settings.database.require_url(), users, queued))
    finally:
        for label in labels:
            stack.stop_service(label)


def scorer_throughput(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    """The real scorer service working off a backlog: transactions are queued in Kafka while no
    scorer runs, then 1, 2 and 3 scorer processes (batches of 500, database writes and offset
    commits included) drain it. The forecaster is stopped meanwhile: it reads the same topic and
    would take the cores the scorers are measured on. Also the in-process scoring time of each
    500-row batch, measured on the scorer's own path without I/O."""
    dsn = stack.settings.database.require_url()
    total = 15_000 if quick else 40_000
    key = stack.settings.security.model_signing_key
    assert key is not None, "the stack gives its scorers a signing key"
    asyncio.run(_register_model(dsn, key.get_secret_value().encode()))
    by_scale: dict[int, list[float]] = {}
    with consumers_stopped(stack):
        for scorers in (1,) if quick else (1, 2, 3):
            by_scale[scorers] = [_drain_rate(stack, scorers, total) for _ in range(repeats)]
        events = demo_events(users=60, months=6, seed=11)
        scoring_ms = asyncio.run(_scoring_latencies(dsn, events))
    rate = median(by_scale[1])
    results = [
        BenchResult(
            name="scorer_throughput",
            unit="tx/s",
            median=rate,
            params={"batch_size": 500, "transactions": total, "repeats": repeats},
            runs=by_scale[1],
            target=f">= {TARGET_TX_PER_S}",
            met=rate >= TARGET_TX_PER_S,
        ),
        with_percentiles(
            BenchResult(
                name="scorer_batch_scoring_latency",
                unit="ms per 500-row batch (in-process scoring, no I/O)",
                median=median(scoring_ms),
                params={"batch_size": 500, "batches": len(scoring_ms)},
            ),
            scoring_ms,
        ),
    ]
    results += [
        BenchResult(
            name=f"scaling_scorer_throughput_{scorers}",
            unit="tx/s (all scorers together)",
            median=median(rates),
            params={"scorers": scorers, "transactions": total, "partitions": 6},
            runs=rates,
        )
        for scorers, rates in by_scale.items()
        if scorers > 1
    ]
    return results


def semantic_categories(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    """Embedding throughput (batched, cold), the cache hit rate on a demo stream, and what
    auto-categorization adds to a 500-transaction batch."""
    from services.analytics.embeddings import Embedder, load_model
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
        pool = await create_pool(stack.settings.database.require_url(), size=2)
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
