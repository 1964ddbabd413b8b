"""The caller's preferences: the base currency every total, budget, forecast and chart is in."""

from __future__ import annotations

from fastapi import APIRouter

from services.api import store
from services.api.deps import CurrentUser, PoolDep, body_error
from services.api.models import Preferences

router = APIRouter(prefix="/v1/preferences", tags=["preferences"])


@router.get("", response_model=Preferences, summary="Your preferences")
async def get_preferences(pool: PoolDep, user_id: CurrentUser) -> Preferences:
    return Preferences(base_currency=await store.base_currency(pool, user_id))


@router.put(
    "",
    response_model=Preferences,
    summary="Set your base currency",
    description="A currency other than USD and EUR needs exchange rates first: "
    "`spendstream fx import FILE`.",
)
async def put_preferences(pool: PoolDep, user_id: CurrentUser, body: Preferences) -> Preferences:
    if body.base_currency not in ("USD", "EUR") and not await store.has_rates(
        pool, body.base_currency
    ):
        raise body_error(
            "base_currency",
            f"no exchange rates for {body.base_currency}: import them first with "
            "`spendstream fx import FILE` (the ECB reference-rate CSV works as-is)",
        )
    await store.set_base_currency(pool, user_id, body.base_currency)
    return body
