"""Scorer: reads transactions in batches, scores them, persists, then lets the offsets commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer
from faststream import AckPolicy, Context, ContextRepo
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram

from schemas import (
    AnomalyAlert,
    CategoryRename,
    DeadLetter,
    DriftEvent,
    TransactionChange,
    TransactionEvent,
)
from services.analytics.embeddings import Embedder, load_model
from services.core.consuming import (
    TRANSIENT_DB_ERRORS,
    ChangeDelivery,
    Delivery,
    make_batch_decoder,
    process_isolating_poison,
    retry_transient,
    split_batch,
)
from services.core.db import create_pool
from services.core.heap import settle_startup_heap
from services.core.kafka import make_broker
from services.core.lag import watch_lag
from services.core.logging import configure_logging
from services.core.offsets import Offsets, commit, first_offsets, next_offsets, rewind
from services.core.service import consumer_asgi_app
from services.core.settings import get_settings
from services.core.tasks import running
from services.scorer import store
from services.scorer.categorize import Categorizer
from services.scorer.categorize_types import Categorization
from services.scorer.drift_watcher import DriftWatcher
from services.scorer.inflight import InFlight, Job, SettleBeforeRevoke
from services.scorer.registry import ModelKeeper
from services.scorer.rescoring import Rescorer
from services.scorer.scoring import AnomalyScorer, ScoredTransaction
from services.scorer.state import rebuild_missing_histories
from services.scorer.worker import ScoringWorker

log = logging.getLogger(__name__)
settings = get_settings()
GROUP_ID = settings.scorer_group_id
# How long after a transaction's time drift windows (current, reference and the step between
# comparisons) still hold it: a change to it makes those windows stale.
DRIFT_SPAN = timedelta(
    days=settings.drift_current_days + settings.drift_reference_days,
    hours=settings.drift_interval_hours,
)

SCORED = Counter("spendstream_scorer_transactions_scored_total", "Transactions scored and stored.")
ANOMALIES = Counter(
    "spendstream_scorer_anomalies_total",
    "Live anomalies found (each alerted), by severity.",
    ["severity"],
)
HISTORICAL_ANOMALIES = Counter(
    "spendstream_scorer_historical_anomalies_total",
    "Anomalies among transactions ingested days after they happened: stored, never alerted.",
)
DEAD_LETTERS = Counter(
    "spendstream_dlq_messages_total", "Messages sent to the dead-letter topic.", ["consumer_group"]
)
BATCH_SIZE = Histogram(
    "spendstream_scorer_batch_size",
    "Records per consumed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
)
BATCH_LATENCY = Histogram(
    "spendstream_scorer_batch_duration_seconds",
    "Time to score and persist one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SCORES = Histogram(
    "spendstream_scorer_score",
    "Distribution of ensemble anomaly scores.",
    buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999, 1.0),
)
END_TO_END = Histogram(
    "spendstream_scorer_end_to_end_seconds",
    "From ingest accepting a transaction to its score being committed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

broker = make_broker(settings, client_id="spendstream-scorer")
dlq_publisher = broker.publisher(
    settings.dlq_topic,
    title="transactions-dlq",
    description="Poison messages with the reason.",
    schema=DeadLetter,
)
drift_publisher = broker.publisher(
    settings.drift_topic,
    title="drift-events",
    description="A scope's spending crossed the drift threshold.",
    schema=DriftEvent,
)
alerts_publisher = broker.publisher(
    settings.alerts_topic,
    title="anomaly-alerts",
    description="One event per anomalous transaction, at least once, keyed by account.",
    schema=AnomalyAlert,
)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    configure_logging(settings.log_level, service="scorer", tracebacks=settings.log_tracebacks)
    pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
    scorer = AnomalyScorer(
        settings.anomaly_threshold,
        seed=settings.scorer_seed,
        max_accounts=settings.max_accounts_in_memory,
        window=settings.history_per_account,
        live_within=timedelta(hours=settings.live_alert_within_hours),
    )
    # Loaded now, not by the first uncategorized transaction: that batch would wait seconds.
    embedder = Embedder(pool, model=await asyncio.to_thread(load_model))
    categorizer = Categorizer(pool, embedder, settings)
    keeper = ModelKeeper(pool, scorer, settings, Rescorer(pool, scorer, publish_alerts))
    await keeper.refresh()
    watcher = DriftWatcher(pool, settings, lambda event: drift_publisher.publish(event))
    context.set_global("pool", pool)
    context.set_global("scorer", scorer)
    worker = ScoringWorker()
    context.set_global("worker", worker)
    inflight = InFlight()
    context.set_global("inflight", inflight)
    context.set_global("categorizer", categorizer)
    settle_startup_heap()
    try:
        async with running(
            keeper.run(), watcher.run(), categorizer.run(), watch_lag(settings, GROUP_ID)
        ):
            yield
    finally:
        await inflight.settle()  # normally done already, before the broker stopped
        keeper.close()
        worker.close()
        await pool.close()


async def publish_alerts(alerts: list[AnomalyAlert]) -> None:
    # Together, so the producer batches them into one request instead of one per alert.
    await asyncio.gather(
        *(alerts_publisher.publish(alert, key=alert.account_id.encode()) for alert in alerts)
    )


def alert_for(event: TransactionEvent, scored: ScoredTransaction) -> AnomalyAlert:
    return AnomalyAlert(
        alert_id=f"{event.user_id}:{event.transaction_id}",
        user_id=event.user_id,
        transaction_id=event.transaction_id,
        account_id=event.account_id,
        timestamp=event.timestamp,
        amount=event.amount,
        currency=event.currency,
        merchant=event.merchant,
        category=event.category,
        score=scored.score,
        severity=scored.severity or "low",
        detector_scores=scored.detector_scores,
        explanation=scored.explanation,
        model_version=scored.model_version,
        scored_at=datetime.now(UTC),
    )


async def categorize(
    categorizer: Categorizer, events: list[TransactionEvent]
) -> tuple[list[TransactionEvent], dict[tuple[str, str], Categorization]]:
    """Fill in missing categories; if that fails for a reason other than the database, score
    the transactions uncategorized rather than hold them back."""
    try:
        return await retry_transient(
            lambda: categorizer.apply(events),
            what="categorizing transactions",
            max_delay_s=settings.consumer_retry_max_seconds,
            give_up_after_s=settings.consumer_retry_give_up_seconds,
        )
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception:
        log.exception("auto-categorization failed; scoring %d transactions without it", len(events))
        return events, {}


@dataclass(frozen=True)
class Scored:
    """A transaction scored in this batch, waiting to be stored."""

    record: Any
    event: TransactionEvent  # with the category auto-categorization filled in, if it did
    result: ScoredTransaction
    categorization: Categorization | None


def key_of(event: TransactionEvent) -> tuple[str, str]:
    return event.user_id, event.transaction_id


@broker.subscriber(
    settings.transactions_topic,
    group_id=GROUP_ID,
    batch=True,
    max_records=settings.scorer_batch_size,
    batch_timeout_ms=100,
    auto_offset_reset="earliest",
    fetch_max_wait_ms=50,  # an idle partition answers a fetch after 50 ms, not the default 500
    ack_policy=AckPolicy.MANUAL,  # the store job commits exact offsets after the database
    listener=SettleBeforeRevoke(lambda: broker.context.get("inflight")),
    decoder=make_batch_decoder(GROUP_ID),
    title="score-transactions",
    description="Scores every transaction and stores it with its scores; commits after the "
    "database commit, so delivery is at-least-once and results exactly-once.",
)
async def score_transactions(
    batch: list[TransactionEvent | TransactionChange | CategoryRename | DeadLetter],
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
    scorer: Annotated[AnomalyScorer, Context("scorer")],
    categorizer: Annotated[Categorizer, Context("categorizer")],
    worker: Annotated[ScoringWorker, Context("worker")],
    inflight: Annotated[InFlight, Context("inflight")],
) -> None:
    """Score this batch while the previous one is being stored, then hand this one to a store
    job of its own (see services/scorer/inflight.py)."""
    started = time.perf_counter()
    BATCH_SIZE.observe(len(batch))
    consumer = cast(AIOKafkaConsumer, msg.consumer)
    records = msg.raw_message
    first = first_offsets(records)
    results: dict[tuple[str, str], Scored] = {}
    try:
        split = split_batch(records, batch)
        changes, dead = split.changes, list(split.dead)
        unseen, stored = await not_yet_scored(pool, inflight, split.deliveries)
        fresh = [d for d in unseen if not stored.known(d.event)]
        record_of = {key_of(d.event): d.record for d in fresh}

        async def score(events: list[TransactionEvent]) -> None:
            try:
                events, categorized = await categorize(categorizer, events)
                await retry_transient(
                    lambda: rebuild_missing_histories(
                        pool, scorer.features, events, settings.history_per_account
                    ),
                    what="rebuilding account histories",
                    max_delay_s=settings.consumer_retry_max_seconds,
                    give_up_after_s=settings.consumer_retry_give_up_seconds,
                )
                scores = await worker.score(scorer, events)
            except BaseException:
                forget(scorer, events)  # histories may hold part of them; rebuilt when needed
                raise
            for event, result in zip(events, scores, strict=True):
                key = key_of(event)
                results[key] = Scored(record_of[key], event, result, categorized.get(key))

        if fresh:
            dead += await process_isolating_poison(fresh, score, group=GROUP_ID)
    except BaseException:
        forget(scorer, [r.event for r in results.values()])
        rewind(consumer, first)
        raise
    previous = await inflight.wait()
    if previous is not None:
        # The batch before did not go cleanly: read it (if it is not committed) and this one
        # again, scored against histories rebuilt from what the database holds.
        for account in previous.accounts:
            scorer.features.forget(account)
        forget(scorer, [r.event for r in results.values()])
        rewind(consumer, first, *([] if previous.committed else [previous.first]))
        return
    redelivered = [
        (d.event, stored.scores[key_of(d.event)])
        for d in unseen
        if key_of(d.event) in stored.scores
    ]
    inflight.start(
        lambda job: store_batch(
            job,
            pool,
            consumer,
            next_offsets(records),
            Stored(results, redelivered, changes, dead),
            started,
        ),
        first=first,
        keys={key: s.event.revision for key, s in results.items()},
        accounts={(r.event.user_id, r.event.account_id) for r in results.values()},
    )


async def not_yet_scored(
    pool: asyncpg.Pool, inflight: InFlight, deliveries: list[Delivery]
) -> tuple[list[Delivery], store.StoredState]:
    """The deliveries not in the batch being stored (at their revision), and what the database
    holds of them: stored scores to re-alert from, and removals to skip."""
    storing = inflight.keys
    unseen = [d for d in deliveries if storing.get(key_of(d.event), 0) < d.event.revision]
    stored = await retry_transient(
        lambda: store.already_stored(pool, [d.event for d in unseen]),
        what="looking up stored transactions",
        max_delay_s=settings.consumer_retry_max_seconds,
        give_up_after_s=settings.consumer_retry_give_up_seconds,
    )
    return unseen, stored


def forget(scorer: AnomalyScorer, events: Iterable[TransactionEvent]) -> None:
    for event in events:
        scorer.features.forget((event.user_id, event.account_id))


@dataclass(frozen=True)
class Stored:
    """What a store job writes: the batch's scored transactions, the alerts of re-delivered ones,
    its changes (applied after the transactions, which they follow on the topic), its poison."""

    results: dict[tuple[str, str], Scored]
    redelivered: list[tuple[TransactionEvent, ScoredTransaction]]
    changes: list[ChangeDelivery]
    dead: list[DeadLetter]


async def store_batch(
    job: Job,
    pool: asyncpg.Pool,
    consumer: AIOKafkaConsumer,
    commit_to: Offsets,
    batch: Stored,
    started: float,
) -> None:
    """Store the scored batch (isolating rows the database rejects), apply its changes, publish
    its alerts and dead letters, then commit its offsets."""
    results, redelivered, dead = batch.results, batch.redelivered, batch.dead

    async def persist(events: list[TransactionEvent]) -> None:
        scored = [results[key_of(e)] for e in events]
        await retry_transient(
            lambda: store.persist_scored(
                pool,
                events,
                [s.result for s in scored],
                {key_of(s.event): s.categorization for s in scored if s.categorization},
                DRIFT_SPAN,
            ),
            what="persisting scored transactions",
            max_delay_s=settings.consumer_retry_max_seconds,
            give_up_after_s=settings.consumer_retry_give_up_seconds,
        )

    async def apply(changes: list[TransactionChange]) -> None:
        await retry_transient(
            lambda: store.apply_changes(pool, changes, DRIFT_SPAN),
            what="applying changes",
            max_delay_s=settings.consumer_retry_max_seconds,
            give_up_after_s=settings.consumer_retry_give_up_seconds,
        )

    rejected = await process_isolating_poison(
        [Delivery(s.record, s.event) for s in results.values()], persist, group=GROUP_ID
    )
    job.dirty = bool(rejected)
    if batch.changes:
        dead = [*dead, *await process_isolating_poison(batch.changes, apply, group=GROUP_ID)]
    rejected_at = {(letter.topic, letter.partition, letter.offset) for letter in rejected}
    now = time.time()
    alerts = []
    for s in results.values():
        if (s.record.topic, s.record.partition, s.record.offset) in rejected_at:
            continue
        END_TO_END.observe(max(0.0, now - s.event.ingested_at.timestamp()))
        SCORES.observe(s.result.score)
        if s.result.alerts:
            ANOMALIES.labels(s.result.severity).inc()
            alerts.append(alert_for(s.event, s.result))
        elif s.result.is_anomaly:
            HISTORICAL_ANOMALIES.inc()
    # A re-delivered anomaly's alert may not have gone out the first time.
    alerts += [alert_for(event, result) for event, result in redelivered if result.alerts]
    # Sent together, so the producer batches them into one request instead of one per alert.
    await asyncio.gather(
        *(alerts_publisher.publish(alert, key=alert.account_id.encode()) for alert in alerts),
        *(
            dlq_publisher.publish(letter, key=letter.key.encode() if letter.key else None)
            for letter in [*dead, *rejected]
        ),
    )
    DEAD_LETTERS.labels(GROUP_ID).inc(len(dead) + len(rejected))
    SCORED.inc(len(results) - len(rejected))
    await commit(consumer, commit_to)
    job.committed = True
    BATCH_LATENCY.observe(time.perf_counter() - started)


app = consumer_asgi_app(broker, lifespan=lifespan, settings=settings)


@app.on_shutdown
async def finish_storing() -> None:
    """Store and commit the batch in flight while the broker can still take its alerts."""
    inflight: InFlight | None = app.context.get("inflight")
    if inflight is not None:
        await inflight.settle()
