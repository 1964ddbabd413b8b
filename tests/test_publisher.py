"""A broker that fails mid-batch: ingest tells the client which transactions it acknowledged."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError

from services.core.publisher import BrokerUnavailable, TransactionPublisher
from services.core.settings import Settings


class DyingBroker:
    """Acknowledges the first ``survives`` sends, fails the next, never answers the rest."""

    def __init__(self, survives: int):
        self.survives = survives
        self.futures: list[asyncio.Future[object]] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: object) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if len(self.futures) < self.survives:
            future.set_result("acknowledged")
        elif len(self.futures) == self.survives:
            future.set_exception(KafkaTimeoutError())
        self.futures.append(future)
        return future


@pytest.mark.parametrize("survives", [0, 3, 9])
async def test_a_broker_dying_mid_batch_is_reported_per_item(survives: int) -> None:
    publisher = TransactionPublisher(Settings(kafka_request_timeout_ms=500))
    broker = DyingBroker(survives)
    publisher._producer = broker  # type: ignore[assignment]
    messages = [(b"acct", f'{{"n": {i}}}'.encode()) for i in range(10)]
    with pytest.raises(BrokerUnavailable) as failed:
        await publisher.publish(messages)
    assert failed.value.acknowledged == list(range(survives)), "acknowledged ones are named"
