"""Exports of a large history: the query API's resident memory while it streams a user's
transactions as CSV (1,000,000 rows; 100,000 with --quick) and builds the .xlsx, against its
memory before, and the rows per second.

The rows are written straight into PostgreSQL with COPY: this measures the export, not ingest.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import psutil

from bench.harness import BenchResult, median
from bench.pipeline import new_api_key
from services.devstack.stack import Stack, service_url

CATEGORIES = ("Groceries", "Dining", "Transport", "Shopping", "Utilities")
MEMORY_TARGET_MIB = 100


async def _history(dsn: str, user: str, rows: int) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    records = (
        (
            user,
            f"x{i:08d}",
            f"acct-{i % 3}",
            start + timedelta(minutes=3 * i),
            Decimal(f"{3 + (i * 37) % 180}.{i % 100:02d}"),
            "debit",
            "USD",
            f"Shop {i % 400}",
            CATEGORIES[i % 5],
            "card",
            "import",
            start,
        )
        for i in range(rows)
    )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "transactions",
            records=records,
            columns=(
                "user_id", "transaction_id", "account_id", "ts", "amount", "direction",
                "currency", "merchant", "category", "channel", "source", "ingested_at",
            ),
        )  # fmt: skip
    finally:
        await conn.close()


async def _download(url: str, key: str, api: psutil.Process) -> tuple[float, float, int]:
    """Seconds, peak resident MiB of the API while it answered (sampled every 0.1 s, also while
    it builds a workbook before its first byte), and bytes received."""
    peak, received = api.memory_info().rss / 2**20, 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, api.memory_info().rss / 2**20)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    began = time.perf_counter()
    try:
        async with (
            httpx.AsyncClient(timeout=3600) as client,
            client.stream("GET", url, headers={"Authorization": f"Bearer {key}"}) as response,
        ):
            assert response.status_code == 200, await response.aread()
            async for chunk in response.aiter_bytes():
                received += len(chunk)
    finally:
        sampler.cancel()
    return time.perf_counter() - began, peak, received


def export_memory(stack: Stack, *, quick: bool, repeats: int) -> list[BenchResult]:
    rows = 100_000 if quick else 1_000_000
    dsn = stack.settings.database.require_url()
    user = f"bench-export-{time.time_ns()}"
    api = psutil.Process(stack.processes["api"].pid)
    base = service_url(stack.settings, "api")

    async def run() -> list[BenchResult]:
        key = await new_api_key(dsn, user)
        await _history(dsn, user, rows)
        results = []
        for fmt in ("csv", "xlsx"):
            before = api.memory_info().rss / 2**20
            samples = [
                await _download(f"{base}/v1/exports/transactions.{fmt}", key, api)
                for _ in range(repeats if fmt == "csv" else 1)
            ]
            growth = median([peak - before for _, peak, _ in samples])
            results.append(
                BenchResult(
                    f"export_{fmt}_memory",
                    "MiB",
                    round(growth, 1),
                    {"rows": rows},
                    runs=[round(peak - before, 1) for _, peak, _ in samples],
                    target=f"<= {MEMORY_TARGET_MIB}",
                    met=growth <= MEMORY_TARGET_MIB,
                    extra={
                        "rss_before_mib": round(before, 1),
                        "rows_per_s": round(rows / median([s for s, _, _ in samples])),
                        "bytes": samples[0][2],
                    },
                )
            )
        return results

    return asyncio.run(run())
