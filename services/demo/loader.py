"""Writing demo data to a file, or posting it through the ingest API like any client would."""

from __future__ import annotations

import asyncio
import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import orjson

from services.demo.generator import DemoRecord

CSV_COLUMNS = (
    "user_id",
    "transaction_id",
    "account_id",
    "timestamp",
    "amount",
    "direction",
    "currency",
    "merchant",
    "description",
    "category",
    "channel",
    "country",
    "is_anomaly",
    "anomaly_kind",
)


def write_records(records: Sequence[DemoRecord], path: Path) -> None:
    """CSV (labels as ``is_anomaly`` and ``anomaly_kind``) or, for ``.jsonl``, one object a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        with path.open("wb") as out:
            for r in records:
                out.write(
                    orjson.dumps({"user_id": r.user_id, "anomaly": r.anomaly, **r.transaction})
                    + b"\n"
                )
        return
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, CSV_COLUMNS)
        writer.writeheader()
        for r in records:
            writer.writerow(
                {
                    "user_id": r.user_id,
                    **r.transaction,
                    "is_anomaly": int(r.anomaly is not None),
                    "anomaly_kind": r.anomaly or "",
                }
            )


class IngestError(RuntimeError):
    pass


async def post_records(
    records: Sequence[DemoRecord],
    ingest_url: str,
    keys: dict[str, str],
    *,
    batch_size: int = 1000,
    concurrency: int = 4,
    on_progress: Callable[[int], None] = lambda _: None,
) -> int:
    """POST every record under its user's key; return how many the broker acknowledged."""
    by_user: dict[str, list[dict[str, object]]] = defaultdict(list)
    for r in records:
        by_user[r.user_id].append(r.transaction)
    limit = asyncio.Semaphore(concurrency)
    accepted = 0

    async def send_user(client: httpx.AsyncClient, user: str, txs: list[dict[str, object]]) -> None:
        # One user's batches go in order, so each account's transactions arrive in time order.
        nonlocal accepted
        async with limit:
            for start in range(0, len(txs), batch_size):
                batch = txs[start : start + batch_size]
                accepted += await _post_batch(client, ingest_url, keys[user], batch)
                on_progress(len(batch))

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(send_user(client, user, txs) for user, txs in by_user.items()))
    return accepted


async def _post_batch(
    client: httpx.AsyncClient, ingest_url: str, key: str, batch: list[dict[str, object]]
) -> int:
    for attempt in range(5):
        response = await client.post(
            f"{ingest_url}/v1/transactions",
            content=orjson.dumps({"transactions": batch}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")) * (attempt + 1) / 5)
    if response.status_code != 202:
        raise IngestError(f"ingest answered {response.status_code}: {response.text[:500]}")
    return int(response.json()["accepted"])
