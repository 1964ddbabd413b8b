"""The scorer's one-batch-in-flight bookkeeping: offsets, rewinds and what a failed job reports."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from services.core.offsets import (
    KafkaOffsets,
    first_offsets,
    next_offsets,
    rewind,
    store_then_commit,
)
from services.scorer.inflight import InFlight, Job

TOPIC = "transactions.v1"


def records(*positions: tuple[int, int]) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic=TOPIC, partition=p, offset=o) for p, o in positions]


def test_offsets_to_rewind_to_and_to_commit_per_partition() -> None:
    batch = records((0, 7), (1, 3), (0, 5), (0, 6), (1, 4))
    assert first_offsets(batch) == {TopicPartition(TOPIC, 0): 5, TopicPartition(TOPIC, 1): 3}
    assert next_offsets(batch) == {TopicPartition(TOPIC, 0): 8, TopicPartition(TOPIC, 1): 5}


def test_rewind_seeks_each_partition_to_the_earliest_position() -> None:
    seeks: dict[TopicPartition, int] = {}
    consumer = SimpleNamespace(seek=lambda partition, offset: seeks.__setitem__(partition, offset))
    previous = {TopicPartition(TOPIC, 0): 10, TopicPartition(TOPIC, 2): 4}
    current = {TopicPartition(TOPIC, 0): 12, TopicPartition(TOPIC, 1): 9}
    rewind(consumer, current, previous)
    assert seeks == {
        TopicPartition(TOPIC, 0): 10,
        TopicPartition(TOPIC, 1): 9,
        TopicPartition(TOPIC, 2): 4,
    }


async def _run(store_outcome: str) -> Job | None:
    inflight = InFlight()

    async def store(job: Job) -> None:
        await asyncio.sleep(0.01)
        if store_outcome == "fails":
            raise RuntimeError("database rejected the batch")
        job.dirty = store_outcome == "dirty"
        job.committed = True

    inflight.start(store, first={}, keys={("u", "t1"): 1}, accounts=[("u", "a")])
    assert inflight.keys == {("u", "t1"): 1}
    with pytest.raises(RuntimeError, match="already in flight"):
        inflight.start(store, first={}, keys={}, accounts=[])
    outcome = await inflight.wait()
    assert inflight.keys == {}
    return outcome


async def test_a_clean_job_reports_nothing_a_failed_or_dirty_one_reports_itself() -> None:
    assert await _run("commits") is None
    failed = await _run("fails")
    assert failed is not None and not failed.committed and failed.accounts == {("u", "a")}
    dirty = await _run("dirty")
    assert dirty is not None and dirty.committed and dirty.dirty


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


async def test_a_failed_store_rewinds_every_partition_and_commits_nothing() -> None:
    """The forecaster's old nack sought back only the first record's partition, and the next
    success committed every consumed position, skipping the others' records."""
    consumer = FakeConsumer()
    batch = records((2, 40), (0, 7), (5, 11), (0, 8), (2, 41))

    async def outage() -> None:
        raise ConnectionRefusedError("PostgreSQL is down")

    with pytest.raises(ConnectionRefusedError):
        await store_then_commit(KafkaOffsets(consumer), batch, outage)  # type: ignore[arg-type]
    assert consumer.seeks == {
        TopicPartition(TOPIC, 0): 7,
        TopicPartition(TOPIC, 2): 40,
        TopicPartition(TOPIC, 5): 11,
    }
    assert consumer.commits == []


async def test_a_stored_batch_commits_exactly_its_own_offsets() -> None:
    consumer = FakeConsumer()
    stored: list[bool] = []

    async def store() -> None:
        stored.append(True)

    offsets = KafkaOffsets(consumer)  # type: ignore[arg-type]
    await store_then_commit(offsets, records((1, 3), (4, 9), (1, 4)), store)
    assert stored == [True] and consumer.seeks == {}
    assert consumer.commits == [{TopicPartition(TOPIC, 1): 5, TopicPartition(TOPIC, 4): 10}]
