"""Ingest: validates transactions, stamps the owner, and hands them to Kafka with acks=all. This
module only assembles the app; each door lives in ``routes/``, their dependencies in
``deps.py`` and the answer they share in ``accepting.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.core.auth import KeyVerifier
from services.core.bodylimit import install_body_limit
from services.core.db import create_pool
from services.core.heap import settle_startup_heap
from services.core.http import docs_urls, install_error_handlers
from services.core.metrics import install_metrics
from services.core.publisher import TransactionPublisher
from services.core.ratelimit import RateLimiter
from services.core.settings import Settings, get_settings
from services.ingest.routes import health, imports, transactions, webhooks

ROUTERS = (transactions.router, webhooks.router, imports.router, health.router)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database.require_url(), size=settings.database.pool_size)
        publisher = TransactionPublisher(settings)
        await publisher.try_connect()
        app.state.pool = pool
        app.state.publisher = publisher
        app.state.key_verifier = KeyVerifier(
            pool, ttl_seconds=settings.security.api_key_cache_seconds
        )
        app.state.rate_limiter = RateLimiter(settings.ingest.rate_limit)
        settle_startup_heap()
        try:
            yield
        finally:
            await publisher.close()
            await pool.close()

    app = FastAPI(
        title="Spendstream ingest",
        version="1.0.0",
        description="Accepts transactions over REST, signed webhooks and file imports, "
        "and publishes them to Kafka once the broker acknowledged.",
        lifespan=lifespan,
        **docs_urls(settings),
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_metrics(app, "ingest", expose=settings.http.expose_metrics)
    install_body_limit(app, settings.ingest.max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    _document_raw_bodies(app)
    return app


def _document_raw_bodies(app: FastAPI) -> None:
    """The REST and webhook doors read their bodies raw (to cap, sign and validate them in
    order), so their request models are added to the OpenAPI document by hand."""
    default_openapi = app.openapi

    def openapi_with_request_models() -> dict[str, Any]:
        schema = default_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(transactions.REQUEST_SCHEMA.get("$defs", {}))
        components.update(webhooks.WEBHOOK_SCHEMA.get("$defs", {}))
        components["WebhookPayload"] = {
            k: v for k, v in webhooks.WEBHOOK_SCHEMA.items() if k != "$defs"
        }
        return schema

    app.openapi = openapi_with_request_models  # type: ignore[method-assign]
