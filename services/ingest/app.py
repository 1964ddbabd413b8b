"""Ingest: validates transactions, stamps the owner, and hands them to Kafka with acks=all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import TypeAdapter

from schemas import Accepted, Transaction, TransactionBatch, TransactionEvent, TransactionSource
from services.core.auth import KeyVerifier
from services.core.db import create_pool
from services.core.http import (
    CurrentUser,
    install_error_handlers,
    read_capped_body,
    validation_error_body,
)
from services.core.metrics import install_metrics
from services.core.settings import Settings, get_settings
from services.ingest.parsing import InvalidBody, parse_transactions
from services.ingest.publisher import BrokerUnavailable, TransactionPublisher

RETRY_AFTER_SECONDS = "5"

TRANSACTIONS_ACCEPTED = Counter(
    "spendstream_ingest_transactions_accepted_total",
    "Transactions acknowledged by the broker.",
    ["source"],
)
TRANSACTIONS_REJECTED = Counter(
    "spendstream_ingest_transactions_rejected_total",
    "Transactions refused, by reason.",
    ["source", "reason"],
)

_REQUEST_SCHEMA = TypeAdapter(Transaction | TransactionBatch).json_schema(
    ref_template="#/components/schemas/{model}"
)


def stamp(
    transactions: list[Transaction], user_id: str, source: TransactionSource
) -> list[TransactionEvent]:
    now = datetime.now(UTC)
    return [
        TransactionEvent.model_construct(
            **tx.__dict__, user_id=user_id, ingested_at=now, source=source, schema_version=1
        )
        for tx in transactions
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.require_database_url(), size=settings.database_pool_size)
        publisher = TransactionPublisher(settings)
        await publisher.try_connect()
        app.state.pool = pool
        app.state.publisher = publisher
        app.state.key_verifier = KeyVerifier(pool, ttl_seconds=settings.api_key_cache_seconds)
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
    )
    install_error_handlers(app)
    install_metrics(app, "ingest")

    async def accept(
        request: Request, user_id: str, transactions: list[Transaction], source: TransactionSource
    ) -> JSONResponse:
        publisher: TransactionPublisher = request.app.state.publisher
        try:
            await publisher.publish(stamp(transactions, user_id, source))
        except BrokerUnavailable as exc:
            TRANSACTIONS_REJECTED.labels(source.value, "broker_unavailable").inc(len(transactions))
            return JSONResponse(
                {"detail": f"{exc}; nothing was accepted, retry the whole request"},
                status_code=503,
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        TRANSACTIONS_ACCEPTED.labels(source.value).inc(len(transactions))
        return JSONResponse(Accepted(accepted=len(transactions)).model_dump(), status_code=202)

    @app.post(
        "/v1/transactions",
        status_code=202,
        response_model=Accepted,
        summary="Submit one transaction or a batch of up to 10,000",
        responses={
            401: {"description": "Missing or unknown API key"},
            413: {"description": "Body too large"},
            422: {"description": "Invalid items, each named by index and field; nothing published"},
            503: {"description": "Broker unavailable; nothing accepted, retry after Retry-After"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"anyOf": _REQUEST_SCHEMA["anyOf"]}}},
            }
        },
    )
    async def post_transactions(request: Request, user_id: CurrentUser) -> JSONResponse:
        raw = await read_capped_body(request, settings.max_body_bytes)
        try:
            transactions = parse_transactions(raw, max_items=settings.max_batch_items)
        except InvalidBody as exc:
            TRANSACTIONS_REJECTED.labels("api", "invalid").inc()
            return JSONResponse(
                validation_error_body([e.as_dict() for e in exc.errors]), status_code=422
            )
        return await accept(request, user_id, transactions, TransactionSource.api)

    @app.get("/healthz", summary="Readiness: database reachable and broker connected")
    async def healthz(request: Request) -> JSONResponse:
        publisher: TransactionPublisher = request.app.state.publisher
        broker_ok = await publisher.try_connect()
        try:
            database_ok = await request.app.state.pool.fetchval("SELECT 1") == 1
        except Exception:
            database_ok = False
        body: dict[str, Any] = {"broker": broker_ok, "database": database_ok}
        body["status"] = "ok" if broker_ok and database_ok else "degraded"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    default_openapi = app.openapi

    def openapi_with_request_models() -> dict[str, Any]:
        schema = default_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(_REQUEST_SCHEMA.get("$defs", {}))
        return schema

    app.openapi = openapi_with_request_models  # type: ignore[method-assign]
    return app


app = create_app()
