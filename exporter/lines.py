"""Each account's /metrics lines, rendered when the account changes (StoreLines, one per
store): a scrape of the exposition (exposition.py) only joins their bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from itertools import compress
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter import heap
from exporter.collector import (
    ACCOUNT_FAMILIES,
    HEALTH,
    SNAPSHOT,
    STATE,
    TALLIES,
    Family,
    account_labels,
)
from exporter.parse import Snapshot
from exporter.store import AccountState, Store, unpack


def openmetrics_text(registry: CollectorRegistry) -> bytes:
    body: bytes = openmetrics_latest(registry)  # type: ignore[no-untyped-call]
    return body


# prometheus_client's own float formatting (`1.0`, `1.777401e+09`, `+Inf`), typed.
go_float: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    # As prometheus_client escapes label values.
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))


def _after(pairs: Iterable[tuple[str, str]]) -> str:
    """Labels that follow others: each with its leading comma."""
    text = label_text(pairs)
    return "," + text if text else ""


class _OneFamily(Collector):
    def __init__(self, family: Family) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [Metric(self.family.name, self.family.help, self.family.type)]


def family_header(family: Family, openmetrics: bool) -> bytes:
    """The HELP and TYPE lines prometheus_client writes for an empty family."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OneFamily(family))
    if openmetrics:
        return openmetrics_text(registry).removesuffix(b"# EOF\n")
    return text_latest(registry)


_NEVER = object()
# Rows per rendered piece: some tens of kilobytes, so that the buffer table CPython builds
# for a join stays within glibc's heap instead of being mapped afresh at every join.
ROWS_PER_CHUNK = 512
# Joined pieces are kept for the next scrape when their rows did not change at the last one
# either: a store's lines change mostly in one family (the poll's time), so most pieces are
# reused. Only while the store's lines take at most this much (~19,000 accounts): kept
# pieces cost as much memory as they save joins, and on larger expositions the send, not
# the join, bounds a scrape (the render runs while the client reads).
REUSED_BYTES = 16 * 1024 * 1024
# Which families each change key covers (indexes into ACCOUNT_FAMILIES).
_FAMILIES_BY_INPUTS = {
    inputs: [i for i, family in enumerate(ACCOUNT_FAMILIES) if family.inputs == inputs]
    for inputs in (SNAPSHOT, STATE, TALLIES, HEALTH)
}
# Each snapshot family, with the index of the Snapshot field it shows: a new snapshot
# re-renders only the families whose field changed (usually just fetched_at), not all six.
_FIELD_FAMILIES = [
    (Snapshot._fields.index(ACCOUNT_FAMILIES[i].field), i) for i in _FAMILIES_BY_INPUTS[SNAPSHOT]
]
# Families whose lines repeat across accounts but for the account ID (a status, an
# interval, a count of failures, an info line without a name, as configured accounts have
# until a listing names them): their tails are shared objects, not one per account.
_SHARED_TAILS = frozenset(
    i
    for i, family in enumerate(ACCOUNT_FAMILIES)
    if family.name
    in {
        "unipost_account_status",
        "unipost_account_info",
        "unipost_account_poll_interval_seconds",
        "unipost_account_consecutive_failures",
        "unipost_account_health_status",
    }
)
# Label sets whose labels after account_id are kept worked out (then the table starts over).
_AFTERS_MAX = 4096
# What a row's lines were last rendered from: these are compared with the account's own.
# _WIDTH values a row: (platform, labels), snapshot, tallies, health, then the state (_meta).
_KEY, _SNAPSHOT, _TALLIES, _HEALTH, _META = slice(0, 2), 2, 3, 4, slice(5, 9)
_WIDTH = 9
_GONE_ROW = (None,) * _WIDTH  # a row whose account left (no platform is None)
PREFIXES = [(family.sample + "{").encode() for family in ACCOUNT_FAMILIES]
_NO_TALLIES: tuple[tuple[tuple[str, int], ...], ...] = ((), ())
_ID_LABEL = "account_id"
# A row's head (its labels up to account_id) and its afters (the labels after account_id,
# each with its leading comma: one object shared by the accounts of a platform and label
# set); then one column of tails per family.
HEADS, _AFTERS, TAILS = 0, 1, 2
# The families with no label of their own: their one line is the head, the afters, then
# the tail (`} value`). The others carry the afters in their tails, after their own label.
_ENDS_AFTER = [not family.label for family in ACCOUNT_FAMILIES]
# The tail columns whose lines each of the two columns before them is part of.
_TAILS_WITH = {
    HEADS: [TAILS + i for i in range(len(ACCOUNT_FAMILIES))],
    _AFTERS: [TAILS + i for i, ends in enumerate(_ENDS_AFTER) if ends],
}


