"""Renaming and merging categories. A rename is published as an event per account of the user,
keyed by the account, so every consumer renames in order with that account's transactions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from schemas import CategoryRename, CategoryRenameIn
from services.api import store
from services.api.deps import CurrentUser, PoolDep, PublisherDep, body_error
from services.api.models import CategoryRenamed
from services.core.publisher import BrokerUnavailable

router = APIRouter(prefix="/v1/categories", tags=["categories"])


@router.post(
    "/rename",
    status_code=202,
    response_model=CategoryRenamed,
    summary="Rename a category, or merge it into another by giving that one's name",
    description="Every transaction, budget and rule under the old name takes the new one, and "
    "transactions that still arrive under the old name do too. Budgets of merged categories "
    "add up. 202 once the broker acknowledged the rename for every account.",
    responses={503: {"description": "The broker did not acknowledge; nothing changed, retry"}},
)
async def rename_category(
    pool: PoolDep, publisher: PublisherDep, user_id: CurrentUser, body: CategoryRenameIn
) -> JSONResponse:
    known = await store.user_categories(pool, user_id) | await store.budget_categories(
        pool, user_id
    )
    if body.old_name not in known:
        hint = f"; yours are: {', '.join(sorted(known)[:20])}" if known else ""
        raise body_error("old_name", f"unknown category {body.old_name!r}{hint}")
    change_id, now = uuid.uuid4().hex, datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        merged, accounts = await store.rename_category(conn, user_id, body.old_name, body.new_name)
        events = [
            CategoryRename(
                change_id=change_id,
                user_id=user_id,
                account_id=account,
                old_name=body.old_name,
                new_name=body.new_name,
                requested_at=now,
            )
            for account in accounts
        ]
        try:  # inside the database transaction: unacknowledged, the alias is rolled back too
            await publisher.publish(
                [(e.account_id.encode(), e.model_dump_json().encode()) for e in events]
            )
        except BrokerUnavailable as exc:
            return JSONResponse(
                {"detail": f"{exc}; nothing changed, retry shortly"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
    answer = CategoryRenamed(
        old_name=body.old_name, new_name=body.new_name, merged=merged, accounts=len(accounts)
    )
    return JSONResponse(answer.model_dump(), status_code=202)
