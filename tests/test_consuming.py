from dataclasses import dataclass

import orjson
import pytest

from schemas import DeadLetter, TransactionEvent
from services.core.consuming import (
    decode_records,
    process_isolating_poison,
    retry_transient,
    split_batch,
)


@dataclass
class Record:
    value: bytes
    offset: int
    key: bytes | None = b"acct"
    topic: str = "transactions.v1"
    partition: int = 0


def event_bytes(transaction_id: str, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": transaction_id,
            "account_id": "acct",
            "timestamp": "2026-01-01T10:00:00+00:00",
            "amount": "10.00",
            "user_id": "u1",
            "ingested_at": "2026-01-01T10:00:01+00:00",
            **extra,
        }
    )


def test_poison_becomes_dead_letters_with_original_bytes_and_position() -> None:
    records = [
        Record(event_bytes("a"), 0),
        Record(b"\xff not json", 1),
        Record(event_bytes("b", amount="-1"), 2),
        Record(event_bytes("a"), 3),
    ]
    decoded = decode_records(records, group="scorer")
    split = split_batch(records, decoded)
    deliveries, dead = split.deliveries, split.dead
    assert [d.event.transaction_id for d in deliveries] == ["a"]  # the repeat of "a" is dropped
    assert [(d.offset, d.partition, d.topic) for d in dead] == [
        (1, 0, "transactions.v1"),
        (2, 0, "transactions.v1"),
    ]
    assert "amount" in dead[1].error
    import base64

    assert base64.b64decode(dead[0].value_b64) == b"\xff not json"


async def test_processing_failures_are_isolated_by_bisection() -> None:
    records = [Record(event_bytes(f"t{i}"), i) for i in range(9)]
    deliveries = split_batch(records, decode_records(records, group="g")).deliveries
    processed: list[str] = []

    async def process(events: list[TransactionEvent]) -> None:
        if any(e.transaction_id in {"t3", "t7"} for e in events):
            raise ValueError("cannot handle this one")
        processed.extend(e.transaction_id for e in events)

    dead = await process_isolating_poison(deliveries, process, group="g")
    assert sorted(d.offset for d in dead) == [3, 7]
    assert all("cannot handle" in d.error for d in dead)
    assert sorted(processed) == sorted(f"t{i}" for i in range(9) if i not in (3, 7))
    assert isinstance(dead[0], DeadLetter)


async def test_transient_errors_are_retried_then_succeed() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionRefusedError("database restarting")
        return "done"

    assert await retry_transient(flaky, what="test", max_delay_s=0.01) == "done"
    assert attempts == 3


async def test_transient_errors_give_up_eventually() -> None:
    async def down() -> None:
        raise ConnectionRefusedError("still down")

    with pytest.raises(ConnectionRefusedError):
        await retry_transient(down, what="test", max_delay_s=0.01, give_up_after_s=0.05)
