"""Query API: the caller's transactions, scores and analytics, read from PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.api import store
from services.api.models import (
    Anomaly,
    AnomalyPage,
    CategoryCluster,
    ClusterResponse,
    DriftPoint,
    DriftResponse,
    DriftSeries,
    FeedbackIn,
    FeedbackOut,
    ForecastPoint,
    ForecastResponse,
    ForecastRunInfo,
    ForecastSeries,
    MonthForecast,
    Score,
    TransactionOut,
    TransactionPage,
)
from services.api.pagination import (
    InvalidCursor,
    decode_cursor,
    decode_score_cursor,
    encode_cursor,
    encode_score_cursor,
)
from services.core.auth import KeyVerifier
from services.core.db import create_pool
from services.core.http import CurrentUser, install_error_handlers
from services.core.metrics import install_metrics
from services.core.settings import Settings, get_settings


def transaction_fields(row: asyncpg.Record) -> dict[str, Any]:
    score = None
    if row["score"] is not None:
        score = Score(
            score=row["score"],
            is_anomaly=row["is_anomaly"],
            severity=row["severity"],
            detectors=row["detector_scores"],
            explanation=row["explanation"],
            model_version=row["model_version"],
            scored_at=row["scored_at"],
        )
    return {
        "transaction_id": row["transaction_id"],
        "account_id": row["account_id"],
        "timestamp": row["ts"],
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
        "ingested_at": row["ingested_at"],
        "score": score,
    }


def transaction_out(row: asyncpg.Record) -> TransactionOut:
    return TransactionOut(**transaction_fields(row))


def _parameter_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
        app.state.pool = pool
        app.state.key_verifier = KeyVerifier(pool, ttl_seconds=settings.api_key_cache_seconds)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Spendstream query API",
        version="1.0.0",
        description="Your transactions with their anomaly scores and explanations, drift, "
        "forecasts and categories. Every endpoint but health and metrics needs "
        "`Authorization: Bearer <api key>` and shows only the caller's data.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_metrics(app, "api")

    @app.get("/v1/transactions", response_model=TransactionPage, summary="List transactions")
    async def list_transactions(
        request: Request,
        user_id: CurrentUser,
        account_id: Annotated[str | None, Query(max_length=64)] = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO 8601")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO 8601")] = None,
        min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> TransactionPage:
        try:
            after = decode_cursor(cursor) if cursor else None
        except InvalidCursor as exc:
            raise _parameter_error("cursor", str(exc)) from None
        if since and until and since >= until:
            raise _parameter_error("until", "until must be later than since")
        filters = store.TransactionFilter(account_id, category, since, until, min_score, after)
        rows = await store.list_transactions(request.app.state.pool, user_id, filters, limit + 1)
        items = [transaction_out(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last["ts"], last["transaction_id"])
        return TransactionPage(items=items, next_cursor=next_cursor)

    @app.get(
        "/v1/transactions/{transaction_id}",
        response_model=TransactionOut,
        summary="One transaction with its per-model scores and explanation",
        responses={404: {"description": "No such transaction for this user"}},
    )
    async def get_transaction(
        request: Request,
        user_id: CurrentUser,
        transaction_id: Annotated[str, Path(min_length=1, max_length=64)],
    ) -> TransactionOut:
        row = await store.get_transaction(request.app.state.pool, user_id, transaction_id)
        if row is None:
            raise HTTPException(404, f"no transaction {transaction_id!r}")
        return transaction_out(row)

    @app.get(
        "/v1/anomalies",
        response_model=AnomalyPage,
        summary="Anomalous transactions, highest score first",
    )
    async def list_anomalies(
        request: Request,
        user_id: CurrentUser,
        account_id: Annotated[str | None, Query(max_length=64)] = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO 8601")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO 8601")] = None,
        min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> AnomalyPage:
        try:
            after = decode_score_cursor(cursor) if cursor else None
        except InvalidCursor as exc:
            raise _parameter_error("cursor", str(exc)) from None
        if since and until and since >= until:
            raise _parameter_error("until", "until must be later than since")
        filters = store.AnomalyFilter(account_id, category, since, until, min_score, after)
        rows = await store.list_anomalies(request.app.state.pool, user_id, filters, limit + 1)
        items = [Anomaly(**transaction_fields(r), feedback=r["feedback"]) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_score_cursor(last["score"], last["transaction_id"])
        return AnomalyPage(items=items, next_cursor=next_cursor)

    @app.post(
        "/v1/anomalies/{transaction_id}/feedback",
        response_model=FeedbackOut,
        summary="Label a transaction fraud or legit; the next training run uses it",
        responses={404: {"description": "No such transaction for this user"}},
    )
    async def post_feedback(
        request: Request,
        user_id: CurrentUser,
        transaction_id: Annotated[str, Path(min_length=1, max_length=64)],
        feedback: FeedbackIn,
    ) -> FeedbackOut:
        row = await store.set_feedback(
            request.app.state.pool, user_id, transaction_id, feedback.label
        )
        if row is None:
            raise HTTPException(404, f"no transaction {transaction_id!r}")
        return FeedbackOut(**dict(row))

    @app.get(
        "/v1/drift",
        response_model=DriftResponse,
        summary="Drift of spending per account over time: category mix and amounts",
    )
    async def get_drift(
        request: Request,
        user_id: CurrentUser,
        account_id: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO 8601")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO 8601")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Points per account")] = 90,
    ) -> DriftResponse:
        rows = await store.drift_series(
            request.app.state.pool, user_id, account_id, since, until, limit
        )
        series: dict[str, DriftSeries] = {}
        for row in rows:
            entry = series.setdefault(
                row["account_id"],
                DriftSeries(scope="account", account_id=row["account_id"], points=[]),
            )
            entry.points.append(DriftPoint.model_validate(dict(row)))
        return DriftResponse(series=list(series.values()))

    @app.get(
        "/v1/forecasts",
        response_model=ForecastResponse,
        summary="Spend forecasts per account and category, daily and monthly, with intervals",
    )
    async def get_forecasts(
        request: Request,
        user_id: CurrentUser,
        account_id: Annotated[str | None, Query(max_length=64)] = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
    ) -> ForecastResponse:
        pool = request.app.state.pool
        run = await store.latest_forecast_run(pool)
        if run is None:
            return ForecastResponse(run=None, series=[])
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
        return ForecastResponse(
            run=ForecastRunInfo.model_validate(dict(run)), series=list(series.values())
        )

    @app.get(
        "/v1/categories/clusters",
        response_model=ClusterResponse,
        summary="Your merchants and categories grouped by meaning",
    )
    async def get_clusters(request: Request, user_id: CurrentUser) -> ClusterResponse:
        rows = await store.category_clusters(request.app.state.pool, user_id)
        return ClusterResponse(clusters=[CategoryCluster.model_validate(dict(r)) for r in rows])

    @app.get("/healthz", summary="Readiness: database reachable")
    async def healthz(request: Request) -> JSONResponse:
        body: dict[str, Any]
        try:
            ok = await request.app.state.pool.fetchval("SELECT 1") == 1
        except Exception:
            ok = False
        body = {"status": "ok" if ok else "degraded", "database": ok}
        return JSONResponse(body, status_code=200 if ok else 503)

    return app


app = create_app()
