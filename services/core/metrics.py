"""Prometheus plumbing shared by the services: an ASGI /metrics app and HTTP request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Histogram,
    generate_latest,
    make_asgi_app,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp

metrics_app: ASGIApp = make_asgi_app()

HTTP_REQUESTS = Counter(
    "spendstream_http_requests_total",
    "HTTP requests by service, route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "spendstream_http_request_duration_seconds",
    "HTTP request latency by service and route template.",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def _route_template(request: Request) -> str:
    # The template, never the raw path, keeps ids out of label values.
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"


def install_metrics(app: FastAPI, service: str) -> None:
    """Serve /metrics and record every request's route, status and latency."""

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.middleware("http")(http_metrics_middleware(service))


def http_metrics_middleware(
    service: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_template(request)
            HTTP_LATENCY.labels(service, route).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(service, route, request.method, str(status)).inc()

    return middleware
