"""Scorer: reads transactions in batches, scores them, persists, then lets the offsets commit."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from faststream import AckPolicy, Context, ContextRepo
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram

from schemas import AnomalyAlert, DeadLetter, DriftEvent, TransactionEvent
from services.core.consuming import (
    TRANSIENT_DB_ERRORS,
    make_batch_decoder,
    process_isolating_poison,
    retry_transient,
    split_batch,
)
from services.core.db import create_pool
from services.core.embeddings import Embedder
from services.core.kafka import make_broker
from services.core.lag import watch_lag
from services.core.logging import configure_logging
from services.core.service import consumer_asgi_app
from services.core.settings import get_settings
from services.core.tasks import running
from services.scorer import store
from services.scorer.categorize import Categorizer
from services.scorer.categorize_types import Categorization
from services.scorer.drift_watcher import DriftWatcher
from services.scorer.registry import ModelKeeper
from services.scorer.scoring import AnomalyScorer, ScoredTransaction
from services.scorer.state import rebuild_missing_histories
from services.scorer.worker import ScoringWorker

GROUP_ID = "scorer"
log = logging.getLogger(__name__)
settings = get_settings()

SCORED = Counter("spendstream_scorer_transactions_scored_total", "Transactions scored and stored.")
ANOMALIES = Counter(
    "spendstream_scorer_anomalies_total", "Anomalies found, by severity.", ["severity"]
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
    configure_logging(settings.log_level, service="scorer")
    pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
    scorer = AnomalyScorer(
        settings.anomaly_threshold,
        seed=settings.scorer_seed,
        max_accounts=settings.max_accounts_in_memory,
        window=settings.history_per_account,
    )
    categorizer = Categorizer(pool, Embedder(pool), settings)
    keeper = ModelKeeper(pool, scorer, settings)
    await keeper.refresh()
    watcher = DriftWatcher(pool, settings, lambda event: drift_publisher.publish(event))
    context.set_global("pool", pool)
    context.set_global("scorer", scorer)
    worker = ScoringWorker()
    context.set_global("worker", worker)
    context.set_global("categorizer", categorizer)
    try:
        async with running(
            keeper.run(), watcher.run(), categorizer.run(), watch_lag(settings, GROUP_ID)
        ):
            yield
    finally:
        keeper.close()
        worker.close()
        await pool.close()


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
        )
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception:
        log.exception("auto-categorization failed; scoring %d transactions without it", len(events))
        return events, {}


@broker.subscriber(
    settings.transactions_topic,
    group_id=GROUP_ID,
    batch=True,
    max_records=settings.scorer_batch_size,
    batch_timeout_ms=100,
    auto_offset_reset="earliest",
    ack_policy=AckPolicy.NACK_ON_ERROR,
    decoder=make_batch_decoder(GROUP_ID),
    title="score-transactions",
    description="Scores every transaction and stores it with its scores; commits after the "
    "database commit, so delivery is at-least-once and results exactly-once.",
)
async def score_transactions(
    batch: list[TransactionEvent | DeadLetter],
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
    scorer: Annotated[AnomalyScorer, Context("scorer")],
    categorizer: Annotated[Categorizer, Context("categorizer")],
    worker: Annotated[ScoringWorker, Context("worker")],
) -> None:
    BATCH_SIZE.observe(len(batch))
    with BATCH_LATENCY.time():
        deliveries, dead = split_batch(msg.raw_message, batch)
        stored = await retry_transient(
            lambda: store.already_stored(pool, [d.event for d in deliveries]),
            what="looking up stored transactions",
            max_delay_s=settings.consumer_retry_max_seconds,
        )
        fresh = [d for d in deliveries if (d.event.user_id, d.event.transaction_id) not in stored]
        results: dict[tuple[str, str], tuple[TransactionEvent, ScoredTransaction]] = {}

        async def score_and_persist(events: list[TransactionEvent]) -> None:
            events, categorized = await categorize(categorizer, events)
            await retry_transient(
                lambda: rebuild_missing_histories(
                    pool, scorer.features, events, settings.history_per_account
                ),
                what="rebuilding account histories",
                max_delay_s=settings.consumer_retry_max_seconds,
            )
            scores = await worker.score(scorer, events)
            try:
                await retry_transient(
                    lambda: store.persist_scored(pool, events, scores, categorized),
                    what="persisting scored transactions",
                    max_delay_s=settings.consumer_retry_max_seconds,
                )
            except BaseException:
                # The in-memory histories now hold transactions that were not stored; drop
                # them, so they are rebuilt from the database when the batch comes back.
                for event in events:
                    scorer.features.forget((event.user_id, event.account_id))
                raise
            for event, scored in zip(events, scores, strict=True):
                results[(event.user_id, event.transaction_id)] = (event, scored)

        if fresh:
            dead += await process_isolating_poison(fresh, score_and_persist, group=GROUP_ID)
        now = time.time()
        for event, scored in results.values():
            END_TO_END.observe(max(0.0, now - event.ingested_at.timestamp()))
            SCORES.observe(scored.score)
            if scored.is_anomaly:
                ANOMALIES.labels(scored.severity).inc()
                await alerts_publisher.publish(
                    alert_for(event, scored), key=event.account_id.encode()
                )
        for delivery in deliveries:  # re-delivered anomalies: the alert may not have gone out
            row = stored.get((delivery.event.user_id, delivery.event.transaction_id))
            if row is not None and row["is_anomaly"]:
                await alerts_publisher.publish(
                    alert_for(
                        delivery.event,
                        ScoredTransaction(
                            score=row["score"],
                            is_anomaly=True,
                            severity=row["severity"],
                            model_version=row["model_version"],
                            detector_scores=row["detector_scores"],
                            explanation=row["explanation"],
                            features=[],
                        ),
                    ),
                    key=delivery.event.account_id.encode(),
                )
        for letter in dead:
            await dlq_publisher.publish(letter, key=letter.key.encode() if letter.key else None)
        DEAD_LETTERS.labels(GROUP_ID).inc(len(dead))
        SCORED.inc(len(results))


app = consumer_asgi_app(broker, lifespan=lifespan)
