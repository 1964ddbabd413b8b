"""The caller's transactions, newest first, one transaction with its scores, and changes to one:
an edit or a deletion, published as an event like the transaction itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse

from schemas import (
    Accepted,
    Transaction,
    TransactionChange,
    TransactionEdit,
    TransactionEvent,
    TransactionSource,
)
from services.api import store
from services.api.deps import (
    CurrentUser,
    PageDep,
    PoolDep,
    PublisherDep,
    SettingsDep,
    body_error,
)
from services.api.models import ChangeAccepted, TransactionOut, TransactionPage
from services.api.pagination import BY_TIME
from services.api.rows import transaction_out
from services.core.publisher import BrokerUnavailable

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])


@router.get("", response_model=TransactionPage, summary="List transactions")
async def list_transactions(pool: PoolDep, user_id: CurrentUser, page: PageDep) -> TransactionPage:
    filters = await page.page_filter(pool, user_id, BY_TIME.decode)
    rows, next_cursor = BY_TIME.page(
        await store.list_transactions(pool, user_id, filters, page.limit + 1), page.limit
    )
    return TransactionPage(items=[transaction_out(r) for r in rows], next_cursor=next_cursor)


TransactionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f]+$")]
CHANGE_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"description": "No such transaction for this user"},
    503: {"description": "The broker did not acknowledge the change; retry after Retry-After"},
}


async def publish_change(
    pool: PoolDep,
    publisher: PublisherDep,
    user_id: str,
    transaction_id: str,
    kind: Literal["edit", "remove"],
    edit: TransactionEdit | None = None,
) -> JSONResponse:
    account_id = await store.account_of(pool, user_id, transaction_id)
    if account_id is None:
        raise HTTPException(404, f"no transaction {transaction_id!r}")
    change = TransactionChange(
        kind=kind,
        change_id=uuid.uuid4().hex,
        user_id=user_id,
        account_id=account_id,
        transaction_id=transaction_id,
        changes=edit.changes() if edit else {},
        source="api",
        requested_at=datetime.now(UTC),
    )
    try:
        await publisher.publish([(account_id.encode(), change.model_dump_json().encode())])
    except BrokerUnavailable as exc:
        return JSONResponse(
            {"detail": f"{exc}; nothing changed, retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    accepted = ChangeAccepted(change_id=change.change_id, transaction_id=transaction_id, kind=kind)
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    summary="Add a transaction by hand (the dashboard's form)",
    description="One transaction, validated as ingest validates it, published on the same topic "
    "with source `manual`; 202 once the broker acknowledged it. Banks and apps post to ingest.",
    responses={503: CHANGE_RESPONSES[503]},
)
async def add_transaction(
    publisher: PublisherDep, settings: SettingsDep, user_id: CurrentUser, transaction: Transaction
) -> JSONResponse:
    if problem := settings.ingest.timestamp_window.problem(transaction.timestamp):
        raise body_error("timestamp", problem)
    event = TransactionEvent(
        **transaction.model_dump(),
        user_id=user_id,
        ingested_at=datetime.now(UTC),
        source=TransactionSource.manual,
    )
    try:
        await publisher.publish([(event.account_id.encode(), event.model_dump_json().encode())])
    except BrokerUnavailable as exc:
        return JSONResponse(
            {"detail": f"{exc}; nothing was added, retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse(Accepted(accepted=1).model_dump(exclude={"removed"}), status_code=202)


@router.patch(
    "/{transaction_id}",
    status_code=202,
    response_model=ChangeAccepted,
    summary="Edit a transaction: category, note, excluded from analytics, display merchant",
    description="Published as a change event, keyed by account like the transaction; 202 once "
    "the broker acknowledged it. Every view shows it once the pipeline has applied it, "
    "normally within a second.",
    responses=CHANGE_RESPONSES,
)
async def patch_transaction(
    pool: PoolDep,
    publisher: PublisherDep,
    user_id: CurrentUser,
    transaction_id: TransactionId,
    edit: TransactionEdit,
) -> JSONResponse:
    return await publish_change(pool, publisher, user_id, transaction_id, "edit", edit)


@router.delete(
    "/{transaction_id}",
    status_code=202,
    response_model=ChangeAccepted,
    summary="Delete a transaction: it disappears from every view, for good",
    description="Published as a change event; 202 once the broker acknowledged it. Sending "
    "the same transaction id again later does not bring it back.",
    responses=CHANGE_RESPONSES,
)
async def delete_transaction(
    pool: PoolDep, publisher: PublisherDep, user_id: CurrentUser, transaction_id: TransactionId
) -> JSONResponse:
    return await publish_change(pool, publisher, user_id, transaction_id, "remove")


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
