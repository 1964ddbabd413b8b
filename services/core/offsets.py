"""Exact offset control for batch consumers: commit what is stored, rewind what is not.

A consumer that has read a batch has moved every partition in it past the batch. If storing it
fails, each of those partitions must go back to the batch's first offset in it, not only the
first record's partition; and a commit names exact positions, never "everything read so far".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]


def first_offsets(records: Iterable[Any]) -> Offsets:
    """The earliest offset of each partition in a batch: where to rewind to."""
    earliest: Offsets = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        earliest[partition] = min(record.offset, earliest.get(partition, record.offset))
    return earliest


def next_offsets(records: Iterable[Any]) -> Offsets:
    """The offset after the last record of each partition in a batch: what to commit."""
    latest: Offsets = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        latest[partition] = max(record.offset + 1, latest.get(partition, 0))
    return latest


def rewind(consumer: AIOKafkaConsumer, *positions: Offsets) -> None:
    """Seek each partition back to the earliest of the given positions."""
    target: Offsets = {}
    for offsets in positions:
        for partition, offset in offsets.items():
            target[partition] = min(offset, target.get(partition, offset))
    for partition, offset in target.items():
        consumer.seek(partition, offset)


async def commit(consumer: AIOKafkaConsumer, offsets: Offsets) -> None:
    try:
        await consumer.commit(offsets)
    except Exception:
        # The partitions moved to another consumer (or this one is stopping). The rows are
        # committed in PostgreSQL, so whoever reads them again finds them stored and skips them.
        log.warning("could not commit offsets %s; they will be read again", offsets, exc_info=True)


class OffsetControl(Protocol):
    """The one way a consumer moves its offsets. FastStream's own acknowledgement is off
    (``AckPolicy.MANUAL``, and nothing calls ``ack``), so what this port does is all there is."""

    def rewind(self, *positions: Offsets) -> None:
        """Read again from the earliest of the given positions of each partition."""
        ...

    async def commit(self, offsets: Offsets) -> None:
        """Commit exactly these positions; a failure to commit is logged, not raised."""
        ...


@dataclass(frozen=True)
class KafkaOffsets:
    """Offset control over the consumer that read the batch."""

    consumer: AIOKafkaConsumer

    def rewind(self, *positions: Offsets) -> None:
        rewind(self.consumer, *positions)

    async def commit(self, offsets: Offsets) -> None:
        await commit(self.consumer, offsets)


async def store_then_commit(
    offsets: OffsetControl, records: Iterable[Any], store: Callable[[], Awaitable[None]]
) -> None:
    """Store a batch, then commit exactly its offsets. If storing fails, every partition of the
    batch goes back to where the batch began in it, and the error propagates: the batch is read
    again, and nothing read but not stored is ever committed past."""
    batch = list(records)
    try:
        await store()
    except BaseException:
        offsets.rewind(first_offsets(batch))
        raise
    await offsets.commit(next_offsets(batch))
