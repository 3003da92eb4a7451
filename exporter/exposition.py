"""The fast /metrics body: each account's lines are rendered when the account changes, so a
scrape only joins bytes. Output is byte-for-byte what prometheus_client renders for the same
store (tests compare them); exporter-wide families are rendered by prometheus_client itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

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
from exporter.store import AccountState, Store, StoreSource


def _openmetrics(registry: CollectorRegistry) -> bytes:
    body: bytes = openmetrics_latest(registry)  # type: ignore[no-untyped-call]
    return body


# prometheus_client's own float formatting (`1.0`, `1.777401e+09`, `+Inf`), typed.
_go_float: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    # As prometheus_client escapes label values.
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: list[tuple[str, str]]) -> str:
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


class _Rendered:
    """What one account's lines were last rendered from: label text and change keys."""

    __slots__ = ("health", "key", "meta", "pairs", "plain", "snapshot", "tallies")

    def __init__(self, account: AccountState) -> None:
        self.key = (account.platform, account.labels)
        self.pairs = list(account_labels(account).items())
        self.plain = "{" + _labels(self.pairs) + "} "
        # Sentinels that never equal an account's values: the first call renders everything.
        self.snapshot: object = _NEVER
        self.meta: object = _NEVER
        self.tallies: object = _NEVER
        self.health: object = _NEVER


_NEVER = object()
# Accounts per rendered piece: ~100 bytes a line, so a piece is a fraction of a megabyte.
ACCOUNTS_PER_CHUNK = 2048
# Which families each change key covers (indexes into ACCOUNT_FAMILIES).
_FAMILIES_BY_INPUTS = {
    inputs: [i for i, family in enumerate(ACCOUNT_FAMILIES) if family.inputs == inputs]
    for inputs in (SNAPSHOT, STATE, TALLIES, HEALTH)
}


class _StoreLines:
    """One store's pre-rendered lines: one dict per family, account id -> its lines."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lines: list[dict[str, bytes]] = [{} for _ in ACCOUNT_FAMILIES]
        self._rendered: dict[str, _Rendered] = {}
        for account in store.accounts.values():
            self.account_changed(account)
        store.listeners.append(self)

    def account_changed(self, account: AccountState) -> None:
        """Re-render the families whose inputs changed for this account."""
        rendered = self._rendered.get(account.id)
        if rendered is None or rendered.key != (account.platform, account.labels):
            rendered = self._rendered[account.id] = _Rendered(account)
        changed: list[int] = []
        if account.snapshot is not rendered.snapshot:
            rendered.snapshot = account.snapshot
            changed.extend(_FAMILIES_BY_INPUTS[SNAPSHOT])
        meta = (
            account.status,
            account.account_name,
            account.interval,
            account.consecutive_failures,
        )
        if meta != rendered.meta:
            rendered.meta = meta
            changed.extend(_FAMILIES_BY_INPUTS[STATE])
        tallies = (
            tuple(account.upstream_failures.items()) if account.upstream_failures else (),
            tuple(account.api_errors.items()) if account.api_errors else (),
        )
        if tallies != rendered.tallies:
            rendered.tallies = tallies
            changed.extend(_FAMILIES_BY_INPUTS[TALLIES])
        if account.health is not rendered.health:
            rendered.health = account.health
            changed.extend(_FAMILIES_BY_INPUTS[HEALTH])
        if not changed:
            return
        for index in changed:
            family = ACCOUNT_FAMILIES[index]
            name = family.sample
            text = "".join(
                name
                + (("{" + _labels([*rendered.pairs, extra]) + "} ") if extra else rendered.plain)
                + _go_float(value)
                + "\n"
                for extra, value in family.samples(account)
            )
            self.lines[index][account.id] = text.encode()

    def account_removed(self, account_id: str) -> None:
        """Forget an account: its series disappear from the next scrape."""
        self._rendered.pop(account_id, None)
        for lines in self.lines:
            lines.pop(account_id, None)

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
        # Per family, every store's lines in store order: as AccountCollector walks them.
        frozen = [
            list(chain.from_iterable(store.lines[index].values() for store in self.stores))
            for index in range(len(ACCOUNT_FAMILIES))
        ]
        discovery = "".join(
            f"unipost_api_errors_total{{{_labels(list(labels.items()))}}} {_go_float(value)}\n"
            for store in self.stores
            for labels, value in discovery_error_samples(store.store)
        ).encode()
        tail = _openmetrics(self.tail) if openmetrics else text_latest(self.tail)
        return self._pieces(headers, frozen, discovery, tail)

    @staticmethod
    def _pieces(
        headers: list[bytes], frozen: list[list[bytes]], discovery: bytes, tail: bytes
    ) -> Iterator[bytes]:
        for index, (header, values) in enumerate(zip(headers, frozen, strict=True)):
            yield header
            for start in range(0, len(values), ACCOUNTS_PER_CHUNK):
                yield b"".join(values[start : start + ACCOUNTS_PER_CHUNK])
            if index == ERRORS_FAMILY and discovery:
                yield discovery
        yield tail
