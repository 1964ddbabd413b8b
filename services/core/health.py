"""Readiness, the same for every service: named checks, `ok` only when all of them pass."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

Check = Callable[[Request], Awaitable[bool]]


async def database_ok(pool: Any) -> bool:
    try:
        return pool is not None and await pool.fetchval("SELECT 1") == 1
    except Exception:
        return False


def readiness(checks: Mapping[str, bool]) -> tuple[dict[str, Any], int]:
    """The /healthz body and status code for the results of ``checks``."""
    ok = all(checks.values())
    return {"status": "ok" if ok else "degraded", **checks}, 200 if ok else 503


def health_router(checks: Mapping[str, Check], summary: str) -> APIRouter:
    """A router with GET /healthz running ``checks`` (each given the request)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary=summary)
    async def healthz(request: Request) -> JSONResponse:
        body, status = readiness({name: await check(request) for name, check in checks.items()})
        return JSONResponse(body, status_code=status)

    return router
