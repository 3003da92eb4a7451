"""The garbage collector at 100,000 accounts.

CPython's full collection scans every container object that is alive: at 100,000 accounts
the accounts, their configs and the dictionaries that index them make a scan of ~80 ms,
which stalls polls and scrapes whenever one runs. Those objects live as long as their
accounts, so once they are built they are moved out of the collector's scans
(`gc.freeze()`); what churns per poll (snapshots, rendered lines) is kept in plain tuples and
bytes, which the collector does not scan at all.
"""

from __future__ import annotations

import gc
from collections.abc import Hashable, Sized
from typing import Generic, TypeVar

# Middle-generation collections per full one: CPython's default, and ours once settled.
DEFAULT_FULL_EVERY = 10
FULL_EVERY = 1
# Accounts added since the last freeze that make it worth freezing again after their round.
SETTLE_AFTER = 1000
# Answers per young collection run by FreezeAfterFirstRound, and young ones per full one.
YOUNG_EVERY = 256
FULL_EVERY_YOUNG = 10


def collect_and_freeze() -> None:
    """Call when many long-lived objects were just built (the accounts at start, before
    polling; after a reload, while it runs): collect what is garbage now, then keep
    everything still alive out of later scans. Frozen objects are still freed when their
    last reference goes; only a reference cycle among them would outlive it, which is at
    most the few requests in flight at a reload."""
    gc.collect()
    freeze()
    # What a poll leaves behind is mostly nested tuples, which the collector untracks only
    # after a few passes: with CPython's one full collection per 10 middle ones they pile
    # up into long pauses. With the long-lived heap frozen a full collection is cheap, so
    # run it at every middle one.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)


def freeze() -> None:
    """Like collect_and_freeze(), without the collection (its pause): for while polls run,
    when a round of them has just built every account's first snapshot and rendered lines.
    Garbage in a reference cycle at this moment (a few in-flight requests' worth) is never
    collected."""
    gc.freeze()
    # Then a full collection of what is left (little: cheap). CPython runs a full one only
    # once a quarter as many objects as survived the last have piled up; the last counted
    # the frozen ones, so without this a pile of ~25% of the heap would wait to be scanned.
    gc.collect()


def release() -> None:
    """Undo collect_and_freeze() (the exporter stops): everything is scanned again."""
    gc.unfreeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, DEFAULT_FULL_EVERY)


class FreezeAfterFirstRound:
    """Freezes the heap once a round of answers has come since the store last grew (at
    start, or after a listing added many accounts): their first snapshots and rendered
    lines are built then, and stay."""

    def __init__(self, accounts: Sized) -> None:
        self.accounts = accounts
        self.answers = 0
        self.settled_size = 0
        self._collections = 0

    def answered(self) -> None:
        """One more answer was applied.

        Every YOUNG_EVERY answers this runs a young collection itself. CPython starts one
        only when allocations outrun deallocations by 700, and a poll frees as many tracked
        objects as it makes (its new snapshot replaces an old, frozen one): without this the
        new tuples would pile up in the young generation into one long collection.
        """
        self.answers += 1
        if self.answers % YOUNG_EVERY == 0:
            self._collections += 1
            gc.collect(2 if self._collections % FULL_EVERY_YOUNG == 0 else 0)
        size = len(self.accounts)
        if self.answers >= size > self.settled_size + SETTLE_AFTER:
            self.answers, self.settled_size = 0, size
            freeze()


V = TypeVar("V", bound=Hashable)


class Interner(Generic[V]):
    """One object for equal values made apart (a rate, a rendered line): `interner(value)`
    returns the first equal value it was given. At most `bound` are held, then the table
    starts over: a bound, not a cache size that matters, as the values that repeat across
    accounts are few and unique ones just pass through."""

    def __init__(self, bound: int = 4096) -> None:
        self.bound = bound
        self._table: dict[V, V] = {}

    def __call__(self, value: V) -> V:
        if len(self._table) >= self.bound:
            self._table.clear()
        return self._table.setdefault(value, value)
