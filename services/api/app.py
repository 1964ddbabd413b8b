"""Query API: the caller's transactions, scores and analytics, read from PostgreSQL. This module
only assembles the app; the routes live in ``routes/``, their dependencies in ``deps.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.api.routes import (
    anomalies,
    budgets,
    categories,
    charts,
    dashboard,
    exports,
    health,
    insights,
    preferences,
    transactions,
)
from services.core.auth import KeyVerifier
from services.core.bodylimit import install_body_limit
from services.core.db import create_pool
from services.core.headers import SecurityHeaders
from services.core.heap import settle_startup_heap
from services.core.http import docs_urls, install_error_handlers
from services.core.metrics import install_metrics
from services.core.publisher import TransactionPublisher
from services.core.ratelimit import RateLimiter
from services.core.settings import Settings, get_settings

ROUTERS = (
    transactions.router,
    anomalies.router,
    budgets.router,
    categories.router,
    exports.router,
    insights.router,
    preferences.router,
    charts.router,
    dashboard.router,
    health.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database.require_url(), size=settings.database.pool_size)
        app.state.pool = pool
        app.state.key_verifier = KeyVerifier(
            pool, ttl_seconds=settings.security.api_key_cache_seconds
        )
        app.state.rate_limiter = RateLimiter(settings.api.rate_limit)
        # Edits and deletions are events: they go through the broker like transactions. Started
        # lazily, so the API serves reads (and answers 503 to changes) without a broker.
        app.state.publisher = TransactionPublisher(settings)
        await app.state.publisher.try_connect()
        settle_startup_heap()
        try:
            yield
        finally:
            await app.state.publisher.close()
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
    app.state.settings = settings
    app.state.rendering = asyncio.Semaphore(settings.api.chart_render_concurrency)
    install_error_handlers(app)
    install_metrics(app, "api", expose=settings.http.expose_metrics)
    install_body_limit(app, settings.api.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC), name="static")
    return app
