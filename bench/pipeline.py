"""Benchmarks through the running services: ingest, end-to-end latency, queries, charts, and the
analytics a dashboard asks for, against recomputing them per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench.harness import (
    BenchResult,
    collector_paused,
    consumers_stopped,
    median,
    with_percentiles,
)
from bench.load import LoadResult, open_loop, render_posts
from services.core.auth import create_key
from services.core.lag import measure_lag
from services.devstack.stack import Stack, service_url


def bench_tx(user_prefix: str, i: int, start: datetime) -> dict[str, Any]:
    """The ``i``-th transaction of a benchmark user: 13 minutes apart, 40 shops, 5 categories."""
    return {
        "transaction_id": f"{user_prefix}-{i:08d}",
        "account_id": f"acct-{i % 3}",
        "timestamp": (start + timedelta(minutes=13 * i)).isoformat(),
        "amount": f"{3 + (i * 37) % 180}.{i % 100:02d}",
        "merchant": f"Shop {i % 40}",
        "category": ["Groceries", "Dining", "Transport", "Shopping", "Utilities"][i % 5],
    }


async def until_scored(
    db: asyncpg.Connection | asyncpg.Pool, user: str, count: int, *, within_s: float, why: str
) -> None:
    """Until the scorer has stored ``count`` scores of ``user``; fails with ``why`` after
    ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while await db.fetchval("SELECT count(*) FROM scores WHERE user_id = $1", user) < count:
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.2)


async def new_api_key(dsn: str, user: str) -> str:
    """A fresh API key for ``user`` (created with the user)."""
    conn = await asyncpg.connect(dsn)
    try:
        return (await create_key(conn, user)).secret
    finally:
        await conn.close()


