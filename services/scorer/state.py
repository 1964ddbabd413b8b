"""Rebuilding per-account feature state from PostgreSQL after a restart, rebalance or eviction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from schemas import TransactionEvent
from services.scorer import store
from services.scorer.features import FeatureExtractor
from services.scorer.scoring import AnomalyScorer, ScoredTransaction
from services.scorer.worker import ScoringWorker


async def rebuild_missing_histories(
    pool: asyncpg.Pool,
    extractor: FeatureExtractor,
    events: Sequence[TransactionEvent],
    window: int,
) -> int:
    """Replay the stored window of every account in ``events`` that the extractor does not hold;
    return how many transactions were replayed."""
    missing = sorted({(e.user_id, e.account_id) for e in events} - set(extractor.known()))
    if not missing:
        return 0
    history = await store.account_histories(pool, missing, window)
    for event in history:
        extractor.learn(event)
    return len(history)


class LiveScoring:
    """The pipeline's scoring port: the served models on the scoring thread, over per-account
    histories rebuilt from PostgreSQL when they are not in memory."""

    def __init__(
        self, pool: asyncpg.Pool, scorer: AnomalyScorer, worker: ScoringWorker, window: int
    ):
        self.pool = pool
        self.scorer = scorer
        self.worker = worker
        self.window = window

    async def prepare(self, events: Sequence[TransactionEvent]) -> None:
        await rebuild_missing_histories(self.pool, self.scorer.features, events, self.window)

    async def score(self, events: list[TransactionEvent]) -> list[ScoredTransaction]:
        return await self.worker.score(self.scorer, events)

    def forget(self, accounts: Iterable[tuple[str, str]]) -> None:
        for account in accounts:
            self.scorer.features.forget(account)
