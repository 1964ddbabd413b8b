"""Keeping Python's cyclic garbage collector off the hot paths."""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default is 700). A 500-transaction batch
# allocates tens of thousands of objects that all die with the batch; at 700 many of them live
# through a collection, are promoted, and make the full collections come sooner (what this and
# the freeze below bought a draining scorer is in bench/results/history.json).
YOUNG_COLLECTION_THRESHOLD = 20_000


def settle_startup_heap() -> None:
    """Call once a service has started: what it built (modules, models, pools; hundreds of
    thousands of objects in the scorer) moves out of the collector's reach for good, and young
    collections come less often. Without the freeze, each full collection walked all of it with
    the event loop and the scoring thread stopped."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
