"""Anomalous transactions, highest score first, and the caller's fraud / legit labels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from services.api import store
from services.api.deps import CurrentUser, PageDep, PoolDep
from services.api.models import Anomaly, AnomalyPage, FeedbackIn, FeedbackOut
from services.api.pagination import decode_score_cursor, encode_score_cursor
from services.api.rows import transaction_fields

router = APIRouter(prefix="/v1/anomalies", tags=["anomalies"])


@router.get("", response_model=AnomalyPage, summary="Anomalous transactions, highest score first")
async def list_anomalies(pool: PoolDep, user_id: CurrentUser, page: PageDep) -> AnomalyPage:
    filters = await page.page_filter(pool, user_id, decode_score_cursor)
    rows = await store.list_anomalies(pool, user_id, filters, page.limit + 1)
    next_cursor = None
    if len(rows) > page.limit:
        last = rows[page.limit - 1]
        next_cursor = encode_score_cursor(last["score"], last["transaction_id"])
    items = [Anomaly(**transaction_fields(r), feedback=r["feedback"]) for r in rows[: page.limit]]
    return AnomalyPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{transaction_id}/feedback",
    response_model=FeedbackOut,
    summary="Label a transaction fraud or legit; the next training run uses it",
    responses={404: {"description": "No such transaction for this user"}},
)
async def post_feedback(
    pool: PoolDep,
    user_id: CurrentUser,
    transaction_id: Annotated[str, Path(min_length=1, max_length=64)],
    feedback: FeedbackIn,
) -> FeedbackOut:
    row = await store.set_feedback(pool, user_id, transaction_id, feedback.label)
    if row is None:
        raise HTTPException(404, f"no transaction {transaction_id!r}")
    return FeedbackOut(**dict(row))
