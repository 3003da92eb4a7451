"""The fast /metrics body: each account's lines are rendered when the account changes, so a
scrape only joins bytes. Output is byte-for-byte what prometheus_client renders for the same
store (tests compare them); exporter-wide families are rendered by prometheus_client itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest

from exporter.collector import ACCOUNT_FAMILIES, ERRORS_FAMILY, discovery_error_samples
from exporter.lines import (
    PREFIXES,
    ROWS_PER_CHUNK,
    TAILS,
    StoreLines,
    family_header,
    go_float,
    label_text,
    openmetrics_text,
)
from exporter.store import StoreSource


class FastExposition:
    """Pre-rendered per-account lines, joined at scrape time, then the exporter-wide tail."""

    def __init__(self, stores: StoreSource, tail: CollectorRegistry) -> None:
        self._source = stores
        self.stores = [StoreLines.of(store) for store in stores()]
        self.tail = tail
        self._text_headers = [family_header(f, openmetrics=False) for f in ACCOUNT_FAMILIES]
        self._openmetrics_headers = [family_header(f, openmetrics=True) for f in ACCOUNT_FAMILIES]

    def _follow_stores(self) -> None:
        """Follow a change to the store list (a reload added or removed workspaces)."""
        source = self._source()
        if len(source) == len(self.stores) and all(
            lines.store is store for lines, store in zip(self.stores, source, strict=True)
        ):
            return
        kept: dict[int, StoreLines | None] = {id(lines.store): lines for lines in self.stores}
        self.stores = [kept.pop(id(store), None) or StoreLines.of(store) for store in source]
        for gone in kept.values():
            if gone is not None:
                gone.detach()

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole body in the text format (0.0.4) or OpenMetrics."""
        return b"".join(self.iter_chunks(openmetrics))

    def iter_chunks(self, openmetrics: bool = False) -> Generator[bytes, None, None]:
        """The body in pieces, in order (see open())."""
        with contextlib.closing(self.open(openmetrics)) as body:
            yield from body.pieces

    def open(self, openmetrics: bool = False) -> Body:
        """One scrape's body: its length, then its pieces of some tens of kilobytes.

        Everything is taken from the stores in this one synchronous step: a poll that lands
        while the caller yields between pieces is not half in this scrape. Each piece is
        then one short join (well under a millisecond), so a caller on the event loop can
        yield between pieces and polls stay on time during a scrape. Until the body is
        closed, the stores' changes wait (StoreLines.read): close it, read or not.

            with contextlib.closing(exposition.open()) as body:
                response.content_length = body.length
                for piece in body.pieces: ...
        """
        self._follow_stores()
        headers = self._openmetrics_headers if openmetrics else self._text_headers
        discovery = "".join(
            f"unipost_api_errors_total{{{label_text(labels.items())}}} {go_float(value)}\n"
            for store in self.stores
            for labels, value in discovery_error_samples(store.store)
        ).encode()
        tail = openmetrics_text(self.tail) if openmetrics else text_latest(self.tail)
        # Every row's head and tails, in store order: as AccountCollector walks the accounts.
        # Each store's columns stay as they are now until this scrape is done with them.
        stores = list(self.stores)
        cuts = [(lines, lines.read()) for lines in stores]
        length = sum(map(len, headers)) + len(discovery) + len(tail)
        length += sum(lines.length(PREFIXES) for lines in stores)
        return Body(length, _pieces(headers, discovery, tail, cuts), stores)


def _pieces(
    headers: list[bytes], discovery: bytes, tail: bytes, cuts: list[tuple[StoreLines, int]]
) -> Generator[bytes, None, None]:
    for index, header in enumerate(headers):
        yield header
        for lines, rows in cuts:
            counts = lines.filled[TAILS + index]
            for chunk in range(min(len(counts), -(-rows // ROWS_PER_CHUNK))):
                if counts[chunk]:
                    yield lines.joined(index, chunk, rows, counts[chunk])
        if index == ERRORS_FAMILY and discovery:
            yield discovery
    yield tail


class Body:
    """A scrape's exposition: `length` bytes, in `pieces`; close() lets the stores' changes
    through again, whether the pieces were read or not."""

    def __init__(
        self, length: int, pieces: Generator[bytes, None, None], stores: list[StoreLines]
    ) -> None:
        self.length = length
        self.pieces = pieces
        self._stores: list[StoreLines] | None = stores

    def close(self) -> None:
        self.pieces.close()
        if self._stores is not None:
            for lines in self._stores:
                lines.done()
            self._stores = None
