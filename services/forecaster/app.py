"""Forecaster: keeps daily spend per series from ``transactions.v1``, idempotently."""

from __future__ import annotations

from typing import Annotated, cast

import asyncpg
from aiokafka import AIOKafkaConsumer
from faststream import Context
from faststream.asgi import AsgiFastStream
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
    Retrying,
    process_isolating_poison,
    split_batch,
)
from services.core.kafka import make_broker
from services.core.offsets import KafkaOffsets, store_then_commit
from services.core.service import Started, consumer_app, transactions_subscriber
from services.core.settings import Settings, get_settings
from services.forecaster.budgets import BudgetWatcher
from services.forecaster.clustering import ClusterRefresher
from services.forecaster.refresher import ForecastRefresher
from services.forecaster.store import apply_to_daily_spend

AGGREGATED = Counter(
    "spendstream_forecaster_transactions_aggregated_total",
    "Transactions folded into daily spend (re-deliveries included, counted once in the table).",
)


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or get_settings()
    group_id = settings.forecast.group_id
    retry = Retrying(settings.consumers.retry_max_seconds, settings.consumers.retry_give_up_seconds)
    broker = make_broker(settings, client_id="spendstream-forecaster")
    forecasts_publisher = broker.publisher(
        settings.topics.forecasts,
        title="forecasts-updated",
        description="A forecast refresh finished; fetch GET /v1/forecasts.",
        schema=ForecastsUpdated,
    )
    budget_alerts_publisher = broker.publisher(
        settings.topics.budget_alerts,
        title="budget-alerts",
        description="A category reached 80% or 100% of its monthly budget, or is projected to "
        "end the month over it: once per user, category, month and kind.",
        schema=BudgetAlert,
    )
    dlq_publisher = broker.publisher(
        settings.topics.dlq,
        title="transactions-dlq",
        description="Transactions the forecaster could not process, with the reason.",
        schema=DeadLetter,
    )

    async def start(pool: asyncpg.Pool) -> Started:
        refresher = ForecastRefresher(
            pool, settings, lambda event: forecasts_publisher.publish(event)
        )
        clusters = ClusterRefresher(pool, Embedder(pool), settings)
        budgets = BudgetWatcher(
            pool,
            settings,
            lambda alert: budget_alerts_publisher.publish(alert, key=alert.user_id.encode()),
        )
        return Started(background=(refresher.run(), clusters.run(), budgets.run()))

    @transactions_subscriber(
        broker,
        settings,
        group_id=group_id,
        max_records=settings.forecast.batch_size,
        batch_timeout_ms=250,
        title="aggregate-daily-spend",
        description="Folds each transaction once into daily spend per user, account and "
        "category, and its revisions, edits and removals after it.",
    )
    async def aggregate_daily_spend(
        batch: list[TransactionEvent | TransactionChange | CategoryRename | DeadLetter],
        msg: KafkaMessage,
        pool: Annotated[asyncpg.Pool, Context("pool")],
    ) -> None:
        # Undecodable messages are the scorer's to dead-letter; a second copy would only add noise.
        deliveries = split_batch(msg.raw_message, batch).in_order()

        async def aggregate(items: list[TransactionEvent | TransactionChange]) -> None:
            await retry(lambda: apply_to_daily_spend(pool, items), "adding to daily spend")

        async def store() -> None:
            if deliveries:
                dead = await process_isolating_poison(deliveries, aggregate, group=group_id)
                for letter in dead:
                    key = letter.key.encode() if letter.key else None
                    await dlq_publisher.publish(letter, key=key)

        offsets = KafkaOffsets(cast(AIOKafkaConsumer, msg.consumer))
        await store_then_commit(offsets, msg.raw_message, store)
        AGGREGATED.inc(len(deliveries))

    return consumer_app(
        broker, settings=settings, service="forecaster", group_id=group_id, start=start
    )
