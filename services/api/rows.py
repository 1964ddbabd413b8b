"""Stored rows to response models."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from schemas.scores import Score
from services.analytics.budgets import BudgetLine
from services.api.models import (
    BudgetOut,
    BudgetProjection,
    CurrencyTotal,
    TransactionOut,
)


def as_sent(ts: datetime, utc_offset_minutes: int | None) -> datetime:
    """The stored instant in the offset it was sent with: local days and months stay local."""
    if utc_offset_minutes is None:
        return ts
    return ts.astimezone(timezone(timedelta(minutes=utc_offset_minutes)))


def transaction_fields(row: asyncpg.Record) -> dict[str, Any]:
    score = None
    if row["score"] is not None:
        score = Score(
            score=row["score"],
            is_anomaly=row["is_anomaly"],
            historical=row["historical"],
            severity=row["severity"],
            detectors=row["detector_scores"],
            explanation=row["explanation"],
            model_version=row["model_version"],
            scored_at=row["scored_at"],
        )
    return {
        "transaction_id": row["transaction_id"],
        "account_id": row["account_id"],
        "timestamp": as_sent(row["ts"], row["utc_offset_minutes"]),
        "amount": row["amount"],
        "direction": row["direction"],
        "currency": row["currency"],
        "merchant": row["merchant"],
        "description": row["description"],
        "category": row["category"],
        "category_source": row["category_source"],
        "category_confidence": row["category_confidence"],
        "channel": row["channel"],
        "country": row["country"],
        "metadata": row["metadata"],
        "revision": row["revision"],
        "status": row["status"],
        "note": row["note"],
        "excluded": row["excluded"],
        "display_merchant": row["display_merchant"],
        "ingested_at": row["ingested_at"],
        "score": score,
    }


def transaction_out(row: asyncpg.Record) -> TransactionOut:
    return TransactionOut(**transaction_fields(row))


def budget_out(line: BudgetLine) -> BudgetOut:
    return BudgetOut(
        category=line.category,
        budget=line.budget,
        override=line.override,
        spent=line.spent,
        remaining=line.remaining,
        spent_share=round(line.spent_share, 4),
        projected=BudgetProjection(
            p10=line.projected.p10,
            p50=line.projected.p50,
            p90=line.projected.p90,
            method=line.projected.method.value,
        ),
        status=line.status.value,
        unconverted=[
            CurrencyTotal(currency=c, total=v) for c, v in sorted(line.unconverted.items())
        ],
    )
