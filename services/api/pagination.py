"""Opaque keyset cursors: the (timestamp, id) of the last row of a page."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson


class InvalidCursor(ValueError):
    pass


def encode_cursor(ts: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts.isoformat(), key])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        ts, key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(ts)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None
    if parsed.tzinfo is None or not isinstance(key, str):
        raise InvalidCursor("cursor is not one this API returned")
    return parsed, key
