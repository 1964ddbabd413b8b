"""Transactions sent over REST, one or a batch."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from schemas import Accepted, Transaction, TransactionBatch, TransactionSource
from services.core.http import read_capped_body, validation_error_body
from services.ingest.accepting import TRANSACTIONS_REJECTED, UnknownRemoval, accept, removals
from services.ingest.deps import CurrentUser, PoolDep, PublisherDep, SettingsDep
from services.ingest.parsing import InvalidBody, parse_body

router = APIRouter(tags=["transactions"])
REQUEST_SCHEMA = TypeAdapter(Transaction | TransactionBatch).json_schema(
    ref_template="#/components/schemas/{model}"
)


@router.post(
    "/v1/transactions",
    status_code=202,
    response_model=Accepted,
    summary="Submit one transaction or a batch of up to 10,000, and removals",
    description="A transaction sent again with a higher `revision` replaces the one stored; "
    "`removed` names transactions the bank took back. Both flow through the pipeline as events.",
    responses={
        401: {"description": "Missing or unknown API key"},
        413: {"description": "Body too large"},
        422: {"description": "Invalid items, each named by index and field; nothing published"},
        503: {
            "description": "The broker did not acknowledge every transaction: the body lists "
            "those it acknowledged (they will be stored) and those unconfirmed (they may or "
            "may not arrive); resend the whole request after Retry-After: transaction ids "
            "make that safe"
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": REQUEST_SCHEMA["anyOf"]}}},
        }
    },
)
async def post_transactions(
    request: Request,
    user_id: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    source: Annotated[
        Literal["api", "import"], Query(description="`import` when a tool sends an export")
    ] = "api",
) -> JSONResponse:
    raw = await read_capped_body(request, settings.ingest.max_body_bytes)
    try:
        transactions, removed = parse_body(
            raw, max_items=settings.ingest.max_batch_items, window=settings.ingest.timestamp_window
        )
    except InvalidBody as exc:
        TRANSACTIONS_REJECTED.labels("api", "invalid").inc()
        return JSONResponse(
            validation_error_body([e.as_dict() for e in exc.errors]), status_code=422
        )
    try:
        changes = await removals(pool, user_id, transactions, removed, "api")
    except UnknownRemoval as exc:
        TRANSACTIONS_REJECTED.labels("api", "invalid").inc()
        return exc.response()
    return await accept(publisher, user_id, transactions, TransactionSource(source), changes)
