"""Forecaster: keeps daily spend per series from ``transactions.v1``, idempotently."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, cast

import asyncpg
from aiokafka import AIOKafkaConsumer
from faststream import AckPolicy, Context, ContextRepo
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from schemas import (
    BudgetAlert,
    CategoryRename,
    DeadLetter,
    ForecastsUpdated,
    TransactionChange,
    TransactionEvent,
)
from services.analytics.embeddings import Embedder
from services.core.consuming import (
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
from services.core.offsets import store_then_commit
from services.core.service import consumer_asgi_app
from services.core.settings import get_settings
from services.core.tasks import running
from services.forecaster.budgets import BudgetWatcher
from services.forecaster.clustering import ClusterRefresher
from services.forecaster.refresher import ForecastRefresher
from services.forecaster.store import apply_to_daily_spend

log = logging.getLogger(__name__)
settings = get_settings()
GROUP_ID = settings.forecaster_group_id

AGGREGATED = Counter(
    "spendstream_forecaster_transactions_aggregated_total",
    "Transactions folded into daily spend (re-deliveries included, counted once in the table).",
)

broker = make_broker(settings, client_id="spendstream-forecaster")
forecasts_publisher = broker.publisher(
    settings.forecasts_topic,
    title="forecasts-updated",
    description="A forecast refresh finished; fetch GET /v1/forecasts.",
    schema=ForecastsUpdated,
)
budget_alerts_publisher = broker.publisher(
    settings.budget_alerts_topic,
    title="budget-alerts",
    description="A category reached 80% or 100% of its monthly budget, or is projected to end "
    "the month over it: once per user, category, month and kind.",
    schema=BudgetAlert,
)
dlq_publisher = broker.publisher(
    settings.dlq_topic,
    title="transactions-dlq",
    description="Transactions the forecaster could not process, with the reason.",
    schema=DeadLetter,
)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    configure_logging(settings.log_level, service="forecaster", tracebacks=settings.log_tracebacks)
    pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
    context.set_global("pool", pool)
    refresher = ForecastRefresher(pool, settings, lambda event: forecasts_publisher.publish(event))
    clusters = ClusterRefresher(pool, Embedder(pool), settings)
    budgets = BudgetWatcher(
        pool,
        settings,
        lambda alert: budget_alerts_publisher.publish(alert, key=alert.user_id.encode()),
    )
    settle_startup_heap()
    try:
        async with running(
            refresher.run(), clusters.run(), budgets.run(), watch_lag(settings, GROUP_ID)
        ):
            yield
    finally:
        await pool.close()


@broker.subscriber(
    settings.transactions_topic,
    group_id=GROUP_ID,
    batch=True,
    max_records=settings.forecaster_batch_size,
    batch_timeout_ms=250,
    auto_offset_reset="earliest",
    # Exact offsets after the database commit; on failure every partition of the batch rewinds.
    # (NACK_ON_ERROR sought back only the first record's partition, and the next ack committed
    # all consumed positions: an outage longer than the retry budget skipped the others.)
    ack_policy=AckPolicy.MANUAL,
    decoder=make_batch_decoder(GROUP_ID),
    title="aggregate-daily-spend",
    description="Folds each transaction once into daily spend per user, account and category, "
    "and its revisions, edits and removals after it.",
)
async def aggregate_daily_spend(
    batch: list[TransactionEvent | TransactionChange | CategoryRename | DeadLetter],
    msg: KafkaMessage,
    pool: Annotated[asyncpg.Pool, Context("pool")],
) -> None:
    # Undecodable messages are the scorer's to dead-letter; a second copy would only add noise.
    deliveries = split_batch(msg.raw_message, batch).in_order()

    async def aggregate(items: list[TransactionEvent | TransactionChange]) -> None:
        await retry_transient(
            lambda: apply_to_daily_spend(pool, items),
            what="adding to daily spend",
            max_delay_s=settings.consumer_retry_max_seconds,
            give_up_after_s=settings.consumer_retry_give_up_seconds,
        )

    async def store() -> None:
        if deliveries:
            dead = await process_isolating_poison(deliveries, aggregate, group=GROUP_ID)
            for letter in dead:
                await dlq_publisher.publish(letter, key=letter.key.encode() if letter.key else None)

    await store_then_commit(cast(AIOKafkaConsumer, msg.consumer), msg.raw_message, store)
    AGGREGATED.inc(len(deliveries))


app = consumer_asgi_app(broker, lifespan=lifespan, settings=settings)