def _snapshot_changes(before: object, after: Snapshot | None) -> list[int]:
    """The snapshot families to re-render when the kept snapshot went from `before` (packed,
    see store.pack) to `after` (read through the account, which keeps it for the families
    re-rendered next)."""
    if not isinstance(before, bytes) or after is None:
        return _FAMILIES_BY_INPUTS[SNAPSHOT]  # none before, none now, or never rendered
    was = unpack(before)
    return [family for field, family in _FIELD_FAMILIES if was[field] != after[field]]


def _meta(account: AccountState) -> tuple[str, str, float, int]:
    # The status as a plain, shared str: an enum member would keep the row's tuple tracked
    # by the garbage collector.
    status = sys.intern(str(account.status))
    return (status, account.account_name, account.interval, account.consecutive_failures)


def _tallies(account: AccountState) -> tuple[tuple[tuple[str, int], ...], ...]:
    if not account.upstream_failures and not account.api_errors:
        return _NO_TALLIES
    return (tuple(account.upstream_failures.items()), tuple(account.api_errors.items()))


_FRESH = (_NEVER,) * 7


def _join(
    name: bytes, heads: list[bytes], afters: list[bytes] | None, tails: list[bytes], full: bool
) -> bytes:
    """Name, head, afters (unless None) and tail of every row that has lines (`full`: every
    row has), as one piece. Laid out by slice assignment and joined: no Python code runs per
    line (3x faster than chaining zips)."""
    if not full:
        heads = list(compress(heads, tails))
        afters = None if afters is None else list(compress(afters, tails))
        tails = list(filter(None, tails))
    step = 3 if afters is None else 4
    pieces = [name] * (step * len(tails))
    pieces[1::step] = heads
    if afters is not None:
        pieces[2::step] = afters
    pieces[step - 1 :: step] = tails
    return b"".join(pieces)


def _row_of(account: AccountState) -> int:
    assert account.row is not None
    return account.row


def _bump(counts: list[int], chunk: int, by: int) -> None:
    """Add `by` to a per-chunk count, the list grown to reach the chunk."""
    if chunk >= len(counts):
        counts.extend([0] * (chunk + 1 - len(counts)))
    counts[chunk] += by


