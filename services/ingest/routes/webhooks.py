"""Transactions pushed by a bank or aggregator, signed with HMAC-SHA256, each delivery once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from schemas import Accepted, TransactionSource, WebhookPayload
from schemas.transaction import TIMESTAMP_WINDOW
from services.core.http import field_errors, read_capped_body, unprocessable, validation_error_body
from services.core.publisher import TransactionPublisher
from services.core.settings import Settings
from services.ingest import store
from services.ingest.accepting import TRANSACTIONS_REJECTED, UnknownRemoval, accept, removals
from services.ingest.deps import PoolDep, PublisherDep, SettingsDep
from services.ingest.signing import (
    TOLERANCE_S,
    InvalidSignature,
    matching_signature,
    parse_fresh_header,
)

SIGNATURE_HEADER = "X-Spendstream-Signature"
USER_HEADER = "X-Spendstream-User"
router = APIRouter(tags=["webhooks"])
WEBHOOK_SCHEMA = WebhookPayload.model_json_schema(ref_template="#/components/schemas/{model}")


@router.post(
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
async def bank_webhook(
    request: Request, pool: PoolDep, settings: SettingsDep, publisher: PublisherDep
) -> JSONResponse:
    raw = await read_capped_body(request, settings.ingest.max_body_bytes)
    try:
        signer, signature = await authenticate_webhook(request, pool, settings, raw)
    except InvalidSignature as exc:
        TRANSACTIONS_REJECTED.labels("webhook", "signature").inc()
        return JSONResponse({"detail": str(exc)}, status_code=401)
    if not await store.claim_delivery(pool, signature, keep_s=2 * TOLERANCE_S):
        TRANSACTIONS_REJECTED.labels("webhook", "replay").inc()
        return JSONResponse(
            {"detail": "this signed delivery was received before; nothing was published"},
            status_code=409,
        )
    response = await webhook_delivery(pool, settings, publisher, raw, signer)
    if response.status_code != 202:  # not accepted: the sender may send it again
        await store.release_delivery(pool, signature)
    return response


async def authenticate_webhook(
    request: Request, pool: PoolDep, settings: Settings, raw: bytes
) -> tuple[str | None, str]:
    """Who signed (None: the installation, else the user named in the user header) and the
    signature, checked before the body is parsed; the database only for a user's secrets."""
    timestamp, signatures = parse_fresh_header(request.headers.get(SIGNATURE_HEADER))
    matched = matching_signature(timestamp, signatures, raw, settings.security.webhook_secrets)
    if matched is not None:
        return None, matched
    user = request.headers.get(USER_HEADER)
    if user and len(user) <= 64:
        secrets = await store.webhook_secrets(pool, user)
        matched = matching_signature(timestamp, signatures, raw, secrets)
        if matched is not None:
            return user, matched
    raise InvalidSignature(
        "signature does not match (a user's own secret needs the "
        f"{USER_HEADER} header naming that user)"
    )


async def webhook_delivery(
    pool: PoolDep,
    settings: Settings,
    publisher: TransactionPublisher,
    raw: bytes,
    signer: str | None,
) -> JSONResponse:
    try:
        payload = WebhookPayload.model_validate_json(
            raw, context={TIMESTAMP_WINDOW: settings.ingest.timestamp_window}
        )
    except ValidationError as exc:
        TRANSACTIONS_REJECTED.labels("webhook", "invalid").inc()
        return JSONResponse(validation_error_body(field_errors(exc)), status_code=422)
    if signer is not None and payload.user_id != signer:
        return unprocessable("user_id", "a user's secret signs for that user only")
    if not await store.user_exists(pool, payload.user_id):
        return unprocessable("user_id", "unknown user")
    try:
        changes = await removals(
            pool, payload.user_id, payload.transactions, payload.removed, "webhook"
        )
    except UnknownRemoval as exc:
        TRANSACTIONS_REJECTED.labels("webhook", "invalid").inc()
        return exc.response()
    return await accept(
        publisher, payload.user_id, payload.transactions, TransactionSource.webhook, changes
    )
