"""Scorer: reads transactions in batches, scores them, persists, then lets the offsets commit.

This module only wires: the batch's work is ``pipeline.ScoringPipeline``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Annotated, cast

import asyncpg
from aiokafka import AIOKafkaConsumer
from faststream import Context
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from schemas import (
    AnomalyAlert,
    CategoryRename,
    DeadLetter,
    DriftEvent,
    TransactionChange,
    TransactionEvent,
)
from services.analytics.embeddings import Embedder, load_model
from services.core.consuming import Retrying
from services.core.kafka import make_broker
from services.core.offsets import KafkaOffsets
from services.core.service import Started, consumer_app, transactions_subscriber
from services.core.settings import Settings, get_settings
from services.scorer.backlog import Backlog
from services.scorer.categorize import Categorizer
from services.scorer.drift_watcher import DriftWatcher
from services.scorer.inflight import InFlight, SettleBeforeRevoke
from services.scorer.pipeline import ScoringPipeline
from services.scorer.registry import ModelKeeper
from services.scorer.rescoring import Rescorer
from services.scorer.scoring import AnomalyScorer
from services.scorer.state import LiveScoring
from services.scorer.store import PostgresScoreStore
from services.scorer.worker import ScoringWorker


class BrokerOutbox:
    """The pipeline's outbox: alerts keyed by account, and dead letters, sent together so the
    producer batches them into one request instead of one per message."""

    def __init__(self, broker: KafkaBroker, settings: Settings):
        self._alerts = broker.publisher(
            settings.topics.alerts,
            title="anomaly-alerts",
            description="One event per anomalous transaction, at least once, keyed by account.",
            schema=AnomalyAlert,
        )
        self._dead = broker.publisher(
            settings.topics.dlq,
            title="transactions-dlq",
            description="Poison messages with the reason.",
            schema=DeadLetter,
        )

    async def send(self, alerts: Sequence[AnomalyAlert], letters: Sequence[DeadLetter]) -> None:
        await asyncio.gather(
            *(self._alerts.publish(alert, key=alert.account_id.encode()) for alert in alerts),
            *(
                self._dead.publish(letter, key=letter.key.encode() if letter.key else None)
                for letter in letters
            ),
        )

    async def send_alerts(self, alerts: Sequence[AnomalyAlert]) -> None:
        await self.send(alerts, [])


async def start_scoring(
    pool: asyncpg.Pool,
    settings: Settings,
    outbox: BrokerOutbox,
    publish_drift: Callable[[DriftEvent], Awaitable[None]],
    inflight: InFlight,
) -> Started:
    """The scorer's parts over the database pool: models, categorizer, drift watcher, and the
    pipeline the handler hands batches to."""
    scorer = AnomalyScorer(
        settings.scorer.anomaly_threshold,
        seed=settings.scorer.seed,
        max_accounts=settings.scorer.max_accounts_in_memory,
        window=settings.scorer.history_per_account,
        live_within=timedelta(hours=settings.scorer.live_alert_within_hours),
    )
    # Loaded now, not by the first uncategorized transaction: that batch would wait seconds.
    embedder = Embedder(pool, model=await asyncio.to_thread(load_model))
    categorizer = Categorizer(pool, embedder, settings)
    keeper = ModelKeeper(pool, scorer, settings, Rescorer(pool, scorer, outbox.send_alerts))
    await keeper.refresh()
    backlog = Backlog(settings.scorer.batch_size)
    watcher = DriftWatcher(pool, settings, publish_drift, backlog)
    worker = ScoringWorker()
    pipeline = ScoringPipeline(
        categorizer=categorizer,
        scoring=LiveScoring(pool, scorer, worker, settings.scorer.history_per_account),
        store=PostgresScoreStore(pool, settings.drift.span),
        outbox=outbox,
        retry=Retrying(
            settings.consumers.retry_max_seconds, settings.consumers.retry_give_up_seconds
        ),
        group=settings.scorer.group_id,
        inflight=inflight,
        backlog=backlog,
    )

    async def close() -> None:
        await inflight.settle()  # normally done already, before the broker stopped
        keeper.close()
        worker.close()

    return Started(
        context={"pipeline": pipeline},
        background=(keeper.run(), watcher.run(), categorizer.run()),
        close=close,
    )


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or get_settings()
    group_id = settings.scorer.group_id
    broker = make_broker(settings, client_id="spendstream-scorer")
    outbox = BrokerOutbox(broker, settings)
    drift_publisher = broker.publisher(
        settings.topics.drift,
        title="drift-events",
        description="A scope's spending crossed the drift threshold.",
        schema=DriftEvent,
    )
    inflight = InFlight()  # the batch being stored; shared with the rebalance listener

    @transactions_subscriber(
        broker,
        settings,
        group_id=group_id,
        max_records=settings.scorer.batch_size,
        batch_timeout_ms=100,
        fetch_max_wait_ms=50,  # an idle partition answers a fetch after 50 ms, not 500
        listener=SettleBeforeRevoke(lambda: inflight),
        title="score-transactions",
        description="Scores every transaction and stores it with its scores; commits after the "
        "database commit, so delivery is at-least-once and results exactly-once.",
    )
    async def score_transactions(
        batch: list[TransactionEvent | TransactionChange | CategoryRename | DeadLetter],
        msg: KafkaMessage,
        pipeline: Annotated[ScoringPipeline, Context("pipeline")],
    ) -> None:
        offsets = KafkaOffsets(cast(AIOKafkaConsumer, msg.consumer))
        await pipeline.handle(msg.raw_message, batch, offsets)

    app = consumer_app(
        broker,
        settings=settings,
        service="scorer",
        group_id=group_id,
        start=lambda pool: start_scoring(
            pool, settings, outbox, lambda event: drift_publisher.publish(event), inflight
        ),
    )

    @app.on_shutdown
    async def finish_storing() -> None:
        """Store and commit the batch in flight while the broker can still take its alerts."""
        await inflight.settle()

    return app
