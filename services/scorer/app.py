"""Scorer: reads transactions in batches, scores them, persists, then lets the offsets commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from faststream import AckPolicy, Context, ContextRepo
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram

from schemas import DeadLetter, TransactionEvent
from services.core.consuming import (
    make_batch_decoder,
    process_isolating_poison,
    retry_transient,
    split_batch,
)
from services.core.db import create_pool
from services.core.kafka import make_broker
from services.core.service import consumer_asgi_app
from services.core.settings import get_settings
from services.scorer.scoring import BaselineScorer
from services.scorer.store import persist_scored

GROUP_ID = "scorer"
log = logging.getLogger(__name__)
settings = get_settings()

SCORED = Counter("spendstream_scorer_transactions_scored_total", "Transactions scored and stored.")
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

broker = make_broker(settings, client_id="spendstream-scorer")
dlq_publisher = broker.publisher(
    settings.dlq_topic,
    title="transactions-dlq",
    description="Poison messages with the reason.",
    schema=DeadLetter,
)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
    context.set_global("pool", pool)
    context.set_global("scorer", BaselineScorer(settings.anomaly_threshold))
    try:
        yield
    finally:
        await pool.close()


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
    scorer: Annotated[BaselineScorer, Context("scorer")],
) -> None:
    BATCH_SIZE.observe(len(batch))
    with BATCH_LATENCY.time():
        deliveries, dead = split_batch(msg.raw_message, batch)

        async def score_and_persist(events: list[TransactionEvent]) -> None:
            scores = await asyncio.to_thread(scorer.score_batch, events)
            await retry_transient(
                lambda: persist_scored(pool, events, scores),
                what="persisting scored transactions",
                max_delay_s=settings.consumer_retry_max_seconds,
            )

        if deliveries:
            dead += await process_isolating_poison(deliveries, score_and_persist, group=GROUP_ID)
        for letter in dead:
            await dlq_publisher.publish(letter, key=letter.key.encode() if letter.key else None)
        DEAD_LETTERS.labels(GROUP_ID).inc(len(dead))
        SCORED.inc(len(deliveries))


app = consumer_asgi_app(broker, lifespan=lifespan)
