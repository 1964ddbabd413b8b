import gc

from services.core.heap import YOUNG_COLLECTION_THRESHOLD, settle_startup_heap


def test_settling_freezes_what_startup_built_and_spaces_young_collections() -> None:
    before = gc.get_threshold()
    built_at_startup = [[i] for i in range(10_000)]  # lists: objects the collector tracks
    try:
        settle_startup_heap()
        assert gc.get_freeze_count() >= len(built_at_startup)
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
