"""Per-key request limits, with the ``limits`` library's sliding-window counter in memory.

Each service process counts on its own, so N replicas allow up to N times the rate: the limit
protects a process from one key's flood, it is no quota.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter


class RateLimiter:
    def __init__(self, rate: str):
        self.item: RateLimitItem = parse(rate)
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def retry_after(self, key: str) -> int | None:
        """Count a request for ``key``: None if it may go ahead, else whole seconds to wait."""
        if await self._limiter.hit(self.item, key):
            return None
        stats = await self._limiter.get_window_stats(self.item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))
