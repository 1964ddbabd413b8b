"""`spendstream bench`: start the infrastructure as `spendstream up` does, run every benchmark,
print a table, write bench/results/latest.json, and compare with a saved result."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import RESULTS, BenchResult, load, write
from bench.scorer import scorer_throughput
from services.cli.stack import Stack
from services.core.embedded import free_port
from services.core.settings import Settings

Benchmark = Callable[..., list[BenchResult]]
BENCHMARKS: dict[str, Benchmark] = {"scorer_throughput": scorer_throughput}


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def print_table(
    console: Console, results: list[BenchResult], baseline: dict[str, dict[str, Any]] | None
) -> None:
    table = Table(
        "benchmark", "median", "p50", "p95", "p99", "unit", "target", title="Spendstream benchmarks"
    )
    if baseline is not None:
        table.add_column("vs baseline")
    for r in results:
        row = [r.name, _fmt(r.median), _fmt(r.p50), _fmt(r.p95), _fmt(r.p99), r.unit]
        target = "" if r.target is None else f"{r.target} {'✓' if r.met else '✗'}"
        row.append(target)
        if baseline is not None:
            before = baseline.get(r.name, {}).get("median")
            row.append(f"{r.median / before:.2f}x" if before else "n/a")
        table.add_row(*row)
    console.print(table)


def run(
    *, quick: bool, only: list[str] | None, compare: Path | None, out: Path | None
) -> list[BenchResult]:
    console = Console()
    selected = {k: v for k, v in BENCHMARKS.items() if not only or k in only}
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="spendstream-bench-") as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            embedded_kafka_port=free_port(),
            embedded_postgres_port=free_port(),
        )
        stack = Stack(settings, services=())
        try:
            with console.status("starting the embedded broker and PostgreSQL..."):
                stack.start_infrastructure()
            results: list[BenchResult] = []
            for name, benchmark in selected.items():
                with console.status(f"running {name}..."):
                    results.extend(
                        benchmark(
                            stack.settings.require_database_url(), quick=quick, repeats=repeats
                        )
                    )
        finally:
            stack.stop()
    target = out or RESULTS / "latest.json"
    write(results, target)
    print_table(console, results, load(compare) if compare else None)
    console.print(f"wrote {target}")
    return results
