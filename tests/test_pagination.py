from datetime import UTC, datetime

import pytest

from services.api.pagination import InvalidCursor, decode_cursor, encode_cursor


def test_cursor_round_trip() -> None:
    ts = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert decode_cursor(encode_cursor(ts, "tx-1")) == (ts, "tx-1")


@pytest.mark.parametrize("cursor", ["", "abc", "!!!", "WyJub3QgYSBkYXRlIiwgIngiXQ"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)
