"""Writing demo data to a file, or posting it through the ingest API like any client would."""

from __future__ import annotations

import asyncio
import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

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


def demo_budgets(records: Sequence[DemoRecord], user: str, top: int = 4) -> dict[str, str]:
    """Monthly budgets for ``user``'s ``top`` spending categories, a little above their average
    month: enough that the dashboard shows budgets on track and at risk from the first run."""
    months: set[str] = set()
    spent: dict[str, float] = defaultdict(float)
    for r in records:
        tx = r.transaction
        if r.user_id == user:
            months.add(str(tx["timestamp"])[:7])
        debit = tx.get("direction", "debit") == "debit" and tx.get("currency", "USD") == "USD"
        if r.user_id != user or not debit or r.anomaly is not None:
            continue
        category = str(tx.get("category") or "")
        if not category or category in ("Rent", "Income", "Transfers"):
            continue
        spent[category] += float(str(tx["amount"]))
    average = {c: spent[c] / max(1, len(months)) for c in spent}
    chosen = sorted(average, key=lambda c: -average[c])[:top]
    return {c: f"{round(average[c] * 1.05, -1):.2f}" for c in chosen}


async def put_budgets(api_url: str, key: str, budgets: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for category, amount in budgets.items():
            response = await client.put(
                f"{api_url}/v1/budgets/{quote(category, safe='')}",
                json={"amount": amount},
                headers={"Authorization": f"Bearer {key}"},
            )
            response.raise_for_status()
