"""The caller's transactions, newest first, and one transaction with its scores."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from services.api import store
from services.api.deps import CurrentUser, PageDep, PoolDep
from services.api.models import TransactionOut, TransactionPage
from services.api.pagination import decode_cursor, encode_cursor
from services.api.rows import transaction_out

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])


@router.get("", response_model=TransactionPage, summary="List transactions")
async def list_transactions(pool: PoolDep, user_id: CurrentUser, page: PageDep) -> TransactionPage:
    filters = await page.page_filter(pool, user_id, decode_cursor)
    rows = await store.list_transactions(pool, user_id, filters, page.limit + 1)
    next_cursor = None
    if len(rows) > page.limit:
        last = rows[page.limit - 1]
        next_cursor = encode_cursor(last["ts"], last["transaction_id"])
    return TransactionPage(
        items=[transaction_out(r) for r in rows[: page.limit]], next_cursor=next_cursor
    )


@router.get(
    "/{transaction_id}",
    response_model=TransactionOut,
    summary="One transaction with its per-model scores and explanation",
    responses={404: {"description": "No such transaction for this user"}},
)
async def get_transaction(
    pool: PoolDep,
    user_id: CurrentUser,
    transaction_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> TransactionOut:
    row = await store.get_transaction(pool, user_id, transaction_id)
    if row is None:
        raise HTTPException(404, f"no transaction {transaction_id!r}")
    return transaction_out(row)
