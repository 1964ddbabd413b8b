"""Running benchmarks repeatedly, summarizing with medians, writing and comparing JSON results."""

from __future__ import annotations

import contextlib
import platform
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from services.cli.stack import Stack

RESULTS = Path(__file__).parent / "results"


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


@contextlib.contextmanager
def services_stopped(stack: Stack, *names: str) -> Iterator[None]:
    """Stop some of the stack's services for a benchmark that stands in for one of them, so
    their background work (retraining, drift, clustering) does not take its cores; then restart
    them and wait until they are healthy again."""
    for name in names:
        stack.stop_service(name)
    try:
        yield
    finally:
        for name in names:
            stack.start_service(name)
        stack.wait_healthy(names)
