"""Monthly budgets per category, each against what is spent and where the month is heading."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from services.api import store
from services.api.deps import CurrentUser, PoolDep, body_error
from services.api.models import MONTH_PATTERN, BudgetIn, BudgetMonth
from services.api.summary import budget_month, first_of
from services.core.money import minor_units

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])
CategoryPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[^\x00]*$", examples=["Dining"]),
]
MonthQuery = Annotated[
    str | None,
    Query(pattern=MONTH_PATTERN, description="YYYY-MM; the current month when absent"),
]


@router.get(
    "",
    response_model=BudgetMonth,
    summary="Your budgets for a month: spent, remaining, projected month-end and status",
)
async def list_budgets(
    pool: PoolDep, user_id: CurrentUser, month: MonthQuery = None
) -> BudgetMonth:
    return await budget_month(pool, user_id, first_of(month))


@router.put(
    "/{category}",
    response_model=BudgetMonth,
    summary="Set a category's monthly budget, or one month's own amount",
    description="Answers with the month it applies to: `month` when given, else the current month.",
)
async def put_budget(
    pool: PoolDep, user_id: CurrentUser, category: CategoryPath, budget: BudgetIn
) -> BudgetMonth:
    month = first_of(budget.month) if budget.month else None
    base = await store.base_currency(pool, user_id)
    places = minor_units(base)
    if budget.amount != budget.amount.quantize(Decimal(1).scaleb(-places)):
        raise body_error("amount", f"{base} amounts have at most {places} decimals")
    await store.set_budget(pool, user_id, category, budget.amount, month)
    return await budget_month(pool, user_id, month or first_of(None))


@router.delete(
    "/{category}",
    status_code=204,
    summary="Remove a category's budget, or with `month` only that month's own amount",
    responses={404: {"description": "No such budget"}},
)
async def delete_budget(
    pool: PoolDep, user_id: CurrentUser, category: CategoryPath, month: MonthQuery = None
) -> Response:
    removed = await store.delete_budget(pool, user_id, category, first_of(month) if month else None)
    if not removed:
        what = f"for {month}" if month else "at all"
        raise HTTPException(404, f"no budget for {category!r} {what}")
    return Response(status_code=204)
