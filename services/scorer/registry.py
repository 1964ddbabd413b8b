"""The model registry loop: one scorer trains (under a PostgreSQL advisory lock), all hot-swap."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import pickle
import secrets
import signal
import socket
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context

import asyncpg
import numpy as np
from prometheus_client import Counter, Gauge

from services.core.db import Lock, advisory_lock
from services.core.processes import set_parent_death_signal
from services.core.settings import Settings
from services.core.tasks import repeat
from services.scorer import store
from services.scorer.confirmed import MERCHANT_DAYS, Confirmation, descriptor_key
from services.scorer.ensemble import (
    HISTORY_COLUMN,
    MATURE_LOG_HISTORY,
    EnsembleModel,
    first_model_due,
    rows_before_retraining,
    train_ensemble,
)
from services.scorer.model_features import MODEL_FEATURES
from services.scorer.rescoring import Rescorer
from services.scorer.scoring import AnomalyScorer

log = logging.getLogger(__name__)

CONFIRMED_OVERLAP = timedelta(seconds=10)
# How stale a merchant's counted trade may grow: a minute, and an hour of event time, which an
# import, a backfill or `eval anomalies --stream` moves through in seconds. Counting every merchant
# with recent confirmed fraud costs PostgreSQL tens of milliseconds on a bank's month
# (bench/results/anomaly_quality.json, "terminal_share_2026_12_03").
TRAFFIC_RECOUNT_S = 60.0
TRAFFIC_RECOUNT_EVENT_S = 3_600.0
MODEL_INFO = Gauge(
    "spendstream_scorer_model_info",
    "The model version each detector currently serves (value is always 1).",
    ["detector", "version"],
)

# What confirmed fraud the scorer has taken in: a chargeback feed (or ``eval anomalies --stream``)
# can tell when the transactions it sends next will be scored knowing it.
CONFIRMED_FRAUD_REMEMBERED_METRIC = "spendstream_scorer_confirmed_fraud_remembered_total"
CONFIRMED_FRAUD_REMEMBERED = Counter(
    CONFIRMED_FRAUD_REMEMBERED_METRIC,
    "Confirmed fraud this scorer has folded into its memory (each transaction once).",
)


SIGNED_PREFIX = b"spendstream-model-v1:"


class UntrustedArtifact(ValueError):
    """A registry artifact whose signature does not verify: never unpickled."""


def serialize(model: EnsembleModel) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def sign_artifact(payload: bytes, key: bytes) -> bytes:
    """The artifact as stored: a prefix, an HMAC-SHA256 of the payload, the payload. Unpickling
    runs code, so whoever can write to the database must not be able to forge a model."""
    return SIGNED_PREFIX + hmac.new(key, payload, hashlib.sha256).digest() + payload


def deserialize(artifact: bytes, key: bytes) -> EnsembleModel:
    """The model in a signed artifact; ``UntrustedArtifact`` before any unpickling otherwise."""
    head, rest = artifact[: len(SIGNED_PREFIX)], artifact[len(SIGNED_PREFIX) :]
    mac, payload = rest[:32], rest[32:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()
    if head != SIGNED_PREFIX or not hmac.compare_digest(mac, expected):
        raise UntrustedArtifact("the model artifact is not signed with this installation's key")
    model = pickle.loads(payload)  # noqa: S301  (verified above)
    if not isinstance(model, EnsembleModel):
        raise UntrustedArtifact(f"the artifact holds a {type(model).__name__}, not a model")
    return model


def train_and_serialize(
    X: np.ndarray, version: str, seed: int, labelled: store.LabelledRows | None = None
) -> bytes:
    model = train_ensemble(X, version=version, feature_names=MODEL_FEATURES, seed=seed)
    if labelled is not None and len(labelled.labels):
        model.learn_from_labels(labelled.X, labelled.labels, labelled.users, seed=seed)
        if model.supervised is not None:
            model.metrics["supervised"] = {
                "confirmed_fraud": model.supervised.confirmed,
                "serves": "everyone" if model.supervised.users is None else "its label owners",
            }
    return serialize(model)


def _stale(latest: asyncpg.Record) -> bool:
    """A model trained on another layout of the features (an older release's) cannot read this
    scorer's rows: it is not served, and a new one is due."""
    return bool(latest["features"] != list(MODEL_FEATURES))


async def training_due(pool: asyncpg.Pool, settings: Settings) -> bool:
    """Whether the scored rows call for a new model: enough of them and none yet, or enough new
    ones since the latest (``rows_before_retraining``), or any after ``retrain_interval_s``."""
    s = settings.scorer
    latest = await store.latest_model(pool)
    if latest is None or _stale(latest):
        rows, mature = await store.rows_scored(pool, HISTORY_COLUMN, MATURE_LOG_HISTORY)
        return first_model_due(rows, mature, s.min_training_rows)
    since: datetime = latest["created_at"]
    new_rows = await store.scored_since(pool, since)
    due_after = rows_before_retraining(
        latest["training_rows"],
        s.min_training_rows,
        s.retrain_after_transactions,
        as_data_doubles=s.retrain_as_data_doubles,
    )
    return new_rows >= due_after or (new_rows > 0 and latest["age_s"] >= s.retrain_interval_s)


class ModelKeeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        scorer: AnomalyScorer,
        settings: Settings,
        rescorer: Rescorer | None = None,
    ):
        self.pool = pool
        self.scorer = scorer
        self.settings = settings
        self.rescorer = rescorer
        self._rescored_for: str | None = None
        self._confirmed_seen: datetime | None = None
        # (user, merchant key) -> the ways its confirmed fraud was printed, for counting its
        # trade in PostgreSQL
        self._printed: dict[tuple[str, str], set[str]] = {}
        self._counted: set[tuple[str, str]] = set()
        self._confirmations_uncounted = False
        self._traffic_counted_at = self._traffic_counted_for = -math.inf
        self.instance = f"{socket.gethostname()}:{id(self):x}"
        if settings.security.model_signing_key is not None:
            self.signing_key = settings.security.model_signing_key.get_secret_value().encode()
        else:
            log.warning(
                "SPENDSTREAM_MODEL_SIGNING_KEY is unset: this scorer signs its models with a key "
                "of its own and loads only those; give every scorer the same key to share them"
            )
            self.signing_key = secrets.token_bytes(32)
        self._pool: ProcessPoolExecutor | None = None
        self._publish_info()

    def _publish_info(self) -> None:
        MODEL_INFO.clear()
        MODEL_INFO.labels("hst", "online").set(1)
        if self.scorer.model is not None:
            for name in self.scorer.model.detectors:
                MODEL_INFO.labels(name, self.scorer.model.version).set(1)

    async def refresh(self) -> bool:
        """Swap to the newest registered model if it is not the one being served and it reads
        the features this scorer computes."""
        latest = await store.latest_model(self.pool)
        if latest is None or latest["version"] == self.scorer.version or _stale(latest):
            return False
        artifact = await store.model_artifact(self.pool, latest["version"])
        try:
            model = await asyncio.to_thread(deserialize, artifact, self.signing_key)
        except UntrustedArtifact:
            log.error("not loading anomaly model %s: %s", latest["version"], "untrusted artifact")
            return False
        self.scorer.use_model(model)
        self._publish_info()
        log.info("now serving anomaly model %s", model.version)
        return True

    async def training_due(self) -> bool:
        return await training_due(self.pool, self.settings)

    async def train_if_due(self) -> str | None:
        """Train and register a model if one is due and no other scorer is training right now."""
        if not await self.training_due():
            return None
        async with advisory_lock(self.pool, Lock.TRAINING) as conn:
            # Another scorer may be training, or may just have finished.
            if conn is None or not await self.training_due():
                return None
            return await self._train(conn)

    async def _train(self, conn: asyncpg.Connection) -> str:
        s = self.settings
        X = await store.training_matrix(
            self.pool, s.scorer.training_max_rows, s.scorer.legit_feedback_weight
        )
        labelled = await store.labelled_rows(self.pool, s.scorer.training_max_rows)
        version = f"ens-{datetime.now(UTC):%Y%m%dT%H%M%S}-{len(X)}"
        # A process of its own: training is long and partly pure Python, and holding this
        # process's GIL for seconds would stall scoring.
        artifact = await asyncio.get_running_loop().run_in_executor(
            self._trainer(), train_and_serialize, X, version, s.scorer.seed, labelled
        )
        # From this scorer's own training process, so trusted as it is; signed for the registry.
        signed = sign_artifact(artifact, self.signing_key)
        model = await asyncio.to_thread(deserialize, signed, self.signing_key)
        await store.save_model(conn, version, len(X), model.metrics, signed, self.instance)
        log.info("trained anomaly model %s on %d rows", version, len(X))
        return version

    def _trainer(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # SIGKILL on the scorer's exit: a half-trained model is worthless, and an orphan
            # would keep training on a core the next scorer needs.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=get_context("spawn"),
                initializer=set_parent_death_signal,
                initargs=(signal.SIGKILL,),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def remember_confirmed_fraud(self) -> int:
        """Fold fraud confirmed since the last look into the scorer's memory of it. The look
        overlaps the last by a few seconds: a confirmation committed late with an earlier
        timestamp is still seen, and one seen twice counts once. Return how many were new."""
        since = self._confirmed_seen - CONFIRMED_OVERLAP if self._confirmed_seen else None
        rows = await store.confirmed_fraud_since(self.pool, since)
        taken_in = 0
        for row in rows:
            merchant = descriptor_key(row["merchant"], row["description"])
            printed = row["merchant"] or row["description"]
            if printed:
                self._printed.setdefault((row["user_id"], merchant), set()).add(printed)
            self._confirmations_uncounted = True
            taken_in += self.scorer.confirmed.confirm(
                Confirmation(row["user_id"], row["account_id"], merchant, row["ts"].timestamp()),
                row["transaction_id"],
            )
            seen = self._confirmed_seen
            self._confirmed_seen = (
                row["updated_at"] if seen is None else max(seen, row["updated_at"])
            )
        return taken_in

    async def count_merchant_traffic(self) -> int:
        """Count, in PostgreSQL (which holds every partition's transactions), each owner's
        trade at the merchants where they confirmed fraud in the past weeks: the denominator of
        ``merchant_confirmed_fraud_share``. A merchant with newly confirmed fraud is counted at
        once; all of them again every ``TRAFFIC_RECOUNT_S``, or sooner when event time has moved
        ``TRAFFIC_RECOUNT_EVENT_S``. Return how many were counted."""
        confirmed = self.scorer.confirmed
        recount = (
            time.monotonic() - self._traffic_counted_at >= TRAFFIC_RECOUNT_S
            or confirmed.latest - self._traffic_counted_for >= TRAFFIC_RECOUNT_EVENT_S
        )
        if not recount and not self._confirmations_uncounted:
            return 0  # only a confirmation brings a merchant into the window
        self._confirmations_uncounted = False
        recent = confirmed.merchants_with_fraud(confirmed.latest - MERCHANT_DAYS * 86400)
        todo = {k: newest for k, newest in recent.items() if recount or k not in self._counted}
        keys = [
            (user, merchant, printed, datetime.fromtimestamp(newest - MERCHANT_DAYS * 86400, UTC))
            for (user, merchant), newest in todo.items()
            for printed in self._printed.get((user, merchant), ())
        ]
        counts: dict[tuple[str, str], dict[int, int]] = {key: {} for key in todo}
        for row in await store.merchant_traffic(self.pool, keys):
            days = counts[(row["user_id"], row["merchant"])]
            days[row["day"]] = days.get(row["day"], 0) + row["n"]
        for (user, merchant), days in counts.items():
            confirmed.set_traffic(user, merchant, days)
        if recount:
            self._traffic_counted_at = time.monotonic()
            self._traffic_counted_for = confirmed.latest
            self._counted = set(recent)
            # A merchant's fraud past the window is forgotten here; a new one brings it back.
            self._printed = {key: self._printed[key] for key in recent if key in self._printed}
        else:
            self._counted.update(todo)
        return len(counts)

    async def tick(self) -> None:
        taken_in = await self.remember_confirmed_fraud()
        await self.count_merchant_traffic()
        CONFIRMED_FRAUD_REMEMBERED.inc(taken_in)  # with their merchants' trade counted too
        await self.refresh()
        if await self.train_if_due():
            await self.refresh()
        await self._rescore_if_new()

    async def _rescore_if_new(self) -> None:
        """Once per model served (after a swap, or a restart), bring recent scores up to it."""
        version = self.scorer.version
        if self.rescorer is None or self.scorer.model is None or version == self._rescored_for:
            return
        await self.rescorer.catch_up()
        self._rescored_for = version

    async def run(self) -> None:
        await repeat(
            self.tick,
            every_s=lambda: self.settings.scorer.model_check_interval_s,
            what="model registry",
        )
