"""Readiness: the database answers and the broker is connected."""

from __future__ import annotations

from services.core.health import database_ok, health_router

router = health_router(
    {
        "broker": lambda request: request.app.state.publisher.try_connect(),
        "database": lambda request: database_ok(request.app.state.pool),
    },
    "Readiness: database reachable and broker connected",
)
