"""The fast /metrics body: each account's lines are rendered when the account changes, so a
scrape only joins bytes. Output is byte-for-byte what prometheus_client renders for the same
store (tests compare them); exporter-wide families are rendered by prometheus_client itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.collector import (
    ACCOUNT_FAMILIES,
    ERRORS_FAMILY,
    HEALTH,
    SNAPSHOT,
    STATE,
    TALLIES,
    Family,
    account_labels,
    discovery_error_samples,
)
from exporter.parse import Snapshot
from exporter.store import AccountState, Store, StoreSource


def _openmetrics(registry: CollectorRegistry) -> bytes:
    body: bytes = openmetrics_latest(registry)  # type: ignore[no-untyped-call]
    return body


# prometheus_client's own float formatting (`1.0`, `1.777401e+09`, `+Inf`), typed.
_go_float: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    # As prometheus_client escapes label values.
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))


class _OneFamily(Collector):
    def __init__(self, family: Family) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [Metric(self.family.name, self.family.help, self.family.type)]


def _header(family: Family, openmetrics: bool) -> bytes:
    """The HELP and TYPE lines prometheus_client writes for an empty family."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OneFamily(family))
    if openmetrics:
        return _openmetrics(registry).removesuffix(b"# EOF\n")
    return text_latest(registry)


_NEVER = object()
# Accounts per rendered piece: ~100 bytes a line, so a piece is a fraction of a megabyte.
ACCOUNTS_PER_CHUNK = 2048
# Which families each change key covers (indexes into ACCOUNT_FAMILIES).
_FAMILIES_BY_INPUTS = {
    inputs: [i for i, family in enumerate(ACCOUNT_FAMILIES) if family.inputs == inputs]
    for inputs in (SNAPSHOT, STATE, TALLIES, HEALTH)
}
# One account's entry: what its lines were last rendered from, then its lines, one bytes per
# family. A tuple of plain values, replaced whole on a change: a scrape can take every
# entry in one cheap step and read them while polls go on, and the garbage collector stops
# scanning it (at 100,000 accounts, scanning objects per account costs pauses of 100 ms).
# The label text is not kept: it is rebuilt when a line is (a few microseconds a poll), which
# saves ~280 bytes an account.
_KEY, _SNAPSHOT, _META, _TALLIES, _HEALTH = range(5)
_FIRST_LINE = 5
_line_of = [itemgetter(_FIRST_LINE + i) for i in range(len(ACCOUNT_FAMILIES))]
# Each snapshot family, with the index of the Snapshot field it shows: a new snapshot
# re-renders only the families whose field changed (usually just fetched_at), not all six.
_FIELD_FAMILIES = [
    (Snapshot._fields.index(ACCOUNT_FAMILIES[i].field), i) for i in _FAMILIES_BY_INPUTS[SNAPSHOT]
]


def _snapshot_changes(before: object, after: tuple[Any, ...] | None) -> list[int]:
    """The snapshot families to re-render when the kept snapshot went from before to after."""
    if not isinstance(before, tuple) or after is None:
        return _FAMILIES_BY_INPUTS[SNAPSHOT]  # none before, none now, or never rendered
    return [family for field, family in _FIELD_FAMILIES if before[field] != after[field]]


def _meta(account: AccountState) -> tuple[str, str, float, int]:
    return (
        str(account.status),
        account.account_name,
        account.interval,
        account.consecutive_failures,
    )


def _tallies(account: AccountState) -> tuple[tuple[tuple[str, int], ...], ...]:
    return (
        tuple(account.upstream_failures.items()) if account.upstream_failures else (),
        tuple(account.api_errors.items()) if account.api_errors else (),
    )


