"""Anomaly quality measured through the real pipeline: demo data posted to ingest, scored by the
scorer over Kafka, read back from PostgreSQL."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from services.core.auth import create_key
from services.core.settings import Settings
from services.demo.generator import DemoRecord, generate
from services.demo.loader import post_records
from services.devstack.stack import Stack, isolated_settings, service_url
from services.scorer.evaluation import detection_metrics

CANDIDATE_THRESHOLDS = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995)


@dataclass(frozen=True)
class PipelineQuality:
    n_train: int
    n_test: int
    anomalies_in_test: int
    model_version: str
    metrics: dict[str, float]
    precision_at_threshold: float
    recall_at_threshold: float
    threshold: float
    precision_recall_at: dict[str, tuple[float, float]]

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


async def _wait_scored(dsn: str, count: int, within_s: float = 600) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within_s
        while await conn.fetchval("SELECT count(*) FROM scores") < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} transactions scored after {within_s:.0f}s")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _wait_model(dsn: str, within_s: float = 600) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within_s
        while (version := await conn.fetchval("SELECT max(version) FROM anomaly_models")) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("no model was trained")
            await asyncio.sleep(1)
        return str(version)
    finally:
        await conn.close()


async def _scores(dsn: str, records: list[DemoRecord]) -> tuple[np.ndarray, np.ndarray, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT k.user_id, k.transaction_id, s.score, s.is_anomaly, s.model_version
               FROM unnest($1::text[], $2::text[]) AS k(user_id, transaction_id)
               JOIN scores s USING (user_id, transaction_id)""",
            [r.user_id for r in records],
            [r.transaction["transaction_id"] for r in records],
        )
    finally:
        await conn.close()
    found = {(r["user_id"], r["transaction_id"]): r for r in rows}
    keyed = [found[(r.user_id, r.transaction["transaction_id"])] for r in records]
    return (
        np.array([row["score"] for row in keyed]),
        np.array([row["is_anomaly"] for row in keyed]),
        {row["model_version"] for row in keyed},
    )


async def _post(stack: Stack, records: list[DemoRecord], keys: dict[str, str]) -> None:
    await post_records(records, service_url(stack.settings, "ingest"), keys)


async def eval_keys(dsn: str, users: list[str]) -> dict[str, str]:
    """An API key for each evaluation user, made straight in the database."""
    conn = await asyncpg.connect(dsn)
    try:
        return {user: (await create_key(conn, user, "eval")).secret for user in users}
    finally:
        await conn.close()


def eval_settings(data_dir: Path, train_rows: int) -> Settings:
    """One model, trained once ``train_rows`` are scored, and no other: the measured rows are
    scored by it alone. Retraining as the data doubles is off too: with it, half the rows or
    fewer held out would make a second model due on them, which re-scores them as it starts."""
    return isolated_settings(
        data_dir,
        min_training_rows=train_rows,
        retrain_after_transactions=10**9,
        retrain_as_data_doubles=False,
        retrain_interval_s=10**9,
        model_check_interval_s=1.0,
    )


def evaluate_through_pipeline(
    *, users: int, months: int, seed: int, train_fraction: float, end: date | None = None
) -> PipelineQuality:
    """Stream the first part, let the scorer train on it, stream the rest and score that."""
    records = generate(users=users, months=months, seed=seed, end=end)
    records.sort(key=lambda r: r.transaction["timestamp"])
    split = int(len(records) * train_fraction)
    first, rest = records[:split], records[split:]
    with tempfile.TemporaryDirectory(prefix="spendstream-eval-") as data_dir:
        settings = eval_settings(Path(data_dir), split)
        stack = Stack(settings, services=("ingest", "scorer"), durable=False)
        try:
            stack.start_infrastructure()
            # The scorer reads its training settings from the environment of its process.
            for name in ("ingest", "scorer"):
                stack.start_service(name)
            stack.wait_healthy()
            dsn = stack.settings.database.require_url()
            keys = asyncio.run(eval_keys(dsn, sorted({r.user_id for r in records})))
            asyncio.run(_post(stack, first, keys))
            asyncio.run(_wait_scored(dsn, len(first)))
            version = asyncio.run(_wait_model(dsn))
            time.sleep(3 * settings.scorer.model_check_interval_s)  # every scorer swaps within this
            asyncio.run(_post(stack, rest, keys))
            asyncio.run(_wait_scored(dsn, len(records)))
            scores, flagged, versions = asyncio.run(_scores(dsn, rest))
        finally:
            stack.stop()
    labels = np.array([r.anomaly is not None for r in rest])
    precision, recall = precision_recall(labels, flagged)
    return PipelineQuality(
        n_train=len(first),
        n_test=len(rest),
        anomalies_in_test=int(labels.sum()),
        model_version=",".join(sorted(versions)) or version,
        metrics=detection_metrics(labels, scores),
        precision_at_threshold=precision,
        recall_at_threshold=recall,
        threshold=settings.scorer.anomaly_threshold,
        precision_recall_at={
            f"{t:g}": precision_recall(labels, scores >= t) for t in CANDIDATE_THRESHOLDS
        },
    )


def precision_recall(labels: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    hits = int((labels & flagged).sum())
    return round(hits / max(int(flagged.sum()), 1), 4), round(hits / max(int(labels.sum()), 1), 4)
