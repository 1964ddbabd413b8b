"""Opaque keyset cursors: the sort key of the last row of a page."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

K = TypeVar("K")


class InvalidCursor(ValueError):
    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned")


def _encode(parts: list[object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def _decode(cursor: str) -> list[object]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor() from None
    if not isinstance(parts, list) or len(parts) != 2 or not isinstance(parts[1], str):
        raise InvalidCursor()
    return parts


def encode_cursor(ts: datetime, key: str) -> str:
    return _encode([ts.isoformat(), key])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    first, key = _decode(cursor)
    try:
        ts = datetime.fromisoformat(str(first))
    except ValueError:
        raise InvalidCursor() from None
    if not isinstance(first, str) or ts.tzinfo is None:
        raise InvalidCursor()
    return ts, str(key)


def encode_score_cursor(score: float, key: str) -> str:
    return _encode([score, key])


def decode_score_cursor(cursor: str) -> tuple[float, str]:
    score, key = _decode(cursor)
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        raise InvalidCursor()
    return float(score), str(key)


@dataclass(frozen=True)
class Keyset(Generic[K]):
    """One way of paging a list: the row column it is ordered by (then transaction_id, both
    descending), and that column's cursor. Both lists page through it."""

    column: str
    encode: Callable[[K, str], str]
    decode: Callable[[str], tuple[K, str]]

    def page(self, rows: Sequence[Any], limit: int) -> tuple[list[Any], str | None]:
        """The first ``limit`` of ``rows`` (fetched ``limit + 1``) and the next page's cursor,
        None on the last page."""
        if len(rows) <= limit:
            return list(rows), None
        last = rows[limit - 1]
        return list(rows[:limit]), self.encode(last[self.column], last["transaction_id"])


BY_TIME = Keyset("ts", encode_cursor, decode_cursor)
BY_SCORE = Keyset("score", encode_score_cursor, decode_score_cursor)
