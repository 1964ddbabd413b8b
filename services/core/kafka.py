"""Broker plumbing: topic layout, topic creation, and the producer and broker factories."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from services.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def topic_specs(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(settings.topics.transactions, settings.topics.partitions),
        TopicSpec(settings.topics.alerts, 3),
        TopicSpec(settings.topics.drift, 1),
        TopicSpec(settings.topics.forecasts, 1),
        TopicSpec(settings.topics.dlq, 1),
        TopicSpec(settings.topics.budget_alerts, 1),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; return the names created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_or_default,
        request_timeout_ms=settings.kafka.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        created = []
        for spec in missing:
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, 1)])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer that reports success only once every in-sync replica has the message."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_or_default,
        acks="all",
        enable_idempotence=settings.kafka.idempotent_producer,
        linger_ms=2,
        max_batch_size=1024 * 1024,
        request_timeout_ms=settings.kafka.request_timeout_ms,
        retry_backoff_ms=200,
    )


def make_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka.bootstrap_or_default,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka.idempotent_producer,
        # Joining a consumer group waits out the broker's rebalance delay, so consumers keep
        # aiokafka's generous default request timeout; only ingest's producer fails fast.
        log_level=logging.DEBUG,
    )
