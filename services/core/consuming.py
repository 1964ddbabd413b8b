"""What every consumer of ``transactions.v1`` shares: decoding, dead letters and retrying writes."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg
from pydantic import ValidationError

from schemas import CategoryRename, DeadLetter, TransactionChange, TransactionEvent
from services.core.logging import ctx

log = logging.getLogger(__name__)

T = TypeVar("T")

# Failures worth waiting out: the database restarting or unreachable. Anything else is a bug in
# the data or the code, and retrying it forever would stall the partition.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def dead_letter(record: Any, error: str, group: str) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        value_b64=base64.b64encode(record.value or b"").decode(),
        error=error[:2000],
        consumer_group=group,
        failed_at=datetime.now(UTC),
    )


Change = TransactionChange | CategoryRename
Item = TransactionEvent | Change | DeadLetter
CHANGES: dict[bytes, type[Change]] = {
    b"transaction.change": TransactionChange,
    b"category.rename": CategoryRename,
}


def decode_record(value: bytes) -> TransactionEvent | Change:
    """A change as Spendstream writes one starts by naming itself; anything else is parsed as a
    transaction first (the bulk of the topic, parsed once), and as a change only if that fails.
    So no text inside a transaction (its metadata) can make it read as a change."""
    for name, model in CHANGES.items():
        if value.startswith(b'{"schema_version":1,"event":"' + name + b'"'):
            return model.model_validate_json(value)
    try:
        return TransactionEvent.model_validate_json(value)
    except ValidationError:
        for name, model in CHANGES.items():
            if b'"' + name + b'"' in value:
                return model.model_validate_json(value)
        raise


def decode_records(records: Sequence[Any], *, group: str) -> list[Item]:
    """Each raw Kafka record as a valid event or change, or as a dead letter naming what was
    wrong."""
    decoded: list[Item] = []
    for record in records:
        try:
            decoded.append(decode_record(record.value or b""))
        except ValidationError as exc:
            decoded.append(dead_letter(record, f"invalid event: {_describe(exc)}", group))
            log.warning(
                "dead-lettering an invalid message",
                extra=ctx(topic=record.topic, partition=record.partition, offset=record.offset),
            )
    return decoded


def make_batch_decoder(group: str) -> Callable[[Any], Awaitable[list[Item]]]:
    """A FastStream decoder that never raises, so one bad message cannot stall its partition."""

    async def decode(message: Any) -> list[Item]:
        records = message.raw_message
        return decode_records(records if isinstance(records, tuple) else (records,), group=group)

    return decode


@dataclass(frozen=True)
class Delivery:
    """A valid event together with the Kafka record it came in, for logs and dead letters."""

    record: Any
    event: TransactionEvent


@dataclass(frozen=True)
class ChangeDelivery:
    """A valid change together with the Kafka record it came in."""

    record: Any
    event: Change


@dataclass(frozen=True)
class Batch:
    """A batch split by kind. ``deliveries`` keeps one event per (user, transaction_id): the
    highest revision, the first of equals (an equal revision changes nothing). ``changes`` keep
    their order."""

    deliveries: list[Delivery]
    changes: list[ChangeDelivery]
    dead: list[DeadLetter]

    def in_order(self) -> list[Delivery | ChangeDelivery]:
        """Events and changes as the partitions hold them."""
        items: list[Delivery | ChangeDelivery] = [*self.deliveries, *self.changes]
        return sorted(items, key=lambda d: (d.record.topic, d.record.partition, d.record.offset))


def split_batch(records: Sequence[Any], decoded: Sequence[Item]) -> Batch:
    """Pair decoded items with their records, dropping repeats of a (user, transaction_id)."""
    latest: dict[tuple[str, str], Delivery] = {}
    changes: list[ChangeDelivery] = []
    dead: list[DeadLetter] = []
    for record, item in zip(records, decoded, strict=True):
        if isinstance(item, DeadLetter):
            dead.append(item)
        elif isinstance(item, TransactionChange | CategoryRename):
            changes.append(ChangeDelivery(record, item))
        else:
            key = (item.user_id, item.transaction_id)
            if key not in latest or item.revision > latest[key].event.revision:
                latest[key] = Delivery(record, item)
    return Batch(list(latest.values()), changes, dead)


async def process_isolating_poison(
    deliveries: Sequence[Delivery | ChangeDelivery],
    process: Callable[[list[Any]], Awaitable[None]],
    *,
    group: str,
) -> list[DeadLetter]:
    """Process the batch; if it fails for a non-transient reason, find the culprits by bisection
    and return them as dead letters, so one bad transaction never stalls its partition.

    Transient database errors propagate: the batch is retried, not dead-lettered.
    """
    try:
        await process([d.event for d in deliveries])
        return []
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:
        if len(deliveries) == 1:
            record = deliveries[0].record
            log.exception(
                "dead-lettering a transaction whose processing failed",
                extra=ctx(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    transaction_id=getattr(deliveries[0].event, "transaction_id", None),
                ),
            )
            return [dead_letter(record, f"processing failed: {exc!r}", group)]
    middle = len(deliveries) // 2
    return [
        *await process_isolating_poison(deliveries[:middle], process, group=group),
        *await process_isolating_poison(deliveries[middle:], process, group=group),
    ]


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_delay_s: float,
    give_up_after_s: float = 120.0,
) -> T:
    """Run ``operation``, waiting out transient database failures with capped exponential backoff.

    After ``give_up_after_s`` the error propagates; the consumer then rewinds and the batch is
    delivered again, so nothing is lost either way.
    """
    delay, waited = 0.2, 0.0
    while True:
        try:
            return await operation()
        except TRANSIENT_DB_ERRORS as exc:
            if waited >= give_up_after_s:
                raise
            pause = min(delay, max_delay_s) * (0.5 + random.random())
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, pause)
            await asyncio.sleep(pause)
            waited += pause
            delay *= 2


class Retry(Protocol):
    """Runs an operation, waiting out transient database failures (see retry_transient)."""

    async def __call__(self, operation: Callable[[], Awaitable[T]], what: str) -> T: ...


@dataclass(frozen=True)
class Retrying:
    """``retry_transient`` with a consumer's limits, as a port the pipelines are given."""

    max_delay_s: float
    give_up_after_s: float

    async def __call__(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await retry_transient(
            operation, what=what, max_delay_s=self.max_delay_s, give_up_after_s=self.give_up_after_s
        )
