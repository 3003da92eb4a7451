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


def settle() -> None:
    """Call when many long-lived objects were just built (the accounts at start, after a
    reload, after a listing added accounts): collect what is garbage now, then keep
    everything still alive out of later scans. Frozen objects are still freed when
    their last reference goes; only a reference cycle among them would outlive it, so
    this is not called while much short-lived work is in flight."""
    gc.collect()
    gc.freeze()


def release() -> None:
    """Undo settle() (the exporter stops): everything is scanned again."""
    gc.unfreeze()
