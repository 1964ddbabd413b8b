"""Readiness: the database answers and the broker is connected."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.ingest.deps import PoolDep, PublisherDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Readiness: database reachable and broker connected")
async def healthz(pool: PoolDep, publisher: PublisherDep) -> JSONResponse:
    broker_ok = await publisher.try_connect()
    try:
        database_ok = await pool.fetchval("SELECT 1") == 1
    except Exception:
        database_ok = False
    body: dict[str, Any] = {"broker": broker_ok, "database": database_ok}
    body["status"] = "ok" if broker_ok and database_ok else "degraded"
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
