"""The worker's collector policy: start-up objects frozen, young collections less often."""

from __future__ import annotations

import gc

from monitor.adapters.heap import YOUNG, settle_heap


def test_settle_heap_freezes_what_exists_and_raises_the_young_threshold():
    before = gc.get_threshold()
    alive = [{"start-up": i} for i in range(1000)]  # containers the collector tracks
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(alive)
        assert gc.get_threshold() == (YOUNG, *before[1:])
        assert not any(obj is alive for obj in gc.get_objects())  # frozen: no longer walked by collections
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
