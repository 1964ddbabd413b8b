"""One batch being stored while the next one is scored.

The scorer's two costs sit on different cores: scoring in this process, storing mostly in
PostgreSQL. Storing batch N while batch N+1 is scored keeps both busy (what it bought is in
bench/results/history.json). Delivery stays at-least-once and results
exactly-once: a batch's offsets are committed by its store job, after its database commit, at
exact positions (never "everything consumed so far", which would include the batch being
scored), and a job that fails rewinds the consumer to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from services.core.offsets import Offsets

log = logging.getLogger(__name__)

Account = tuple[str, str]


@dataclass
class Job:
    first: Offsets
    keys: Mapping[tuple[str, str], int]  # (user_id, transaction_id): the revision being stored
    accounts: frozenset[Account]
    committed: bool = False  # stored, and its offsets handed to Kafka
    dirty: bool = False  # some rows were dead-lettered after scoring: histories hold them
    task: asyncio.Task[None] | None = None


@dataclass
class InFlight:
    """At most one store job at a time, and what the next batch must know about it."""

    job: Job | None = None

    @property
    def keys(self) -> Mapping[tuple[str, str], int]:
        """(user_id, transaction_id) of the batch being stored (scored, not yet committed), with
        the revision of each."""
        return self.job.keys if self.job is not None else {}

    def start(
        self,
        store: Callable[[Job], Coroutine[Any, Any, None]],
        *,
        first: Offsets,
        keys: Mapping[tuple[str, str], int],
        accounts: Iterable[Account],
    ) -> None:
        if self.job is not None:
            raise RuntimeError("a store job is already in flight; wait for it first")
        job = Job(first, dict(keys), frozenset(accounts))
        job.task = asyncio.create_task(store(job))
        self.job = job

    async def wait(self) -> Job | None:
        """Wait for the job in flight. Returns it if it did not go cleanly (not committed, or
        rows dead-lettered after scoring), so the caller can read again what needs it."""
        job, self.job = self.job, None
        if job is None or job.task is None:
            return None
        try:
            await asyncio.shield(job.task)
        except asyncio.CancelledError:
            if not job.task.done():
                self.job = job
                raise  # this handler is being cancelled, not the job
            return job
        except Exception:
            log.exception("storing a scored batch failed; reading it again")
            return job
        return job if job.dirty or not job.committed else None

    async def settle(self, timeout_s: float = 30.0) -> None:
        """Let the job in flight finish (partitions revoked, or shutting down). After
        ``timeout_s`` it goes on without it: its batch is then read again, and found stored."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.wait(), timeout_s)


class SettleBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Finish storing and committing before partitions move to another scorer, so the new owner
    starts after the last stored batch instead of scoring it a second time."""

    def __init__(self, inflight: Callable[[], InFlight | None]):
        self._inflight = inflight

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        inflight = self._inflight()
        if inflight is not None:  # well inside the rebalance timeout (the session timeout, 10 s)
            await inflight.settle(timeout_s=5.0)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None
