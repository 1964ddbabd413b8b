"""Running benchmarks repeatedly, summarizing with medians, writing and comparing JSON results."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
from aiokafka import AIOKafkaConsumer

from services.core.lag import topic_partitions
from services.devstack.stack import Stack

RESULTS = Path(__file__).parent / "results"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process while it times a service. By the time the latency
    benchmarks run, it holds the objects of every benchmark before; a full collection stops it
    for long enough that every request due meanwhile counts it as the server's latency."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class BenchResult:
    name: str
    unit: str
    median: float
    params: dict[str, Any] = field(default_factory=dict)
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    runs: list[float] = field(default_factory=list)
    target: str | None = None
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def with_percentiles(result: BenchResult, samples: Sequence[float]) -> BenchResult:
    """``result`` with p50, p95 and p99 of ``samples`` filled in."""
    values = np.asarray(samples, dtype=float)
    result.p50, result.p95, result.p99 = (float(np.percentile(values, q)) for q in (50, 95, 99))
    return result


def repeat(run: Callable[[], float], times: int) -> list[float]:
    return [run() for _ in range(times)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write(results: list[BenchResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "benchmarks": [asdict(r) for r in results],
    }
    path.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )


def load(path: Path) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in orjson.loads(path.read_bytes())["benchmarks"]}


async def start_group_at_end(stack: Stack, group: str) -> None:
    """Commit the current end of the transactions topic for a consumer group, so its consumers
    read only what is queued from now on."""
    settings = stack.settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = topic_partitions(consumer, settings.topics.transactions)
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


@contextlib.contextmanager
def consumers_stopped(stack: Stack) -> Iterator[None]:
    """Stop the scorer and the forecaster for a benchmark that stands in for them or feeds them,
    so their background work (retraining, drift, clustering) does not take its cores. They come
    back past what was queued meanwhile: that is benchmark data, and working it off (and then
    forecasting and clustering thousands of benchmark users) would take the cores of the
    benchmarks after. They come back in new consumer groups, committed at the end of the topic:
    the embedded broker keeps a stopped member in its old group, and refuses to move that
    group's offsets while it does."""
    names = ("scorer", "forecaster")
    for name in names:
        stack.stop_service(name)
    try:
        yield
    finally:
        generation = time.time_ns()
        groups = {
            "scorer_group_id": f"scorer-bench-{generation}",
            "forecaster_group_id": f"forecaster-bench-{generation}",
        }
        for group in groups.values():
            asyncio.run(start_group_at_end(stack, group))
        stack.settings = stack.settings.replace(**groups)
        for name in names:
            stack.start_service(name)
        stack.wait_healthy(names)
