"""Ingest: validates transactions, stamps the owner, and hands them to Kafka with acks=all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from schemas import (
    Accepted,
    Transaction,
    TransactionBatch,
    TransactionSource,
    WebhookPayload,
)
from schemas.transaction import TIMESTAMP_WINDOW
from services.core.auth import KeyVerifier
from services.core.bodylimit import install_body_limit
from services.core.db import create_pool
from services.core.heap import settle_startup_heap
from services.core.http import (
    CurrentUser,
    PayloadTooLarge,
    docs_urls,
    field_errors,
    install_error_handlers,
    read_capped_body,
    unprocessable,
    validation_error_body,
)
from services.core.metrics import install_metrics
from services.core.ratelimit import RateLimiter
from services.core.settings import Settings, get_settings
from services.ingest import store
from services.ingest.imports import AccountRequired, CsvMapping, ImportErrors, parse_export
from services.ingest.parsing import InvalidBody, parse_transactions
from services.ingest.publisher import BrokerUnavailable, TransactionPublisher, stamped
from services.ingest.signing import (
    TOLERANCE_S,
    InvalidSignature,
    matching_signature,
    parse_fresh_header,
)

RETRY_AFTER_SECONDS = "5"
SIGNATURE_HEADER = "X-Spendstream-Signature"
USER_HEADER = "X-Spendstream-User"

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
_WEBHOOK_SCHEMA = WebhookPayload.model_json_schema(ref_template="#/components/schemas/{model}")


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
        app.state.rate_limiter = RateLimiter(settings.ingest_rate_limit)
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
    install_error_handlers(app)
    install_metrics(app, "ingest", expose=settings.expose_metrics)
    install_body_limit(app, settings.max_body_bytes)

    async def accept(
        request: Request, user_id: str, transactions: list[Transaction], source: TransactionSource
    ) -> JSONResponse:
        publisher: TransactionPublisher = request.app.state.publisher
        try:
            await publisher.publish(stamped(transactions, user_id, source))
        except BrokerUnavailable as exc:
            TRANSACTIONS_REJECTED.labels(source.value, "broker_unavailable").inc(
                len(transactions) - len(exc.acknowledged)
            )
            TRANSACTIONS_ACCEPTED.labels(source.value).inc(len(exc.acknowledged))
            acked = set(exc.acknowledged)
            return JSONResponse(
                {
                    "detail": f"{exc}; retry the whole request: transaction ids make it safe, "
                    "those already acknowledged change nothing",
                    "acknowledged": [
                        tx.transaction_id for i, tx in enumerate(transactions) if i in acked
                    ],
                    "unconfirmed": [
                        tx.transaction_id for i, tx in enumerate(transactions) if i not in acked
                    ],
                },
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
                "content": {"application/json": {"schema": {"anyOf": _REQUEST_SCHEMA["anyOf"]}}},
            }
        },
    )
    async def post_transactions(
        request: Request,
        user_id: CurrentUser,
        source: Annotated[
            Literal["api", "import"], Query(description="`import` when a tool sends an export")
        ] = "api",
    ) -> JSONResponse:
        raw = await read_capped_body(request, settings.max_body_bytes)
        try:
            transactions = parse_transactions(
                raw, max_items=settings.max_batch_items, window=settings.timestamp_window
            )
        except InvalidBody as exc:
            TRANSACTIONS_REJECTED.labels("api", "invalid").inc()
            return JSONResponse(
                validation_error_body([e.as_dict() for e in exc.errors]), status_code=422
            )
        return await accept(request, user_id, transactions, TransactionSource(source))

    @app.post(
        "/v1/webhooks/bank",
        status_code=202,
        response_model=Accepted,
        summary="Transactions pushed by a bank or aggregator, signed with HMAC-SHA256",
        description="Header `X-Spendstream-Signature: t=<unix>,v1=<hex>`, the hex being the "
        "HMAC-SHA256 of `\"<t>.<raw body>\"` with the installation's or the user's webhook "
        "secret; timestamps older than 300 s are refused. The body names the user; a body "
        "signed with a user's own secret also names them in the `X-Spendstream-User` header, "
        "so the signature is checked before the body is read. A delivery is taken once: the "
        "same signature again is a replay, answered 409 with nothing published (a delivery "
        "that was not accepted, 422 or 503, may be sent again).",
        responses={
            401: {"description": "Missing, malformed, stale or wrong signature"},
            409: {"description": "This signed delivery was received before; nothing published"},
            422: {"description": "Invalid items or unknown user; nothing published"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/WebhookPayload"}}
                },
            }
        },
    )
    async def bank_webhook(request: Request) -> JSONResponse:
        raw = await read_capped_body(request, settings.max_body_bytes)
        pool = request.app.state.pool
        try:
            signer, signature = await authenticate_webhook(request, raw)
        except InvalidSignature as exc:
            TRANSACTIONS_REJECTED.labels("webhook", "signature").inc()
            return JSONResponse({"detail": str(exc)}, status_code=401)
        if not await store.claim_delivery(pool, signature, keep_s=2 * TOLERANCE_S):
            TRANSACTIONS_REJECTED.labels("webhook", "replay").inc()
            return JSONResponse(
                {"detail": "this signed delivery was received before; nothing was published"},
                status_code=409,
            )
        response = await webhook_delivery(request, raw, signer)
        if response.status_code != 202:  # not accepted: the sender may send it again
            await store.release_delivery(pool, signature)
        return response

    async def authenticate_webhook(request: Request, raw: bytes) -> tuple[str | None, str]:
        """Who signed (None: the installation, else the user named in the user header) and the
        signature, checked before the body is parsed; the database only for a user's secrets."""
        timestamp, signatures = parse_fresh_header(request.headers.get(SIGNATURE_HEADER))
        matched = matching_signature(timestamp, signatures, raw, settings.webhook_secrets)
        if matched is not None:
            return None, matched
        user = request.headers.get(USER_HEADER)
        if user and len(user) <= 64:
            secrets = await store.webhook_secrets(request.app.state.pool, user)
            matched = matching_signature(timestamp, signatures, raw, secrets)
            if matched is not None:
                return user, matched
        raise InvalidSignature(
            "signature does not match (a user's own secret needs the "
            f"{USER_HEADER} header naming that user)"
        )

    async def webhook_delivery(request: Request, raw: bytes, signer: str | None) -> JSONResponse:
        try:
            payload = WebhookPayload.model_validate_json(
                raw, context={TIMESTAMP_WINDOW: settings.timestamp_window}
            )
        except ValidationError as exc:
            TRANSACTIONS_REJECTED.labels("webhook", "invalid").inc()
            return JSONResponse(validation_error_body(field_errors(exc)), status_code=422)
        if signer is not None and payload.user_id != signer:
            return unprocessable("user_id", "a user's secret signs for that user only")
        if not await store.user_exists(request.app.state.pool, payload.user_id):
            return unprocessable("user_id", "unknown user")
        return await accept(
            request, payload.user_id, payload.transactions, TransactionSource.webhook
        )

    @app.post(
        "/v1/imports",
        status_code=202,
        response_model=Accepted,
        summary="Import a bank export: CSV (recognised or mapped), OFX/QFX, CAMT.053 or QIF",
        responses={
            422: {"description": "Problems, each naming its row and column; nothing published"}
        },
    )
    async def import_file(
        request: Request,
        user_id: CurrentUser,
        file: Annotated[UploadFile, File(description="CSV, OFX, QFX, CAMT.053 XML or QIF export")],
        account_id: Annotated[
            str | None, Form(max_length=64, description="Required for CSV; OFX names its account")
        ] = None,
        currency: Annotated[str | None, Form(pattern=r"^[A-Z]{3}$")] = None,
        preset: Annotated[
            str | None,
            Form(
                max_length=32,
                description="A bank's export format (chase, bofa, amex, capital-one, monzo, "
                "revolut, n26, wise, ...); default: recognised from the header",
            ),
        ] = None,
        date_column: Annotated[str | None, Form(description="Default: found by name")] = None,
        amount_column: Annotated[
            str | None, Form(description="Signed amounts; or use debit/credit columns")
        ] = None,
        debit_column: Annotated[str | None, Form()] = None,
        credit_column: Annotated[str | None, Form()] = None,
        description_column: Annotated[str | None, Form()] = None,
        merchant_column: Annotated[str | None, Form()] = None,
        category_column: Annotated[str | None, Form()] = None,
        id_column: Annotated[str | None, Form()] = None,
        type_column: Annotated[
            str | None, Form(description="Sale/Return/Payment or Debit/Credit: the direction")
        ] = None,
        currency_column: Annotated[str | None, Form()] = None,
        date_format: Annotated[
            str | None, Form(description="strptime format; default: detected from the dates")
        ] = None,
        negative_is_debit: Annotated[
            bool | None, Form(description="Default: the more common sign is money out")
        ] = None,
    ) -> JSONResponse:
        data = await file.read(settings.max_body_bytes + 1)
        if len(data) > settings.max_body_bytes:
            raise PayloadTooLarge(settings.max_body_bytes)
        mapping = CsvMapping(
            date=date_column,
            amount=amount_column,
            debit=debit_column,
            credit=credit_column,
            description=description_column,
            merchant=merchant_column,
            category=category_column,
            transaction_id=id_column,
            type=type_column,
            currency=currency_column,
            date_format=date_format,
            negative_is_debit=negative_is_debit,
        )
        try:
            # Off the event loop: a large or pathological file must not stall other requests.
            transactions = await asyncio.to_thread(
                parse_export,
                data.decode("utf-8-sig", errors="replace"),
                filename=file.filename or "",
                mapping=mapping,
                account_id=account_id,
                currency=currency,
                window=settings.timestamp_window,
                preset=preset,
            )
        except AccountRequired:
            return unprocessable("account_id", "account_id is required for CSV files", "missing")
        except ImportErrors as exc:
            TRANSACTIONS_REJECTED.labels("import", "invalid").inc()
            return JSONResponse(
                validation_error_body([e.as_dict() for e in exc.errors[:100]]), status_code=422
            )
        if not transactions:
            return JSONResponse(Accepted(accepted=0).model_dump(), status_code=202)
        return await accept(request, user_id, transactions, TransactionSource.import_)

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
        components.update(_WEBHOOK_SCHEMA.get("$defs", {}))
        components["WebhookPayload"] = {k: v for k, v in _WEBHOOK_SCHEMA.items() if k != "$defs"}
        return schema

    app.openapi = openapi_with_request_models  # type: ignore[method-assign]
    return app


app = create_app()
