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

# Middle-generation collections per full one: CPython's default, and ours once settled.
DEFAULT_FULL_EVERY = 10
FULL_EVERY = 1


def settle() -> None:
    """Call when many long-lived objects were just built (the accounts at start, after a
    reload, after a listing added accounts): collect what is garbage now, then keep
    everything still alive out of later scans. Frozen objects are still freed when
    their last reference goes; only a reference cycle among them would outlive it, so
    this is not called while much short-lived work is in flight."""
    gc.collect()
    gc.freeze()
    # What a poll leaves behind is mostly nested tuples, which the collector untracks only
    # after a few passes; a full collection every 10 young ones let ~20 s of them pile up
    # into pauses of 25-35 ms at 30,000 accounts. With the long-lived heap frozen a full
    # collection is cheap, so run it at every middle one: 10-14 ms at most.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)


def release() -> None:
    """Undo settle() (the exporter stops): everything is scanned again."""
    gc.unfreeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, DEFAULT_FULL_EVERY)
