"""Running a FastStream consumer as an ASGI app with /healthz and /metrics beside it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import Scope
from faststream.kafka import KafkaBroker

from services.core.health import database_ok, readiness
from services.core.metrics import metrics_app
from services.core.settings import Settings


def consumer_asgi_app(
    broker: KafkaBroker,
    *,
    lifespan: Callable[..., AbstractAsyncContextManager[None]],
    settings: Settings,
) -> AsgiFastStream:
    """Serve ``broker`` with readiness at /healthz: the broker answers and so does the database.

    The lifespan puts the database pool in the app context under "pool".
    """

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        body, status = readiness(
            {
                "broker": await broker.ping(timeout=2.0),
                "database": await database_ok(app.context.get("pool")),
            }
        )
        return JSONResponse(body, status_code=status)

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", healthz),
            *([("/metrics", metrics_app)] if settings.expose_metrics else []),
        ],
        asyncapi_path="/docs/asyncapi" if settings.expose_docs else None,
        lifespan=lifespan,
    )
    return app
