"""What the caller's data adds up to: accounts, the month's summary, drift, forecasts and
clusters of merchants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from services.api import store
from services.api.deps import CurrentUser, PoolDep
from services.api.models import (
    Account,
    CategoryCluster,
    ClusterResponse,
    DriftPoint,
    DriftResponse,
    DriftSeries,
    ForecastPoint,
    ForecastResponse,
    ForecastRunInfo,
    ForecastSeries,
    MonthForecast,
    Summary,
)
from services.api.summary import build_summary
from services.core.tenancy import shareable

router = APIRouter(prefix="/v1", tags=["insights"])
AccountFilter = Annotated[str | None, Query(max_length=64)]


@router.get("/accounts", response_model=list[Account], summary="Your accounts")
async def list_accounts(pool: PoolDep, user_id: CurrentUser) -> list[Account]:
    return [Account.model_validate(dict(r)) for r in await store.user_accounts(pool, user_id)]


@router.get(
    "/insights/summary",
    response_model=Summary,
    summary="A month at a glance: totals, changes, top merchants, anomalies, subscriptions",
)
async def summary(
    pool: PoolDep,
    user_id: CurrentUser,
    month: Annotated[str, Query(pattern=r"^(19|2\d)\d{2}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
    account_id: AccountFilter = None,
) -> Summary:
    return await build_summary(pool, user_id, month, account_id)


@router.get(
    "/drift",
    response_model=DriftResponse,
    summary="Drift of spending per account over time: category mix and amounts",
)
async def get_drift(
    pool: PoolDep,
    user_id: CurrentUser,
    account_id: AccountFilter = None,
    since: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO 8601")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Points per account")] = 90,
) -> DriftResponse:
    series: dict[str, DriftSeries] = {}
    for row in await store.drift_series(pool, user_id, account_id, since, until, limit):
        entry = series.setdefault(
            row["account_id"],
            DriftSeries(scope="account", account_id=row["account_id"], points=[]),
        )
        entry.points.append(DriftPoint.model_validate(dict(row)))
    return DriftResponse(series=list(series.values()))


@router.get(
    "/forecasts",
    response_model=ForecastResponse,
    summary="Spend forecasts per account and category, daily and monthly, with intervals",
)
async def get_forecasts(
    pool: PoolDep,
    user_id: CurrentUser,
    account_id: AccountFilter = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> ForecastResponse:
    run, currency = (
        await store.latest_forecast_run(pool, user_id),
        await store.base_currency(pool, user_id),
    )
    if run is None:
        return ForecastResponse(run=None, currency=currency, series=[])
    daily, monthly = await store.forecasts(pool, run["run_id"], user_id, account_id, category)
    series: dict[tuple[str, str], ForecastSeries] = {}
    for row in daily:
        key = (row["account_id"], row["category"])
        entry = series.setdefault(
            key, ForecastSeries(account_id=key[0], category=key[1], daily=[], monthly=[])
        )
        entry.daily.append(ForecastPoint.model_validate(dict(row)))
    for row in monthly:
        owner = series.get((row["account_id"], row["category"]))
        if owner is not None:
            owner.monthly.append(MonthForecast.model_validate(dict(row)))
    history, users = await store.forecast_scope(pool, run["run_id"], user_id)
    info = ForecastRunInfo(
        run_id=run["run_id"],
        created_at=run["created_at"],
        horizon_days=run["horizon_days"],
        history_start=history["history_start"] if history else None,
        history_end=history["history_end"] if history else None,
        backtest=run["backtest"] if shareable(users) else None,
    )
    return ForecastResponse(run=info, currency=currency, series=list(series.values()))


@router.get(
    "/categories/clusters",
    response_model=ClusterResponse,
    summary="Your merchants and categories grouped by meaning",
)
async def get_clusters(pool: PoolDep, user_id: CurrentUser) -> ClusterResponse:
    rows = await store.category_clusters(pool, user_id)
    return ClusterResponse(clusters=[CategoryCluster.model_validate(dict(r)) for r in rows])
