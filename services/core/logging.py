"""Logging with context: ``log.info("...", extra=ctx(topic=...))`` appends key=value pairs."""

from __future__ import annotations

import logging
import sys
from typing import Any

_CONTEXT_ATTR = "spendstream_context"


def ctx(**fields: Any) -> dict[str, Any]:
    return {_CONTEXT_ATTR: fields}


class ContextFormatter(logging.Formatter):
    """Appends the context fields. Unless ``tracebacks``, an exception shows as its type alone:
    a trace can carry request data and secrets' neighbours, so it is kept for debugging."""

    def __init__(self, fmt: str, *, tracebacks: bool = False):
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        error_type = None
        if record.exc_info and not self.tracebacks:
            error_type = record.exc_info[0].__name__ if record.exc_info[0] else None
            record = logging.makeLogRecord(
                {**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None}
            )
        line = super().format(record)
        fields = dict(getattr(record, _CONTEXT_ATTR, None) or {})
        if error_type:
            fields["error_type"] = error_type
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def configure_logging(level: str = "INFO", *, service: str, tracebacks: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ContextFormatter(
            f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s", tracebacks=tracebacks
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that would otherwise drown the service's own lines.
    for noisy in ("aiokafka", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
