"""Readiness: the database answers."""

from __future__ import annotations

from services.core.health import database_ok, health_router

router = health_router(
    {"database": lambda request: database_ok(request.app.state.pool)},
    "Readiness: database reachable",
)
