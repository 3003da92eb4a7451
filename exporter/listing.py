"""GET /v1/accounts: the listing, read as it arrives (40 MB at 100,000 accounts) into
packed records, one row at a time.

    >>> classify_listing(200, b'{"data": [{"id": "sa_x_1", "platform": "x"}]}')[0].id
    'sa_x_1'
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ijson

from exporter.parse import ApiError, envelope_data, invalid_response, platform_name


@dataclass(frozen=True, slots=True)
class ListedAccount:
    """One connected account from GET /v1/accounts."""

    id: str
    platform: str | None
    name: str
    status: str


_NOT_THE_ENVELOPE = 'not the {"data": [...]} envelope'
_NO_ID = "an account without an id"


def classify_listing(status: int, body: bytes) -> list[ListedAccount] | ApiError:
    """Turn an answer from GET /v1/accounts into the accounts it lists, or an error."""
    rows = envelope_data(status, body)
    if isinstance(rows, ApiError):
        return rows
    if not isinstance(rows, list):
        return invalid_response(status, _NOT_THE_ENVELOPE)
    accounts = []
    for row in rows:
        account = _listed(row)
        if account is None:
            return invalid_response(status, _NO_ID)
        accounts.append(account)
    return accounts


def _listed(row: Any) -> ListedAccount | None:
    """One row of the listing; None when it has no id."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
        return None
    name, status = row.get("account_name"), row.get("status")
    return ListedAccount(
        id=row["id"],
        platform=platform_name(row.get("platform")),
        name=name if isinstance(name, str) else "",
        status=status if isinstance(status, str) else "",
    )


class Listing:
    """Listed accounts kept packed, one buffer of marshalled records: no Python object per
    account lives while the listing is read and applied, so none is allocated among what
    the exporter keeps (memory the allocator could not return)."""

    def __init__(self) -> None:
        self._records = bytearray()
        self._count = 0

    def append(self, account: ListedAccount) -> None:
        record = marshal.dumps((account.id, account.platform, account.name, account.status))
        self._records += len(record).to_bytes(4, "little")
        self._records += record
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ListedAccount]:
        records, position = memoryview(self._records), 0
        while position < len(records):
            size = int.from_bytes(records[position : position + 4], "little")
            position += 4
            fields = marshal.loads(records[position : position + size])
            position += size
            yield ListedAccount(*fields)


class ListingReader:
    """A 2xx answer of GET /v1/accounts, read piece by piece as it arrives: what
    classify_listing() makes of the whole body, without holding the body or its JSON tree.
    The real server lists every account in one answer, ~400 bytes each.

        reader = ListingReader(200)
        for piece in pieces:
            reader.feed(piece)
        accounts = reader.close()  # a Listing, or the ApiError the body is

    Rows come from ijson's C parser, one at a time. The envelope is checked by a second
    parser, fed only until the value of `data` begins: it must be a list in an object. JSON
    is taken as UniPost's server (Go) writes it: NaN, Infinity or an integer beyond int64,
    which Python's json would take, make the body "not JSON".
    """

    def __init__(self, status: int) -> None:
        self.status = status
        self.accounts = Listing()
        self._rows: list[Any] = ijson.sendable_list()
        self._items = ijson.items_coro(self._rows, "data.item", use_float=True)
        self._events: list[tuple[str, str, Any]] = ijson.sendable_list()
        self._envelope: Any = ijson.parse_coro(self._events)  # None once `data` began
        self._data_next = False  # the envelope's next event is the value of `data`
        self._problem = ""

    def feed(self, piece: bytes) -> None:
        """The next piece of the body."""
        if self._problem or not piece:  # ijson takes an empty piece for the end
            return
        try:
            if self._envelope is not None:
                self._envelope.send(piece)
                self._check_envelope()
            self._items.send(piece)
        except (ijson.JSONError, UnicodeDecodeError, ValueError):
            self._problem = "body is not JSON"
        self._take_rows()

    def close(self) -> Listing | ApiError:
        """The body is complete: the accounts it lists, or what is wrong with it."""
        if not self._problem:
            try:
                self._items.close()
                if self._envelope is not None:
                    self._envelope.close()
                    self._check_envelope()
            except (ijson.JSONError, UnicodeDecodeError, ValueError):
                self._problem = "body is not JSON"
            self._take_rows()
        if not self._problem and self._envelope is not None:
            self._problem = _NOT_THE_ENVELOPE  # the body ended before any `data` list
        return invalid_response(self.status, self._problem) if self._problem else self.accounts

    def _check_envelope(self) -> None:
        for prefix, event, value in self._events:
            if self._envelope is None or self._problem:
                break
            if self._data_next:
                if event != "start_array":
                    self._problem = _NOT_THE_ENVELOPE
                self._envelope = None  # what follows is the rows' parser's
            elif prefix == "" and event == "map_key" and value == "data":
                self._data_next = True
            elif prefix == "" and event not in ("start_map", "map_key", "end_map"):
                self._problem = _NOT_THE_ENVELOPE  # not an object
        del self._events[:]

    def _take_rows(self) -> None:
        if not self._problem:
            for row in self._rows:
                account = _listed(row)
                if account is None:
                    self._problem = _NO_ID
                    break
                self.accounts.append(account)
        del self._rows[:]
