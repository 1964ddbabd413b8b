"""The one way tests wait for an eventually consistent pipeline: ``poll_until``."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
def poll_until(
    check: Callable[[], Awaitable[T]],
    *,
    within_s: float = 60,
    every_s: float = 0.3,
    what: str | None = None,
) -> Awaitable[T]: ...


@overload
def poll_until(
    check: Callable[[], T],
    *,
    within_s: float = 60,
    every_s: float = 0.3,
    what: str | None = None,
) -> T: ...


def poll_until(
    check: Callable[[], Any],
    *,
    within_s: float = 60,
    every_s: float = 0.3,
    what: str | None = None,
) -> Any:
    """Call ``check`` every ``every_s`` seconds until it returns something truthy, and return
    that. After ``within_s`` seconds the test fails, naming ``what`` and the last value seen.

    A ``check`` that returns an awaitable makes this a coroutine to await (async tests); a plain
    one makes it block (sync tests, Playwright's sync API)."""
    deadline = time.monotonic() + within_s
    label = what or getattr(check, "__name__", "condition")
    first = check()
    if inspect.isawaitable(first):
        return _poll_async(check, first, deadline, every_s, label, within_s)
    value = first
    while not value:
        _give_up_after(deadline, label, within_s, value)
        time.sleep(every_s)
        value = check()
    return value


async def _poll_async(
    check: Callable[[], Awaitable[Any]],
    first: Awaitable[Any],
    deadline: float,
    every_s: float,
    label: str,
    within_s: float,
) -> Any:
    value = await first
    while not value:
        _give_up_after(deadline, label, within_s, value)
        await asyncio.sleep(every_s)
        value = await check()
    return value


def _give_up_after(deadline: float, label: str, within_s: float, value: object) -> None:
    if time.monotonic() > deadline:
        raise AssertionError(f"{label}: not met within {within_s:g}s (last: {value!r:.300})")
