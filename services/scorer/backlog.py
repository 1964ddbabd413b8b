"""Whether the scorer is working off a backlog, from the batches it is handed: a full batch means
more was waiting. Background work that can wait (drift) yields to scoring while it lasts."""

from __future__ import annotations

import time
from collections.abc import Callable

RECENT_S = 5.0  # a full batch longer ago than this says nothing about now


class Backlog:
    def __init__(self, batch_size: int, clock: Callable[[], float] = time.monotonic):
        self.batch_size = batch_size
        self.clock = clock
        self._full_at: float | None = None

    def saw_batch(self, size: int) -> None:
        self._full_at = self.clock() if size >= self.batch_size else None

    def busy(self) -> bool:
        return self._full_at is not None and self.clock() - self._full_at < RECENT_S
