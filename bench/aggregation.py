"""The forecaster's aggregation step in-process: transactions per second folded into daily spend,
in 1,000-event batches (the forecaster's batch size), against a fresh PostgreSQL.

``--compare-with REV`` also runs the aggregation as it was at git revision REV (loaded from git,
not kept in the tree), interleaved with today's, for a before-and-after in one run:

    python -m bench.aggregation --compare-with a931669 \\
        --out bench/results/forecaster_aggregation.json
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.harness import machine, median
from schemas import TransactionEvent
from services.core.db import create_pool, migrate
from services.demo.generator import generate
from services.devstack.embedded import EmbeddedPostgres, free_port
from services.forecaster.store import apply_to_daily_spend

Aggregate = Callable[[asyncpg.Pool, Sequence[TransactionEvent]], Awaitable[None]]
BATCH = 1_000


def events(n: int, tag: str) -> list[TransactionEvent]:
    records = generate(users=max(1, n // 700), months=12, seed=3, end=date(2026, 9, 1))[:n]
    now = datetime(2026, 9, 1, 6, tzinfo=UTC)
    return [
        TransactionEvent.model_validate(
            {**r.transaction, "user_id": f"{tag}-{r.user_id}", "ingested_at": now}
        )
        for r in records
    ]


def aggregation_at(revision: str) -> Aggregate:
    """``add_to_daily_spend`` as it was at ``revision``."""
    source = subprocess.run(
        ["git", "show", f"{revision}:services/forecaster/store.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "store_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("store_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before: Aggregate = module.add_to_daily_spend
    return before


async def rate(pool: asyncpg.Pool, aggregate: Aggregate, batch: list[TransactionEvent]) -> float:
    began = time.perf_counter()
    for i in range(0, len(batch), BATCH):
        await aggregate(pool, batch[i : i + BATCH])
    return len(batch) / (time.perf_counter() - began)


async def run(dsn: str, variants: dict[str, Aggregate], n: int, rounds: int) -> dict[str, Any]:
    await migrate(dsn)
    pool = await create_pool(dsn, size=2)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for round_ in range(rounds):  # interleaved: the machine's speed drifts
            for name, aggregate in variants.items():
                rates[name].append(await rate(pool, aggregate, events(n, f"{name}{round_}")))
    finally:
        await pool.close()
    return {
        "benchmark": "forecaster_aggregation",
        "unit": "tx/s",
        "transactions_per_round": n,
        "batch": BATCH,
        "median": {name: round(median(r)) for name, r in rates.items()},
        "runs": {name: [round(x) for x in r] for name, r in rates.items()},
        "machine": machine(),
        "created_at": datetime.now(UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare-with", metavar="REV")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    variants: dict[str, Aggregate] = {"now": apply_to_daily_spend}
    if args.compare_with:
        variants = {f"at-{args.compare_with}": aggregation_at(args.compare_with), **variants}
    with tempfile.TemporaryDirectory() as data:
        postgres = EmbeddedPostgres(Path(data) / "pg", free_port(), durable=False)
        postgres.start()
        try:
            result = asyncio.run(run(postgres.dsn, variants, args.transactions, args.rounds))
        finally:
            postgres.stop()
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
