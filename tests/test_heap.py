"""The exporter runs the garbage collector's young passes itself while it polls."""

from __future__ import annotations

import gc
from typing import Any

from exporter import heap


def test_answers_run_young_collections_that_a_balanced_heap_never_starts() -> None:
    # Each answer replaces as many old tracked objects as it makes, so CPython's own
    # trigger (allocations minus deallocations) never fires: Rounds runs one every
    # YOUNG_EVERY answers, and a full one every FULL_EVERY_YOUNG of those.
    seen: list[int] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    rounds = heap.Rounds(accounts=range(10))  # settled already: no freeze in the way
    rounds.settled_size = 10
    old = [(float(i), str(i)) for i in range(heap.YOUNG_EVERY)]
    enabled = gc.isenabled()
    gc.disable()  # only the collections Rounds runs
    gc.callbacks.append(watch)
    try:
        for i in range(heap.YOUNG_EVERY * heap.FULL_EVERY_YOUNG):
            old[i % len(old)] = (float(i), str(i))  # one made, one freed
            rounds.answered()
    finally:
        gc.callbacks.remove(watch)
        if enabled:
            gc.enable()
    assert seen == [0] * (heap.FULL_EVERY_YOUNG - 1) + [2]
