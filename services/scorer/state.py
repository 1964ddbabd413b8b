"""Rebuilding per-account feature state from PostgreSQL after a restart, rebalance or eviction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from schemas import TransactionEvent
from services.scorer import store
from services.scorer.features import FeatureExtractor


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