def ingest_batch_throughput(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    dsn = stack.settings.database.require_url()
    url = f"{service_url(stack.settings, 'ingest')}/v1/transactions"
    batches = 20 if quick else 60
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def run(round_: int) -> float:
        key = await new_api_key(dsn, f"bench-ingest-{round_}-{time.time_ns()}")
        bodies = [
            orjson.dumps(
                {"transactions": [bench_tx(f"ib{round_}-{b}", i, start) for i in range(1000)]}
            )
            for b in range(batches)
        ]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        limit = asyncio.Semaphore(4)
        async with httpx.AsyncClient(timeout=60) as client:

            async def send(body: bytes) -> None:
                async with limit:
                    response = await client.post(url, content=body, headers=headers)
                    assert response.status_code == 202, response.text

            began = time.perf_counter()
            await asyncio.gather(*(send(b) for b in bodies))
            return batches * 1000 / (time.perf_counter() - began)

    # Consumers stopped: on two cores they would take the CPU this measures ingest's use of.
    with consumers_stopped(stack):
        rates = [asyncio.run(run(r)) for r in range(repeats)]
    return [
        BenchResult(
            "ingest_batch_throughput",
            "tx/s",
            median(rates),
            {"batch": 1000, "batches": batches, "concurrency": 4},
            runs=rates,
            target=">= 25000",
            met=median(rates) >= 25_000,
        )
    ]


def ingest_single_latency(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    dsn = stack.settings.database.require_url()
    url = f"{service_url(stack.settings, 'ingest')}/v1/transactions"
    rate, seconds = 500, (4 if quick else 10)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def run(round_: int) -> LoadResult:
        key = await new_api_key(dsn, f"bench-single-{round_}-{time.time_ns()}")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        bodies = [orjson.dumps(bench_tx(f"sl{round_}", i, start)) for i in range(rate * seconds)]
        # One uncounted second first: the connections, the key cache and the producer's
        # metadata warm up, and the consumers stopped just before finish leaving their group.
        warm_up = [orjson.dumps(bench_tx(f"sl{round_}-warm", i, start)) for i in range(rate)]
        await open_loop(url, render_posts(url, warm_up, headers), rate, connections=32)
        load = await open_loop(url, render_posts(url, bodies, headers), rate, connections=32)
        assert load.statuses == {202: len(bodies)}, load.statuses
        return load

    with consumers_stopped(stack):
        loads = [asyncio.run(run(r)) for r in range(repeats)]
    samples = [s for load in loads for s in load.latencies_ms]
    result = with_percentiles(
        BenchResult(
            "ingest_single_latency",
            "ms",
            median(samples),
            {"rate_per_s": rate, "seconds": seconds, "connections": 32},
            runs=[float(np.percentile(load.latencies_ms, 99)) for load in loads],
            extra={"achieved_rate_per_s": [round(load.achieved_rate, 1) for load in loads]},
        ),
        samples,
    )
    result.target, result.met = "p99 <= 15 ms", (result.p99 or 0) <= 15
    return [result]


async def wait_until_caught_up(stack: Stack, within_s: float = 900.0) -> None:
    """Until the scorers and the forecaster have committed everything earlier benchmarks queued,
    and their drift watcher and cluster refresher have read every stored transaction (the
    scorer drains store 280,000 of them, for thousands of accounts), so that backlog does not
    share the cores with the latency being measured."""
    settings = stack.settings
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    conn = await asyncpg.connect(settings.database.require_url())
    await admin.start()
    await consumer.start()
    read_everything = """SELECT (SELECT last_seq FROM drift_progress) >= s.last
                                AND (SELECT last_seq FROM cluster_progress) >= s.last
                         FROM (SELECT coalesce(max(seq), 0) AS last FROM transactions) s"""
    try:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            await consumer.topics()
            lags = [
                await measure_lag(admin, consumer, group, settings.topics.transactions)
                for group in (settings.scorer.group_id, settings.forecast.group_id)
            ]
            if all(sum(lag.values()) == 0 for lag in lags) and await conn.fetchval(read_everything):
                return
            await asyncio.sleep(1)
    finally:
        await consumer.stop()
        await admin.close()
        await conn.close()


def end_to_end_latency(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    """POST accepted (ingest's stamp) to the scored row committed, at a steady 1,000 tx/s."""
    dsn = stack.settings.database.require_url()
    asyncio.run(wait_until_caught_up(stack))
    url = f"{service_url(stack.settings, 'ingest')}/v1/transactions"
    seconds = 5 if quick else 15
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def until_scoring() -> None:
        """No lag is not yet consuming: a scorer that just joined a group waits for its
        partitions for some seconds. One warm-up batch, scored, shows it reads."""
        user = f"bench-e2e-warm-{time.time_ns()}"
        key = await new_api_key(dsn, user)
        body = orjson.dumps({"transactions": [bench_tx(user, i, start) for i in range(50)]})
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(url, content=body, headers=headers)).status_code == 202
        conn = await asyncpg.connect(dsn)
        try:
            await until_scored(conn, user, 50, within_s=300, why="the scorer did not consume")
        finally:
            await conn.close()

    asyncio.run(until_scoring())

    async def run(round_: int) -> list[float]:
        user = f"bench-e2e-{round_}-{time.time_ns()}"
        key = await new_api_key(dsn, user)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=30) as client:
            began = time.perf_counter()
            for tick in range(seconds * 20):  # 50 transactions every 50 ms
                body = orjson.dumps(
                    {"transactions": [bench_tx(user, tick * 50 + i, start) for i in range(50)]}
                )
                await client.post(url, content=body, headers=headers)
                delay = began + (tick + 1) * 0.05 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
        conn = await asyncpg.connect(dsn)
        try:
            await until_scored(conn, user, seconds * 1000, within_s=120, why="the scorer kept up")
            rows = await conn.fetch(
                """SELECT extract(epoch FROM s.scored_at - t.ingested_at) * 1000 AS ms
                   FROM scores s JOIN transactions t USING (user_id, transaction_id)
                   WHERE s.user_id = $1""",
                user,
            )
        finally:
            await conn.close()
        return [float(r["ms"]) for r in rows]

    samples = [s for r in range(repeats) for s in asyncio.run(run(r))]
    result = with_percentiles(
        BenchResult(
            "end_to_end_latency", "ms", median(samples), {"rate_per_s": 1000, "seconds": seconds}
        ),
        samples,
    )
    result.target = "p50 <= 100 ms, p99 <= 500 ms"
    result.met = (result.p50 or 0) <= 100 and (result.p99 or 0) <= 500
    return [result]


async def _bulk_load(dsn: str, users: int, per_user: int, *, tag: str, first: int = 0) -> list[str]:
    """Transactions with scores straight into PostgreSQL (COPY), as the scorer would leave them."""
    conn = await asyncpg.connect(dsn)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    names = [f"bq-{tag}-{u:05d}" for u in range(users)]
    try:
        for user in names:
            await conn.execute(
                "INSERT INTO users (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user
            )
        for chunk in range(0, users, 50):
            tx_rows, score_rows = [], []
            for user in names[chunk : chunk + 50]:
                for i in range(first, first + per_user):
                    ts = start + timedelta(minutes=(i * 523) % (60 * 24 * 360))
                    tid = f"q{i:07d}"
                    amount = Decimal(f"{3 + (i * 37) % 180}.{i % 100:02d}")
                    tx_rows.append(
                        (
                            user,
                            tid,
                            f"acct-{i % 3}",
                            ts,
                            amount,
                            "debit",
                            "USD",
                            f"Shop {i % 40}",
                            ["Groceries", "Dining", "Transport", "Shopping", "Utilities"][i % 5],
                            "provided",
                            "card",
                            "api",
                            ts,
                            f"shop {i % 40}",
                        )
                    )
                    score = ((i * 7919) % 1000) / 1000
                    score_rows.append((user, tid, score, score >= 0.97, "v", "[]"))
            await conn.copy_records_to_table(
                "transactions",
                records=tx_rows,
                columns=[
                    "user_id",
                    "transaction_id",
                    "account_id",
                    "ts",
                    "amount",
                    "direction",
                    "currency",
                    "merchant",
                    "category",
                    "category_source",
                    "channel",
                    "source",
                    "ingested_at",
                    "merchant_key",
                ],
            )
            await conn.copy_records_to_table(
                "scores",
                records=score_rows,
                columns=[
                    "user_id",
                    "transaction_id",
                    "score",
                    "is_anomaly",
                    "model_version",
                    "explanation",
                ],
            )
        await conn.execute("ANALYZE transactions; ANALYZE scores")
    finally:
        await conn.close()
    return names


def query_latency(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    dsn = stack.settings.database.require_url()
    api = service_url(stack.settings, "api")
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    results, loaded, tag = [], 0, f"q{time.time_ns()}"
    for size in sizes:
        users = asyncio.run(
            _bulk_load(
                dsn, users=1000, per_user=(size - loaded) // 1000, tag=tag, first=loaded // 1000
            )
        )
        loaded = size
        key = asyncio.run(new_api_key(dsn, users[0]))
        headers = {"Authorization": f"Bearer {key}"}
        queries: dict[str, tuple[str, dict[str, Any]]] = {
            "transactions": ("/v1/transactions", {"limit": 50}),
            "anomalies": ("/v1/anomalies", {"limit": 50}),
            "summary": ("/v1/insights/summary", {"month": "2025-06"}),
        }
        with httpx.Client(base_url=api, timeout=30, headers=headers) as client:
            for name, (path, params) in queries.items():
                ask = partial(_get_ok, client, path, params)
                ask()  # warm
                samples = timed_ms(ask, repeats * (30 if quick else 60))
                result = with_percentiles(
                    BenchResult(
                        f"query_latency_{name}",
                        "ms",
                        median(samples),
                        {"rows": size, "users": 1000},
                    ),
                    samples,
                )
                if size == sizes[-1]:
                    result.target, result.met = "p95 <= 50 ms", (result.p95 or 0) <= 50
                results.append(result)
    return results


def _get_ok(client: httpx.Client, path: str, params: dict[str, Any]) -> None:
    assert client.get(path, params=params).status_code == 200


def timed_ms(run: Callable[[], Any], times: int) -> list[float]:
    """Milliseconds of each of ``times`` calls of ``run``, this process's collector paused."""
    samples = []
    with collector_paused():
        for _ in range(times):
            began = time.perf_counter()
            run()
            samples.append((time.perf_counter() - began) * 1000)
    return samples


def chart_png(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    dsn = stack.settings.database.require_url()
    api = service_url(stack.settings, "api")
    users = asyncio.run(
        _bulk_load(
            dsn, users=1, per_user=100_000 if not quick else 30_000, tag=f"c{time.time_ns()}"
        )
    )
    key = asyncio.run(new_api_key(dsn, users[0]))
    with httpx.Client(timeout=60) as client:

        def render() -> None:
            response = client.get(
                f"{api}/v1/charts/trend.png",
                params={"weeks": 52},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200 and response.content[:4] == b"\x89PNG"

        render()
        samples = timed_ms(render, repeats * 5)
    result = with_percentiles(
        BenchResult(
            "chart_png",
            "ms",
            median(samples),
            {"transactions": 100_000 if not quick else 30_000, "chart": "trend"},
        ),
        samples,
    )
    result.target, result.met = "<= 300 ms", result.median <= 300
    return [result]


def scorer_memory(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    """Resident memory of the scorer process while 200,000 transactions stream through it,
    against its value after the first 20,000."""
    import psutil

    from services.demo.generator import generate
    from services.demo.loader import post_records

    total = 60_000 if quick else 200_000
    checkpoint = total // 10
    dsn = stack.settings.database.require_url()
    scorer = psutil.Process(stack.processes["scorer"].pid)
    tag = f"mem{time.time_ns()}"
    records = generate(users=max(1, total // 600), months=12, seed=5, end=date(2026, 9, 1))
    records = [type(r)(f"{tag}-{r.user_id}", r.transaction, r.anomaly) for r in records][:total]

    async def run() -> dict[str, float]:
        keys = {}
        conn = await asyncpg.connect(dsn)
        try:
            for user in sorted({r.user_id for r in records}):
                keys[user] = (await create_key(conn, user)).secret
        finally:
            await conn.close()
        posting = asyncio.create_task(
            post_records(records, service_url(stack.settings, "ingest"), keys, concurrency=2)
        )
        marks: dict[str, float] = {}
        conn = await asyncpg.connect(dsn)
        try:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM scores WHERE user_id LIKE $1", f"{tag}-%"
                )
                rss = scorer.memory_info().rss / 2**20
                if done >= checkpoint and "reference" not in marks:
                    marks["reference"] = rss
                marks["peak"] = max(marks.get("peak", 0.0), rss)
                if done >= len(records):
                    marks["final"] = rss
                    break
                await asyncio.sleep(1)
        finally:
            await conn.close()
        await posting
        return marks

    marks = asyncio.run(run())
    growth = marks["final"] / marks["reference"] - 1
    return [
        BenchResult(
            "scorer_memory_growth",
            "fraction",
            round(growth, 4),
            {"transactions": len(records), "reference_after": checkpoint},
            target="<= 0.20",
            met=growth <= 0.20,
            extra={k: round(v, 1) for k, v in marks.items()},
        )
    ]