class StoreLines:
    """One store's pre-rendered lines, by columns: a row per account, in store order.

    Every line of an account starts with its family's name, then the account's *head*: the
    labels up to and including account_id, which sort before every family's own label. A
    row keeps the head once, and per family the *tail*: the rest of the account's lines
    (b"" when it has none). A scrape joins name, head and tail per line, a column at a time.
    A family with no label of its own has one line: name, head, the row's *afters* (the
    labels after account_id: platform, workspace...), then a tail of just `} value`. The
    afters are one object for every account of a platform and label set, so no account
    keeps a second head. Tails that repeat across accounts are shared (_SHARED_TAILS).

    A scrape reads the columns in place (`read()`), as they were when it began: while one
    reads, changes to existing rows wait in `_pending` and are written when the last reader
    is done: no copy of the columns, which would stall the loop and give the garbage
    collector a second set to scan.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # Each row's inputs, _WIDTH values a row in one flat list (not a tuple a row).
        self.inputs: list[Any] = []
        # The heads and afters, then each family's tails (TAILS + family index).
        self.columns: list[list[bytes]] = [[] for _ in range(TAILS + len(ACCOUNT_FAMILIES))]
        # Per tail column, per ROWS_PER_CHUNK rows: how many are not b"". A scrape skips
        # the chunks of a family no account has lines of (flags, failures, unread health).
        self.filled: list[list[int]] = [[] for _ in self.columns]
        # Per tail column, the bytes its lines take but for the family's name: head and tail
        # of every row that has lines. A scrape knows its length before its first byte.
        self.sizes = [0] * len(self.columns)
        # Per column, per ROWS_PER_CHUNK rows: how often a value in it was written.
        self.versions: list[list[int]] = [[] for _ in self.columns]
        # Joined pieces kept (see REUSED_BYTES), and the versions each piece had when last
        # joined: (tail column, chunk) -> (tail, head[, afters] versions), piece.
        self._reused: dict[tuple[int, int], tuple[tuple[int, ...], bytes]] = {}
        self._reusing = False  # this scrape keeps pieces (set by length())
        self._joined_at: dict[tuple[int, int], tuple[int, ...]] = {}
        self._shared = heap.Interner[bytes]()
        self._afters: dict[Any, list[tuple[str, str]]] = {}
        self._gone = 0
        self._readers = 0
        self._pending: dict[tuple[int, int], bytes] = {}  # (column, row) -> value
        for account in store.accounts.values():
            account.row = None  # a row in lines no longer followed (detached) is not one here
            self.account_changed(account)
        store.listeners.append(self)

    @classmethod
    def of(cls, store: Store) -> StoreLines:
        """The store's lines: one per store, as each account keeps its row on itself."""
        for listener in store.listeners:
            if isinstance(listener, StoreLines):
                return listener
        return cls(store)

    def account_changed(self, account: AccountState) -> None:
        """Re-render the families whose inputs changed for this account."""
        row = account.row
        if row is None:
            row = account.row = len(self.inputs) // _WIDTH
            self.inputs.extend(_GONE_ROW)
            for column in self.columns:
                column.append(b"")  # past the rows a reader reads
        key = (account.platform, account.labels)
        start = row * _WIDTH
        was = tuple(self.inputs[start : start + _WIDTH])
        fresh = was[_KEY] != key  # a new row, or new labels: render it all
        if fresh:
            was = (*key, *_FRESH)
        meta, tallies = _meta(account), _tallies(account)
        # Unchanged tallies stay the very objects the row holds: compared by identity below.
        tallies = was[_TALLIES] if tallies == was[_TALLIES] else tallies
        changed: list[int] = []
        if account.snapshot_kept is not was[_SNAPSHOT]:
            changed.extend(_snapshot_changes(was[_SNAPSHOT], account.snapshot))
        if meta != was[_META]:
            changed.extend(_FAMILIES_BY_INPUTS[STATE])
        if tallies is not was[_TALLIES]:
            changed.extend(_FAMILIES_BY_INPUTS[TALLIES])
        if account.health_kept is not was[_HEALTH]:
            changed.extend(_FAMILIES_BY_INPUTS[HEALTH])
        if not changed:
            return
        if fresh:
            pairs = sorted(account_labels(account).items())
            cut = [name for name, _ in pairs].index(_ID_LABEL) + 1
            self._write(HEADS, row, label_text(pairs[:cut]).encode())
            self._write(_AFTERS, row, self._shared(_after(pairs[cut:]).encode()))
        after = self._after_of(account, key)
        for index in changed:
            self._write(TAILS + index, row, self._tail(index, account, row, after))
        self.inputs[start : start + _WIDTH] = (
            *key, account.snapshot_kept, tallies, account.health_kept, *meta
        )  # fmt: skip

    def _after_of(
        self, account: AccountState, key: tuple[str, tuple[tuple[str, str], ...]]
    ) -> list[tuple[str, str]]:
        """The account's labels that sort after account_id, as every family's own label does
        (field, status, code...): the same for every account of a platform and label set,
        so they are worked out once per key, not per poll."""
        known = self._afters.get(key)
        if known is None:
            if len(self._afters) >= _AFTERS_MAX:
                self._afters.clear()
            labels = sorted(account_labels(account).items())
            known = self._afters[key] = [pair for pair in labels if pair[0] > _ID_LABEL]
        return known

    def _tail(self, index: int, account: AccountState, row: int, after: list[Any]) -> bytes:
        """The family's lines for this account, less its name and head on the first line."""
        family = ACCOUNT_FAMILIES[index]
        if not family.label:  # one line at most, after the head and the afters
            samples = family.samples(account)
            text = f"}} {go_float(samples[0][1])}\n" if samples else ""
        else:
            lines = [
                _after([*after, extra] if extra else after) + "} " + go_float(value) + "\n"
                for extra, value in family.samples(account)
            ]
            if len(lines) > 1:  # the later lines whole: name and head, then as the first
                head = self._pending.get((HEADS, row), self.columns[HEADS][row]).decode()
                text = (family.sample + "{" + head).join(lines)
            else:
                text = "".join(lines)
        encoded = text.encode()
        return self._shared(encoded) if index in _SHARED_TAILS else encoded

    def account_removed(self, account: AccountState) -> None:
        """Forget an account: its series disappear from the next scrape."""
        row, account.row = account.row, None
        if row is None:
            return
        self.inputs[row * _WIDTH : (row + 1) * _WIDTH] = _GONE_ROW
        for column in range(len(self.columns)):
            self._write(column, row, b"")
        self._gone += 1
        self._compact()

    def _write(self, column: int, row: int, value: bytes) -> None:
        if self._readers:
            self._pending[column, row] = value
        else:
            self._set(column, row, value)

    def _set(self, column: int, row: int, value: bytes) -> None:
        cells = self.columns[column]
        old = cells[row]
        cells[row] = value
        chunk = row // ROWS_PER_CHUNK
        _bump(self.versions[column], chunk, 1)
        if column < TAILS:  # head or afters: the size of every line they are part of changes
            if len(value) != len(old):
                for tails in _TAILS_WITH[column]:
                    if self.columns[tails][row]:
                        self.sizes[tails] += len(value) - len(old)
            return
        head = self._before_tail(column - TAILS, row)
        self.sizes[column] += (len(value) + head if value else 0) - (len(old) + head if old else 0)
        if bool(old) != bool(value):  # a row's lines appear or go
            _bump(self.filled[column], chunk, 1 if value else -1)

    def _before_tail(self, index: int, row: int) -> int:
        """The bytes of family `index`'s first line before its tail, but for its name."""
        head = len(self.columns[HEADS][row])
        return head + len(self.columns[_AFTERS][row]) if _ENDS_AFTER[index] else head

    def joined(self, index: int, chunk: int, rows: int, count: int) -> bytes:
        """Family `index`'s lines of one chunk of rows (`count` of them have lines), reused
        when none of its rows changed since it was kept."""
        column, ends_after = TAILS + index, _ENDS_AFTER[index]
        version = tuple(
            versions[chunk] if chunk < len(versions) else 0
            for versions in (
                self.versions[column],
                self.versions[HEADS],
                self.versions[_AFTERS] if ends_after else (),
            )
        )
        key = (column, chunk)
        kept = self._reused.pop(key, None)
        if kept is not None and kept[0] == version:
            self._reused[key] = kept
            return kept[1]
        start = chunk * ROWS_PER_CHUNK
        end = min(start + ROWS_PER_CHUNK, rows)
        columns = self.columns
        piece = _join(
            PREFIXES[index], columns[HEADS][start:end],
            columns[_AFTERS][start:end] if ends_after else None, columns[column][start:end],
            count == end - start,
        )  # fmt: skip
        # Kept only once it came out the same twice: one that changes at every scrape would
        # be kept for nothing.
        if self._joined_at.get(key) == version and self._reusing:
            self._reused[key] = (version, piece)
        self._joined_at[key] = version
        return piece

    def length(self, prefixes: list[bytes]) -> int:
        """The bytes of this store's lines, each family's name included (`prefixes`); it
        also decides whether this scrape keeps pieces for the next (REUSED_BYTES)."""
        total = sum(
            self.sizes[TAILS + i] + sum(self.filled[TAILS + i]) * len(prefix)
            for i, prefix in enumerate(prefixes)
        )
        self._reusing = total <= REUSED_BYTES
        if not self._reusing:
            self._reused.clear()
        return total

    def read(self) -> int:
        """How many rows to read; the columns stay as they are until `done()`."""
        self._readers += 1
        return len(self.inputs) // _WIDTH

    def done(self) -> None:
        """A reader is done: write what waited for it."""
        self._readers -= 1
        if self._readers:
            return
        for (column, row), value in self._pending.items():
            self._set(column, row, value)
        self._pending.clear()
        self._compact()

    def _compact(self) -> None:
        """Once half the rows are of accounts that left, drop those, keeping the others'
        order (not while a scrape reads them)."""
        if self._gone <= len(self.inputs) // _WIDTH // 2 or self._readers:
            return
        accounts = sorted(
            (account for account in self.store.accounts.values() if account.row is not None),
            key=_row_of,
        )
        kept = [_row_of(account) for account in accounts]
        inputs = self.inputs
        self.inputs = [value for row in kept for value in inputs[row * _WIDTH : (row + 1) * _WIDTH]]
        self.columns = [[column[row] for row in kept] for column in self.columns]
        self.filled = [
            [sum(1 for value in column[start : start + ROWS_PER_CHUNK] if value)
             for start in range(0, len(column), ROWS_PER_CHUNK)]
            for column in self.columns
        ]  # fmt: skip
        self.versions = [[] for _ in self.columns]
        self._reused.clear()
        self._joined_at.clear()
        self.sizes = [0] * len(self.columns)
        for index in range(len(ACCOUNT_FAMILIES)):
            tails = self.columns[TAILS + index]
            self.sizes[TAILS + index] = sum(
                self._before_tail(index, row) + len(tail) for row, tail in enumerate(tails) if tail
            )
        for row, account in enumerate(accounts):
            account.row = row
        self._gone = 0

    def detach(self) -> None:
        """Stop following the store (it left the config)."""
        self.store.listeners.remove(self)
