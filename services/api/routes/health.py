"""Readiness: the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.deps import PoolDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Readiness: database reachable")
async def healthz(pool: PoolDep) -> JSONResponse:
    try:
        ok = await pool.fetchval("SELECT 1") == 1
    except Exception:
        ok = False
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "database": ok}, status_code=200 if ok else 503
    )
