"""The exporter's heap at scale: its own young collections, and what an account keeps."""

from __future__ import annotations

import gc
from typing import Any

from exporter import heap
from exporter.parse import Health, Snapshot
from tests.helpers import account_state


def test_answers_run_young_collections_that_a_balanced_heap_never_starts() -> None:
    # Each answer replaces as many old tracked objects as it makes, so CPython's own
    # trigger (allocations minus deallocations) never fires: Rounds runs one every
    # YOUNG_EVERY answers, and a full one every FULL_EVERY_YOUNG of those.
    seen: list[int] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    rounds = heap.FreezeAfterFirstRound(accounts=range(10))  # settled already: no freeze in the way
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


def test_an_account_keeps_its_answers_as_one_untracked_object_each_that_reads_back_whole() -> None:
    # At 100,000 accounts a snapshot as a tuple of floats and pairs took ~330 bytes, and a
    # tuple stays tracked by the collector until a pass looks at it.
    snapshot = Snapshot(
        "youtube", 120.0, None, 7.0, (("view_count", 5.5),), 1.7e9,
        (("is_verified", 1.0),), (("following", "not provided by the platform"),),
    )  # fmt: skip
    health = Health("degraded", 1.7e9, None, "token_expired", 1.6e9, 'a "quoted" message')
    account = account_state("sa_youtube_1", "youtube", (), 60.0, snapshot=snapshot, health=health)
    assert (account.snapshot, account.health, account.previous) == (snapshot, health, None)
    assert type(account.snapshot) is Snapshot and type(account.health) is Health
    assert not gc.is_tracked(account.snapshot_kept) and not gc.is_tracked(account.health_kept)
    account.health = None
    assert account.health is None and account.snapshot == snapshot