def _fresh_entry(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """An entry from which every family will be rendered: sentinels that never equal an
    account's values, and no lines yet."""
    return (key, _NEVER, _NEVER, _NEVER, _NEVER) + (b"",) * len(ACCOUNT_FAMILIES)


class _StoreLines:
    """One store's pre-rendered lines: account id -> its entry (see _KEY ... _FIRST_LINE)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entries: dict[str, tuple[Any, ...]] = {}
        for account in store.accounts.values():
            self.account_changed(account)
        store.listeners.append(self)

    def account_changed(self, account: AccountState) -> None:
        """Re-render the families whose inputs changed for this account."""
        entry: tuple[Any, ...] | None = self.entries.get(account.id)
        key = (account.platform, account.labels)
        if entry is None or entry[_KEY] != key:
            entry = _fresh_entry(key)
        key = entry[_KEY]
        changed: list[int] = []
        meta, tallies = _meta(account), _tallies(account)
        # Unchanged parts stay the very objects the entry holds (see _keep in scheduler.py).
        meta = entry[_META] if meta == entry[_META] else meta
        tallies = entry[_TALLIES] if tallies == entry[_TALLIES] else tallies
        if account.snapshot_kept is not entry[_SNAPSHOT]:
            changed.extend(_snapshot_changes(entry[_SNAPSHOT], account.snapshot_kept))
        if meta != entry[_META]:
            changed.extend(_FAMILIES_BY_INPUTS[STATE])
        if tallies != entry[_TALLIES]:
            changed.extend(_FAMILIES_BY_INPUTS[TALLIES])
        if account.health_kept is not entry[_HEALTH]:
            changed.extend(_FAMILIES_BY_INPUTS[HEALTH])
        if not changed:
            return
        lines = list(entry[_FIRST_LINE:])
        pairs = tuple(account_labels(account).items())
        plain = "{" + _labels(pairs) + "} "
        for index in changed:
            family = ACCOUNT_FAMILIES[index]
            name = family.sample
            lines[index] = "".join(
                name
                + (("{" + _labels((*pairs, extra)) + "} ") if extra else plain)
                + _go_float(value)
                + "\n"
                for extra, value in family.samples(account)
            ).encode()
        head = (key, account.snapshot_kept, meta, tallies, account.health_kept)
        self.entries[account.id] = head + tuple(lines)

    def account_removed(self, account_id: str) -> None:
        """Forget an account: its series disappear from the next scrape."""
        self.entries.pop(account_id, None)

    def detach(self) -> None:
        """Stop following the store (it left the config)."""
        self.store.listeners.remove(self)


class FastExposition:
    """Pre-rendered per-account lines, joined at scrape time, then the exporter-wide tail."""

    def __init__(self, stores: StoreSource, tail: CollectorRegistry) -> None:
        self._source = stores
        self.stores = [_StoreLines(store) for store in stores()]
        self.tail = tail
        self._text_headers = [_header(f, openmetrics=False) for f in ACCOUNT_FAMILIES]
        self._openmetrics_headers = [_header(f, openmetrics=True) for f in ACCOUNT_FAMILIES]

    def _follow_stores(self) -> None:
        """Follow a change to the store list (a reload added or removed workspaces)."""
        source = self._source()
        if len(source) == len(self.stores) and all(
            lines.store is store for lines, store in zip(self.stores, source, strict=True)
        ):
            return
        kept: dict[int, _StoreLines | None] = {id(lines.store): lines for lines in self.stores}
        self.stores = [kept.pop(id(store), None) or _StoreLines(store) for store in source]
        for gone in kept.values():
            if gone is not None:
                gone.detach()

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole body in the text format (0.0.4) or OpenMetrics."""
        return b"".join(self.iter_chunks(openmetrics))

    def iter_chunks(self, openmetrics: bool = False) -> Iterator[bytes]:
        """The body in pieces of a few hundred kilobytes, in order.

        Everything is taken from the stores in one synchronous step, before the first piece:
        a poll that lands while the caller yields between pieces is not half in this scrape.
        Each piece is then one short join (well under a millisecond), so a caller on the
        event loop can yield between pieces and polls stay on time during a scrape.
        """
        self._follow_stores()
        headers = self._openmetrics_headers if openmetrics else self._text_headers
        # Every account's entry, in store order: as AccountCollector walks them. One C-level
        # copy of references per store; the lines are read from these immutable entries.
        entries = [list(store.entries.values()) for store in self.stores]
        discovery = "".join(
            f"unipost_api_errors_total{{{_labels(labels.items())}}} {_go_float(value)}\n"
            for store in self.stores
            for labels, value in discovery_error_samples(store.store)
        ).encode()
        tail = _openmetrics(self.tail) if openmetrics else text_latest(self.tail)
        return self._pieces(headers, entries, discovery, tail)

    @staticmethod
    def _pieces(
        headers: list[bytes], entries: list[list[tuple[Any, ...]]], discovery: bytes, tail: bytes
    ) -> Iterator[bytes]:
        for index, header in enumerate(headers):
            yield header
            line = _line_of[index]
            for store_entries in entries:
                for start in range(0, len(store_entries), ACCOUNTS_PER_CHUNK):
                    yield b"".join(map(line, store_entries[start : start + ACCOUNTS_PER_CHUNK]))
            if index == ERRORS_FAMILY and discovery:
                yield discovery
        yield tail
