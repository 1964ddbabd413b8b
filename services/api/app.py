"""Query API: the caller's transactions, scores and analytics, read from PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path as PathLib
from typing import Annotated, Any

import asyncpg
import orjson
import vl_convert as vlc
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AwareDatetime

from services.api import store
from services.api.chart_data import DEFAULT_WEEKS, chart_spec
from services.api.charts import CHARTS
from services.api.models import (
    Account,
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
    Summary,
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
from services.api.summary import build_summary
from services.core.auth import KeyVerifier
from services.core.bodylimit import install_body_limit
from services.core.db import create_pool
from services.core.headers import SecurityHeaders
from services.core.heap import settle_startup_heap
from services.core.http import CurrentUser, docs_urls, install_error_handlers
from services.core.metrics import install_metrics
from services.core.ratelimit import RateLimiter
from services.core.settings import Settings, get_settings
from services.core.tenancy import shareable

STATIC = PathLib(__file__).parent / "static"
RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], Any] | None]] = {
    "json": ("application/json", None),
    "png": ("image/png", vlc.vegalite_to_png),
    "svg": ("image/svg+xml", vlc.vegalite_to_svg),
}


def vega_bundle_source() -> str:
    bundle: str = vlc.javascript_bundle()  # type: ignore[call-arg]
    return bundle


def as_sent(ts: datetime, utc_offset_minutes: int | None) -> datetime:
    """The stored instant in the offset it was sent with: local days and months stay local."""
    if utc_offset_minutes is None:
        return ts
    return ts.astimezone(timezone(timedelta(minutes=utc_offset_minutes)))


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
        "timestamp": as_sent(row["ts"], row["utc_offset_minutes"]),
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


async def _check_category(request: Request, user_id: str, category: str | None) -> None:
    """A category filter must name one of the caller's categories; a typo should not look like
    an empty result."""
    if category is None:
        return
    known = await store.user_categories(request.app.state.pool, user_id)
    if category not in known:
        hint = f"; yours are: {', '.join(sorted(known)[:20])}" if known else ""
        raise _parameter_error("category", f"unknown category {category!r}{hint}")


@dataclass
class PageQuery:
    """The filters and keyset paging every list endpoint shares."""

    account_id: Annotated[str | None, Query(max_length=64)] = None
    category: Annotated[str | None, Query(max_length=64)] = None
    since: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO 8601")] = None
    until: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO 8601")] = None
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None
    limit: Annotated[int, Query(ge=1, le=500)] = 50
    cursor: Annotated[str | None, Query(max_length=512)] = None

    async def filter(
        self, request: Request, user_id: str, decode: Callable[[str], tuple[Any, str]]
    ) -> store.ListFilter:
        try:
            after = decode(self.cursor) if self.cursor else None
        except InvalidCursor as exc:
            raise _parameter_error("cursor", str(exc)) from None
        if self.since and self.until and self.since >= self.until:
            raise _parameter_error("until", "until must be later than since")
        await _check_category(request, user_id, self.category)
        return store.ListFilter(
            self.account_id, self.category, self.since, self.until, self.min_score, after
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
        app.state.pool = pool
        app.state.key_verifier = KeyVerifier(pool, ttl_seconds=settings.api_key_cache_seconds)
        app.state.rate_limiter = RateLimiter(settings.api_rate_limit)
        settle_startup_heap()
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
        **docs_urls(settings),
    )
    install_error_handlers(app)
    install_metrics(app, "api", expose=settings.expose_metrics)
    install_body_limit(app, settings.api_max_body_bytes)
    rendering = asyncio.Semaphore(settings.chart_render_concurrency)
    app.add_middleware(SecurityHeaders)

    @app.get("/v1/transactions", response_model=TransactionPage, summary="List transactions")
    async def list_transactions(
        request: Request,
        user_id: CurrentUser,
        page: Annotated[PageQuery, Depends()],
    ) -> TransactionPage:
        filters = await page.filter(request, user_id, decode_cursor)
        limit = page.limit
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
        page: Annotated[PageQuery, Depends()],
    ) -> AnomalyPage:
        filters = await page.filter(request, user_id, decode_score_cursor)
        limit = page.limit
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
        run = await store.latest_forecast_run(pool, user_id)
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
        history, users = await store.forecast_scope(pool, run["run_id"], user_id)
        info = ForecastRunInfo(
            run_id=run["run_id"],
            created_at=run["created_at"],
            horizon_days=run["horizon_days"],
            history_start=history["history_start"] if history else None,
            history_end=history["history_end"] if history else None,
            backtest=run["backtest"] if shareable(users) else None,
        )
        return ForecastResponse(run=info, series=list(series.values()))

    @app.get(
        "/v1/categories/clusters",
        response_model=ClusterResponse,
        summary="Your merchants and categories grouped by meaning",
    )
    async def get_clusters(request: Request, user_id: CurrentUser) -> ClusterResponse:
        rows = await store.category_clusters(request.app.state.pool, user_id)
        return ClusterResponse(clusters=[CategoryCluster.model_validate(dict(r)) for r in rows])

    @app.get("/v1/accounts", response_model=list[Account], summary="Your accounts")
    async def list_accounts(request: Request, user_id: CurrentUser) -> list[Account]:
        rows = await store.user_accounts(request.app.state.pool, user_id)
        return [Account.model_validate(dict(r)) for r in rows]

    @app.get(
        "/v1/insights/summary",
        response_model=Summary,
        summary="A month at a glance: totals, changes, top merchants, anomalies, subscriptions",
    )
    async def summary(
        request: Request,
        user_id: CurrentUser,
        month: Annotated[
            str, Query(pattern=r"^(19|2\d)\d{2}-(0[1-9]|1[0-2])$", description="YYYY-MM")
        ],
        account_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Summary:
        return await build_summary(request.app.state.pool, user_id, month, account_id)

    @app.get(
        "/v1/charts/{chart_file}",
        summary="A chart as an interactive Vega-Lite spec (.json) or rendered (.png, .svg)",
        responses={
            200: {"content": {"application/json": {}, "image/png": {}, "image/svg+xml": {}}},
            404: {"description": "Unknown chart or format"},
        },
        response_model=None,
    )
    async def get_chart(
        request: Request,
        user_id: CurrentUser,
        chart_file: Annotated[
            str,
            Path(
                description="trend, heatmap, anomalies, categories, drift or forecast, "
                "followed by .json, .png or .svg",
                examples=["trend.png"],
            ),
        ],
        account_id: Annotated[str | None, Query(max_length=64)] = None,
        weeks: Annotated[int, Query(ge=1, le=260, description="How far back")] = DEFAULT_WEEKS,
    ) -> Response:
        name, _, fmt = chart_file.partition(".")
        if name not in CHARTS or fmt not in RENDERERS:
            raise HTTPException(
                404,
                f"unknown chart {chart_file!r}: use one of {', '.join(CHARTS)} "
                f"with .{', .'.join(RENDERERS)}",
            )
        spec = await chart_spec(
            request.app.state.pool, name, user_id, account_id, weeks, settings.drift_threshold
        )
        media_type, render = RENDERERS[fmt]
        if render is None:
            body = orjson.dumps(spec)
        else:
            async with rendering:  # a render holds a core for a while: a few at a time
                body = await asyncio.to_thread(render, spec)
        return Response(
            body, media_type=media_type, headers={"Cache-Control": "private, max-age=30"}
        )

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/static/vega.js", include_in_schema=False)
    async def vega_bundle() -> Response:
        # Vega, Vega-Lite and vega-embed from vl-convert's own copy: no CDN, works offline.
        if not hasattr(app.state, "vega_bundle"):
            app.state.vega_bundle = await asyncio.to_thread(vega_bundle_source)
        return Response(
            app.state.vega_bundle,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

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
