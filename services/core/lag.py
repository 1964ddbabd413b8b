"""Consumer lag per partition, from the broker's view: end offset minus the group's commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from services.core.settings import Settings

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "spendstream_consumer_lag_messages",
    "Messages not yet committed by the consumer group, per partition.",
    ["group", "partition"],
)


def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, as far as the consumer's metadata knows them."""
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def measure_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topic: str
) -> dict[int, int]:
    partitions = topic_partitions(consumer, topic)
    if not partitions:
        return {}
    ends = await consumer.end_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    lag = {}
    for tp in partitions:
        meta = committed.get(tp)
        position = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag[tp.partition] = max(0, ends[tp] - position)
    return lag


async def watch_lag(settings: Settings, group: str, interval_s: float = 15.0) -> None:
    """Publish the group's lag on ``transactions.v1`` until cancelled."""
    bootstrap = settings.kafka.bootstrap_or_default
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
        while True:
            try:
                await consumer.topics()  # refresh metadata
                for partition, lag in (
                    await measure_lag(admin, consumer, group, settings.topics.transactions)
                ).items():
                    CONSUMER_LAG.labels(group, str(partition)).set(lag)
            except Exception as exc:  # lag is best effort; never take the consumer down for it
                log.debug("measuring consumer lag failed: %r", exc)
            await asyncio.sleep(interval_s)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()
