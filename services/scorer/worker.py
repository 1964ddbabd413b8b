"""The scoring thread: scoring runs off the event loop, with native thread pools kept to itself."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch
from threadpoolctl import threadpool_limits

from schemas import TransactionEvent
from services.scorer.scoring import AnomalyScorer, ScoredTransaction


def _limit_native_threads() -> None:
    # Batches are small: OpenMP, BLAS and torch worker threads only spin against the event loop
    # and PostgreSQL for the same cores, which then wait (see bench/results/history.json).
    # OpenMP limits are per thread, hence this thread's initializer.
    threadpool_limits(limits=1)
    torch.set_num_threads(1)


class ScoringWorker:
    """One thread that scores batches in order, so the event loop stays free for Kafka, the
    database and health checks meanwhile."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="scoring", initializer=_limit_native_threads
        )

    async def score(
        self, scorer: AnomalyScorer, events: list[TransactionEvent]
    ) -> list[ScoredTransaction]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, scorer.score_batch, events)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
