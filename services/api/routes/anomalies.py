"""Anomalous transactions, highest score first, and the caller's fraud / legit labels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from services.api import store
from services.api.deps import CurrentUser, PageDep, PoolDep
from services.api.models import Anomaly, AnomalyPage, FeedbackIn, FeedbackOut
from services.api.pagination import BY_SCORE
from services.api.rows import transaction_fields

router = APIRouter(prefix="/v1/anomalies", tags=["anomalies"])


@router.get("", response_model=AnomalyPage, summary="Anomalous transactions, highest score first")
async def list_anomalies(pool: PoolDep, user_id: CurrentUser, page: PageDep) -> AnomalyPage:
    filters = await page.page_filter(pool, user_id, BY_SCORE.decode)
    rows, next_cursor = BY_SCORE.page(
        await store.list_anomalies(pool, user_id, filters, page.limit + 1), page.limit
    )
    items = [Anomaly(**transaction_fields(r), feedback=r["feedback"]) for r in rows]
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
