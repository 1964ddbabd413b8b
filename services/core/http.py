"""FastAPI plumbing shared by ingest and the query API: authentication, error shapes, body caps."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.auth import KeyVerifier, hash_key, parse_bearer
from services.core.bodylimit import BodyTooLarge
from services.core.ratelimit import RateLimiter
from services.core.settings import Settings

log = logging.getLogger(__name__)

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


class PayloadTooLarge(Exception):
    def __init__(self, limit: int):
        self.limit = limit


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def current_user(request: Request) -> str:
    secret = parse_bearer(request.headers.get("authorization"))
    if secret is None:
        raise HTTPException(
            401, "missing or malformed Authorization: Bearer <api key>", UNAUTHORIZED_HEADERS
        )
    verifier: KeyVerifier = request.app.state.key_verifier
    try:
        user_id = await verifier.user_for(secret)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise HTTPException(
            503, "cannot check the API key right now; retry shortly", {"Retry-After": "5"}
        ) from exc
    if user_id is None:
        raise HTTPException(401, "unknown or revoked API key", UNAUTHORIZED_HEADERS)
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = await limiter.retry_after(hash_key(secret).hex())
    if wait is not None:
        raise HTTPException(
            429,
            f"more than {limiter.item} requests with this key; retry in {wait} s",
            {"Retry-After": str(wait)},
        )
    return user_id


CurrentUser = Annotated[str, Depends(current_user)]


class DocsUrls(TypedDict):
    docs_url: str | None
    redoc_url: str | None
    openapi_url: str | None


def docs_urls(settings: Settings) -> DocsUrls:
    """FastAPI's documentation routes, or none of them when the settings hide the docs."""
    if settings.http.expose_docs:
        return {"docs_url": "/docs", "redoc_url": "/redoc", "openapi_url": "/openapi.json"}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def unprocessable(field: str, message: str, kind: str = "value_error") -> JSONResponse:
    """A 422 about one field of the body, shaped like every other validation error."""
    return JSONResponse(
        validation_error_body([error_entry(("body", field), message, kind)]), status_code=422
    )


def validation_error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    fields = sorted({str(e["field"]) for e in errors if "field" in e})
    message = f"invalid input in: {', '.join(fields)}" if fields else "invalid input"
    return {"detail": errors, "message": message}


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [_with_field(dict(e)) for e in exc.errors(include_url=False, include_input=False)]


def error_entry(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    """One validation error, with ``field``: the innermost name in its location."""
    out: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": kind}
    field = next((p for p in reversed(loc) if isinstance(p, str)), None)
    if field is not None:
        out["field"] = field
    return out


def _with_field(error: dict[str, Any]) -> dict[str, Any]:
    return error_entry(error.get("loc", ()), error.get("msg", ""), error.get("type", ""))


def install_error_handlers(app: FastAPI) -> None:
    """422s that name the field, 413 for oversized bodies, and never a stack trace in a response."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            validation_error_body([_with_field(dict(e)) for e in exc.errors()]), status_code=422
        )

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(_: Request, exc: PayloadTooLarge) -> JSONResponse:
        return JSONResponse(
            {"detail": f"request body exceeds {exc.limit} bytes; split it into smaller requests"},
            status_code=413,
        )

    @app.exception_handler(BodyTooLarge)
    async def _cut_off(_: Request, exc: BodyTooLarge) -> JSONResponse:
        # The body limit answers 413 itself; this only keeps the cut-off out of the error log.
        return JSONResponse({"detail": "request body too large"}, status_code=413)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = secrets.token_hex(6)
        # The route's template, never the raw path (ids) or the exception's text (data).
        route = str(getattr(request.scope.get("route"), "path", "unmatched"))
        log.error("unhandled error %s on %s %s", error_id, request.method, route, exc_info=exc)
        return JSONResponse(
            {"detail": "internal error; it has been logged", "error_id": error_id},
            status_code=500,
        )
