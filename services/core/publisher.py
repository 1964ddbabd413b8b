"""Publishes on ``transactions.v1`` (transactions and changes to them); success means the broker
acknowledged every message. Ingest and the query API both publish there."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Histogram

from services.core.kafka import make_producer
from services.core.settings import Settings

log = logging.getLogger(__name__)

JSON_HEADERS = [("content-type", b"application/json")]

PRODUCE_LATENCY = Histogram(
    "spendstream_produce_duration_seconds",
    "Time from the first send to the broker's acknowledgement of a whole request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


Message = tuple[bytes, bytes]  # key (the account, so each account stays in order), value


class BrokerUnavailable(Exception):
    """The broker did not acknowledge every message; the client should retry the whole request
    later. ``acknowledged`` holds the indexes of the messages it did acknowledge before failing:
    those are accepted and will be stored. The rest are unconfirmed: they may or may not arrive.
    Resending the whole request is safe either way, since transaction ids make writes
    idempotent, so a client is never told "nothing was accepted" about something it will see."""

    def __init__(self, message: str, acknowledged: Sequence[int] = ()):
        super().__init__(message)
        self.acknowledged = list(acknowledged)


def acknowledged_indexes(futures: Sequence[asyncio.Future[object]]) -> list[int]:
    """Which sends the broker acknowledged. The others are unconfirmed: not known lost, since
    a message already handed to the producer may still reach the broker after the answer."""
    return [
        index
        for index, future in enumerate(futures)
        if future.done() and not future.cancelled() and future.exception() is None
    ]


class TransactionPublisher:
    """Owns the producer, started lazily so ingest comes up (answering 503) without a broker."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._timeout_s = settings.kafka.request_timeout_ms / 1000 * 2

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self._settings)
                try:
                    await asyncio.wait_for(producer.start(), self._timeout_s)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise BrokerUnavailable(f"cannot reach the broker: {exc!r}") from None
                self._producer = producer
            return self._producer

    async def try_connect(self) -> bool:
        try:
            await self._started()
        except BrokerUnavailable:
            return False
        return True

    async def publish(self, messages: Sequence[Message]) -> None:
        producer = await self._started()
        topic = self._settings.topics.transactions
        started = time.perf_counter()
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                for key, value in messages:
                    futures.append(
                        await producer.send(topic, value=value, key=key, headers=JSON_HEADERS)
                    )
                await asyncio.gather(*futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            acknowledged = acknowledged_indexes(futures)
            log.warning(
                "broker acknowledged %d of %d events: %r", len(acknowledged), len(messages), exc
            )
            raise BrokerUnavailable(
                "the broker did not acknowledge every transaction", acknowledged
            ) from None
        PRODUCE_LATENCY.observe(time.perf_counter() - started)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
