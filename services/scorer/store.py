"""The scorer's SQL: transactions and their scores, written together and idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from schemas import TransactionEvent


@dataclass(frozen=True)
class ScoreRow:
    score: float
    is_anomaly: bool
    model_version: str
    detector_scores: dict[str, float] = field(default_factory=dict)
    explanation: list[dict[str, Any]] = field(default_factory=list)


_INSERT_TRANSACTIONS = """
INSERT INTO transactions (
    user_id, transaction_id, account_id, ts, amount, direction, currency, merchant, description,
    category, category_source, channel, country, metadata, source, ingested_at)
SELECT u, t, a, ts, amt, dir, cur, mer, descr, cat, cs, ch, co, meta::jsonb, src, ing
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::numeric[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
    $15::text[], $16::timestamptz[])
    AS x(u, t, a, ts, amt, dir, cur, mer, descr, cat, cs, ch, co, meta, src, ing)
ON CONFLICT (user_id, transaction_id) DO NOTHING
RETURNING user_id, transaction_id
"""

_INSERT_SCORES = """
INSERT INTO scores (
    user_id, transaction_id, score, is_anomaly, detector_scores, explanation, model_version)
SELECT u, t, s, a, d::jsonb, e::jsonb, v
FROM unnest($1::text[], $2::text[], $3::real[], $4::boolean[], $5::text[], $6::text[], $7::text[])
    AS x(u, t, s, a, d, e, v)
ON CONFLICT (user_id, transaction_id) DO NOTHING
"""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _columns(events: Sequence[TransactionEvent]) -> list[list[Any]]:
    return [
        [e.user_id for e in events],
        [e.transaction_id for e in events],
        [e.account_id for e in events],
        [e.timestamp for e in events],
        [e.amount for e in events],
        [e.direction.value for e in events],
        [e.currency for e in events],
        [e.merchant for e in events],
        [e.description for e in events],
        [e.category for e in events],
        ["provided" if e.category else "none" for e in events],
        [e.channel.value for e in events],
        [e.country for e in events],
        [_json(e.metadata) if e.metadata is not None else None for e in events],
        [e.source.value for e in events],
        [e.ingested_at for e in events],
    ]


async def persist_scored(
    pool: asyncpg.Pool, events: Sequence[TransactionEvent], scores: Sequence[ScoreRow]
) -> set[tuple[str, str]]:
    """Write transactions and scores in one database transaction; return the keys that were new."""
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetch(_INSERT_TRANSACTIONS, *_columns(events))
        await conn.execute(
            _INSERT_SCORES,
            [e.user_id for e in events],
            [e.transaction_id for e in events],
            [s.score for s in scores],
            [s.is_anomaly for s in scores],
            [_json(s.detector_scores) for s in scores],
            [_json(s.explanation) for s in scores],
            [s.model_version for s in scores],
        )
    return {(r["user_id"], r["transaction_id"]) for r in inserted}
