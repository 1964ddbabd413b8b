"""Logging with context: ``log.info("...", extra=ctx(topic=...))`` appends key=value pairs."""

from __future__ import annotations

import logging
import sys
from typing import Any

_CONTEXT_ATTR = "spendstream_context"


def ctx(**fields: Any) -> dict[str, Any]:
    return {_CONTEXT_ATTR: fields}


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, _CONTEXT_ATTR, None)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def configure_logging(level: str = "INFO", *, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ContextFormatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that would otherwise drown the service's own lines.
    for noisy in ("aiokafka", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
