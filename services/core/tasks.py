"""Background work of the services: periodic steps that survive their own failures, and tasks
that live as long as a service's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NoReturn

log = logging.getLogger(__name__)


async def repeat(
    step: Callable[[], Awaitable[object]], *, every_s: Callable[[], float], what: str
) -> NoReturn:
    """Run ``step`` forever, pausing ``every_s()`` seconds between runs; a failure is logged and
    the next run tries again."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying", what)
        await asyncio.sleep(every_s())


@asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, object]) -> AsyncIterator[None]:
    """Run the coroutines as tasks for the duration of the block, then cancel them."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
