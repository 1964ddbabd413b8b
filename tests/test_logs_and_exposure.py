"""What the services reveal: no stack traces in logs unless asked, docs and metrics on demand."""

from __future__ import annotations

import logging
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.app import create_app as create_api
from services.core.http import install_error_handlers
from services.core.logging import ContextFormatter, ctx
from services.core.settings import Settings
from services.ingest.app import create_app as create_ingest


def formatted(tracebacks: bool) -> str:
    formatter = ContextFormatter("%(levelname)s %(message)s", tracebacks=tracebacks)
    try:
        raise ValueError("card 4111 1111 1111 1111 rejected")  # data a trace would carry
    except ValueError:
        error = sys.exc_info()
    record = logging.getLogger("t").makeRecord(
        "t", logging.ERROR, __file__, 1, "store failed", (), error, extra=ctx(partition=3)
    )
    return formatter.format(record)


def test_an_exception_logs_its_type_and_context_not_its_trace_or_text() -> None:
    line = formatted(tracebacks=False)
    assert line == "ERROR store failed partition=3 error_type=ValueError"
    assert "Traceback" in formatted(tracebacks=True), "the debug setting brings traces back"


def test_a_500_names_an_error_id_and_logs_no_trace(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom/{item}")
    async def boom(item: str) -> None:
        raise RuntimeError(f"secret detail about {item}")

    with caplog.at_level(logging.ERROR):
        response = TestClient(app, raise_server_exceptions=False).get("/boom/tx-123")
    assert response.status_code == 500
    error_id = response.json()["error_id"]
    assert "secret detail" not in response.text and "Traceback" not in response.text
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == f"unhandled error {error_id} on GET /boom/{{item}}"


@pytest.mark.parametrize("create_app", [create_api, create_ingest], ids=["api", "ingest"])
def test_docs_and_metrics_are_served_unless_turned_off(create_app) -> None:  # type: ignore[no-untyped-def]
    shown = TestClient(create_app(Settings()))
    for path in ("/docs", "/openapi.json", "/metrics"):
        assert shown.get(path).status_code == 200, path
    hidden = TestClient(create_app(Settings(expose_docs=False, expose_metrics=False)))
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        assert hidden.get(path).status_code in (401, 404), path
