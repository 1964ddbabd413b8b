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


def test_a_keyset_page_ends_with_the_cursor_of_its_last_row() -> None:
    from services.api.pagination import BY_SCORE, BY_TIME

    rows = [{"score": 0.9 - i / 10, "transaction_id": f"t{i}"} for i in range(3)]
    page, cursor = BY_SCORE.page(rows, 2)
    assert [r["transaction_id"] for r in page] == ["t0", "t1"]
    assert cursor is not None and BY_SCORE.decode(cursor) == (0.8, "t1")
    assert BY_SCORE.page(rows, 3) == (rows, None), "the last page has no next cursor"
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    rows = [{"ts": when, "transaction_id": "a"}, {"ts": when, "transaction_id": "b"}]
    _, cursor = BY_TIME.page(rows, 1)
    assert cursor is not None and BY_TIME.decode(cursor) == (when, "a")
