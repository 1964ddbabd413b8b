"""The consumer services' shared shape: one lifespan builder, served as an ASGI app with /healthz
and /metrics beside the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from faststream import AckPolicy, ContextRepo
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import Scope
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber

from services.core.consuming import make_batch_decoder
from services.core.db import create_pool
from services.core.health import database_ok, readiness
from services.core.heap import settle_startup_heap
from services.core.lag import watch_lag
from services.core.logging import configure_logging
from services.core.metrics import metrics_app
from services.core.settings import Settings
from services.core.tasks import running


async def _nothing() -> None:
    return None


@dataclass
class Started:
    """What a consumer's ``start`` built: the app-context values its handler takes (by name),
    background work that lives as long as the service, and what to close after it."""

    context: dict[str, Any] = field(default_factory=dict)
    background: Sequence[Coroutine[Any, Any, object]] = ()
    close: Callable[[], Awaitable[None]] = _nothing


Start = Callable[[asyncpg.Pool], Awaitable[Started]]


def transactions_subscriber(
    broker: KafkaBroker,
    settings: Settings,
    *,
    group_id: str,
    max_records: int,
    batch_timeout_ms: int,
    title: str,
    description: str,
    **options: Any,
) -> BatchSubscriber:
    """The batch subscriber every consumer of ``transactions.v1`` uses. Its offsets move only
    through an offsets port (``core/offsets.py``): FastStream's acknowledgement is off, and the
    handler commits exact positions after the database commit. The decoder never raises, so one
    bad message cannot stall its partition."""
    subscriber: BatchSubscriber = broker.subscriber(
        settings.topics.transactions,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=make_batch_decoder(group_id),
        title=title,
        description=description,
        **options,
    )
    return subscriber


def consumer_app(
    broker: KafkaBroker,
    *,
    settings: Settings,
    service: str,
    group_id: str,
    start: Start,
) -> AsgiFastStream:
    """Serve ``broker`` for ``service``. Its lifespan configures logging, opens the database pool,
    calls ``start`` with it, runs the background work and the lag watcher of ``group_id``, and
    closes everything in reverse on the way out. /healthz is ready when the broker and the
    database both answer."""

    @asynccontextmanager
    async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
        configure_logging(settings.logs.level, service=service, tracebacks=settings.logs.tracebacks)
        pool = await create_pool(settings.database.require_url(), size=settings.database.pool_size)
        context.set_global("pool", pool)
        try:
            started = await start(pool)
            for name, value in started.context.items():
                context.set_global(name, value)
            settle_startup_heap()
            try:
                async with running(*started.background, watch_lag(settings, group_id)):
                    yield
            finally:
                await started.close()
        finally:
            await pool.close()

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
            *([("/metrics", metrics_app)] if settings.http.expose_metrics else []),
        ],
        asyncapi_path="/docs/asyncapi" if settings.http.expose_docs else None,
        lifespan=lifespan,
    )
    return app
