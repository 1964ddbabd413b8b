"""`spendstream bench`: start the infrastructure as `spendstream up` does, run every benchmark,
print a table, write bench/results/latest.json, and compare with a saved result."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from bench import pipeline
from bench.analytics import analytics_10k
from bench.export import export_memory
from bench.forecast import forecast_refresh
from bench.harness import RESULTS, BenchResult, load, write
from bench.scorer import scorer_throughput, semantic_categories
from services.core.settings import Settings
from services.devstack.stack import Stack, isolated_settings

Benchmark = Callable[..., list[BenchResult]]
BENCHMARKS: dict[str, Benchmark] = {
    "ingest_batch_throughput": pipeline.ingest_batch_throughput,
    "ingest_single_latency": pipeline.ingest_single_latency,
    # Before the scorer drains: those restart the consumers, whose start-up would share the
    # cores with the embedding model here.
    "semantic_categories": semantic_categories,
    "scorer_throughput": scorer_throughput,
    "end_to_end_latency": pipeline.end_to_end_latency,
    "chart_png": pipeline.chart_png,
    "analytics_10k": analytics_10k,
    "forecast_refresh": forecast_refresh,
    "query_latency": pipeline.query_latency,
    "scorer_memory": pipeline.scorer_memory,
    # Last: it writes a million rows straight into the database.
    "export_memory": export_memory,
}


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def print_table(
    console: Console, results: list[BenchResult], baseline: dict[str, dict[str, Any]] | None
) -> None:
    table = Table(title="Spendstream benchmarks (medians of repeated runs)")
    table.add_column("benchmark", no_wrap=True)
    table.add_column("params", overflow="fold", max_width=24)
    for column in ("median", "p50", "p95", "p99"):
        table.add_column(column, justify="right")
    table.add_column("unit")
    table.add_column("target")
    if baseline is not None:
        table.add_column("vs baseline")
    for r in results:
        params = ", ".join(
            f"{k}={v}"
            for k, v in r.params.items()
            if k in ("rows", "batch", "rate_per_s", "transactions", "batch_size")
        )
        row = [r.name, params, _fmt(r.median), _fmt(r.p50), _fmt(r.p95), _fmt(r.p99), r.unit]
        target = "" if r.target is None else f"{r.target} {'✓' if r.met else '✗'}"
        row.append(target)
        if baseline is not None:
            before = baseline.get(r.name, {}).get("median")
            row.append(f"{r.median / before:.2f}x" if before else "n/a")
        table.add_row(*row)
    console.print(table)


def bench_settings(data_dir: Path) -> Settings:
    """The stack's settings for a benchmark run.

    No retraining on its own: a training run takes a core for a minute or more from the moment a
    count is reached, and would land in one benchmark and not the next (the drains alone score
    280,000 transactions). Both counts are raised: a model is due once the data doubled since it
    was trained (``rows_before_retraining``) or after ``retrain_after_transactions``, whichever is
    less, and never before ``min_training_rows``. scorer_throughput registers the model every
    scorer then serves; what training costs is `spendstream eval anomalies`' fit_s.

    Nor per-key rate limits: the load generators send one key's traffic as fast as the services
    take it, which is what they measure."""
    return isolated_settings(
        data_dir,
        retrain_after_transactions=10**9,
        min_training_rows=10**9,
        retrain_interval_s=7 * 86_400,
        ingest_rate_limit="1000000/second",
        api_rate_limit="1000000/second",
    )


def run(
    *, quick: bool, only: list[str] | None, compare: Path | None, out: Path | None
) -> list[BenchResult]:
    console = Console(width=140)
    selected = {k: v for k, v in BENCHMARKS.items() if not only or k in only}
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="spendstream-bench-") as data_dir:
        settings = bench_settings(Path(data_dir))
        stack = Stack(settings)
        peaks = PeakMemory(stack)
        try:
            with console.status("starting the stack as `spendstream up` does..."):
                stack.start()
            peaks.start()
            results: list[BenchResult] = []
            for name, benchmark in selected.items():
                with console.status(f"running {name}..."):
                    results.extend(benchmark(stack, quick=quick, repeats=repeats))
        finally:
            peaks.stop()
            stack.stop()
    results.append(
        BenchResult(
            "peak_rss",
            "MiB",
            max(peaks.peaks.values(), default=0.0),
            extra={"per_service": peaks.peaks},
        )
    )
    target = out or RESULTS / "latest.json"
    write(results, target)
    print_table(console, results, load(compare) if compare else None)
    console.print(f"wrote {target}")
    return results


class PeakMemory:
    """Samples each service's resident memory every half second; keeps the peaks."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for name, process in list(self.stack.processes.items()):
                try:
                    rss = psutil.Process(process.pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peaks[name] = round(max(self.peaks.get(name, 0.0), rss), 1)
