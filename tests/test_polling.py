"""The tests' one waiting helper: it returns the first truthy value, and fails naming what."""

from __future__ import annotations

import pytest

from tests.polling import poll_until


def test_blocking_poll_returns_the_first_truthy_value() -> None:
    values = iter([0, None, 7, 8])
    assert poll_until(lambda: next(values), within_s=5, every_s=0) == 7


async def test_async_poll_returns_the_first_truthy_value() -> None:
    values = iter([[], ["row"]])

    async def rows() -> list[str]:
        return next(values)

    assert await poll_until(rows, within_s=5, every_s=0) == ["row"]


async def test_a_poll_that_never_succeeds_fails_naming_what_and_the_last_value() -> None:
    async def count() -> int:
        return 0

    with pytest.raises(AssertionError, match=r"3 rows stored: not met within 0.05s \(last: 0\)"):
        await poll_until(count, within_s=0.05, every_s=0.01, what="3 rows stored")
