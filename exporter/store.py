"""The latest truth per account and about the API, written by polls and read by the exposition.

store = Store()
store.add(AccountState("sa_twitter_1", "twitter", (), 900.0))
store.changed(account)  # after a writer mutates it: listeners re-render just that one
"""

from __future__ import annotations

import marshal
import sys
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from exporter.parse import Health, RateLimitHeaders, Snapshot
from exporter.schema import AccountConfig
from exporter.workspace_answers import WorkspaceFacts

if TYPE_CHECKING:
    from exporter.outcomes import Policy


class Status(StrEnum):
    """An account's status: exactly one `unipost_account_status` series carries it."""

    PENDING = "pending"
    OK = "ok"
    UPSTREAM_FAILING = "upstream_failing"
    DISCONNECTED = "disconnected"
    NEEDS_RECONNECT = "needs_reconnect"
    NOT_SUPPORTED = "not_supported"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    ERROR = "error"


# Latency buckets for calls to UniPost, which fetch live from the platform.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


K = TypeVar("K", Snapshot, Health)


def pack(value: tuple[Any, ...]) -> bytes:
    """A snapshot or health answer as the bytes an account keeps (see AccountState)."""
    return marshal.dumps(tuple(value))


def unpack(kept: bytes) -> tuple[Any, ...]:
    """The plain tuple that pack() packed."""
    value: tuple[Any, ...] = marshal.loads(kept)
    return value


class PackedAttribute(Generic[K]):
    """An attribute kept packed in the slot `<name>_kept`, read back as `kind`.

    The last value read is remembered by the identity of its bytes: a poll's new snapshot is
    read by the scheduler and then by each family the exposition re-renders."""

    def __init__(self, kind: type[K]) -> None:
        self.kind: type[K] = kind
        self.slot = ""
        self._last: tuple[bytes | None, K | None] = (None, None)

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"{name}_kept"

    def __get__(self, account: object, owner: type | None = None) -> K | None:
        kept = getattr(account, self.slot)
        if kept is None:
            return None
        last, value = self._last
        if kept is not last:  # holding `last` keeps its identity from being reused
            value = self.kind._make(unpack(kept))
            self._last = (kept, value)
        return value

    def __set__(self, account: object, value: K | None) -> None:
        setattr(account, self.slot, None if value is None else pack(value))


# The tally of an account that never failed; never written to (_counted).
_NONE: dict[str, int] = {}
# The config of an account that has no entry in the config file (a discovered one), shared:
# AccountState.config is this very object exactly when the account is not configured.
UNCONFIGURED = AccountConfig(id="")


class AccountState:
    """What is known about one account; `snapshot` is the last good one, if any.

    The snapshots and the health answer are kept packed (`pack()`, marshal's bytes) and read
    back as Snapshot and Health: bytes are one small object, which the garbage collector
    never scans. `snapshot_kept` is those bytes: they change identity exactly when the
    snapshot is replaced. What an account keeps is in slots, not in dicts keyed by ID.
    """

    __slots__ = (
        "account_name",
        "api_errors",
        "config",
        "consecutive_failures",
        "demand",
        "health_due",
        "health_kept",
        "id",
        "interval",
        "labels",
        "last_poll_wall",
        "listed_in",
        "metrics_due",
        "platform",
        "policy",
        "previous_kept",
        "problem",
        "problem_detail",
        "row",
        "snapshot_kept",
        "status",
        "upstream_failures",
    )  # fmt: skip
    snapshot_kept: bytes | None
    previous_kept: bytes | None
    health_kept: bytes | None

    def __init__(
        self, id: str, platform: str, labels: tuple[tuple[str, str], ...], interval: float
    ) -> None:
        self.id = id
        self.platform = sys.intern(platform)  # one copy for every account on it
        self.labels = labels
        self.interval = interval
        self.status = Status.PENDING
        self.account_name = ""
        self.snapshot_kept = self.previous_kept = self.health_kept = None
        # Failure tallies by code: the one shared empty dict until the first (most accounts
        # never fail); counted with count_api_error() and count_upstream_failure().
        self.upstream_failures: dict[str, int] = _NONE
        self.api_errors: dict[str, int] = _NONE
        self.consecutive_failures = 0
        # Why the last poll brought no data: its code, and UniPost's message or the cause.
        self.problem = ""
        self.problem_detail = ""
        self.last_poll_wall: float | None = None
        # When the scheduler's queues next poll it and read its health (monotonic; None: not
        # planned, or its poll is in flight). Kept by pollqueue.PollQueue, on the account
        # rather than in a dict of its own; next_poll_wall() tells the first as Unix time.
        self.metrics_due: float | None = None
        self.health_due: float | None = None
        # The outcomes.Policy it is polled under (None: a good answer's), and the requests a
        # second that costs (accounts.Demand): slots, not dicts keyed by account ID.
        self.policy: Policy | None = None
        self.demand = 0.0
        # Its entry in the config, or UNCONFIGURED (AccountSet sets it).
        self.config = UNCONFIGURED
        # The last discovery listing that named it (AccountSet's count of listings), 0 if
        # it is not a discovered account.
        self.listed_in = 0
        # Its row in the store's pre-rendered lines (lines.StoreLines, one per store),
        # None until they have it.
        self.row: int | None = None

    def next_poll_wall(self, wall: float, monotonic: float) -> float | None:
        """When its next poll is planned, as Unix time (None: polling it now), given the time
        now by both clocks. Worked out, not kept."""
        due = self.metrics_due
        return None if due is None else wall + (due - monotonic)

    @property
    def configured(self) -> bool:
        """Whether the config file names this account (else discovery found it)."""
        return self.config is not UNCONFIGURED

    def count_api_error(self, code: str) -> None:
        """One more failed request to UniPost with this code."""
        self.api_errors = _counted(self.api_errors, code)

    def count_upstream_failure(self, upstream_status: str) -> None:
        """One more zero-filled answer with this platform status."""
        self.upstream_failures = _counted(self.upstream_failures, upstream_status)

    snapshot = PackedAttribute(Snapshot)
    # The good snapshot before `snapshot` (for the change since then), if any: kept only
    # while one of its counts differs from `snapshot`'s (scheduler._keep).
    previous = PackedAttribute(Snapshot)
    # The last good answer of GET /v1/accounts/{id}/health, if any.
    health = PackedAttribute(Health)


def _counted(counts: dict[str, int], key: str) -> dict[str, int]:
    """`counts` with one more `key`: a dict of its own in place of the shared empty one."""
    if counts is _NONE:
        counts = {}
    counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(slots=True)
class Histogram:
    """Cumulative-at-render bucket counts for one label set."""

    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        index = bisect_left(DURATION_BUCKETS, value)  # the first bound >= value
        if index < len(DURATION_BUCKETS):
            self.bucket_counts[index] += 1


@dataclass(slots=True)
class ApiStats:
    """Exporter-wide facts about requests to UniPost."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)
    ratelimit_limit: float | None = None
    ratelimit_remaining: float | None = None
    ratelimit_reset: float | None = None

    def record_request(self, endpoint: str, status_code: str, seconds: float) -> None:
        """Count one request and its latency."""
        key = (endpoint, status_code)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.durations.setdefault(endpoint, Histogram()).observe(seconds)

    def record_ratelimit(self, headers: RateLimitHeaders) -> None:
        """Keep the last seen value of each rate-limit header that was present."""
        if headers.limit is not None:
            self.ratelimit_limit = headers.limit
        if headers.remaining is not None:
            self.ratelimit_remaining = headers.remaining
        if headers.reset is not None:
            self.ratelimit_reset = headers.reset


@dataclass(slots=True)
class ReloadStatus:
    """How the last config reload went (a start counts as a successful load)."""

    successful: bool = True
    success_timestamp: float = 0.0


@dataclass(slots=True)
class StateStatus:
    """How saving the state file (--storage.path) goes, for /metrics."""

    enabled: bool = True  # False when the storage directory turned out unusable
    last_save: float | None = None
    save_failures: int = 0


class StoreListener(Protocol):
    """Told of every change to an account, right after it happens."""

    def account_changed(self, account: AccountState) -> None: ...

    def account_removed(self, account: AccountState) -> None: ...


@dataclass(slots=True)
class Store:
    """Everything the exposition shows about one workspace; its scheduler is the only writer.

    The writer calls `changed(account)` after mutating an account, so listeners (the fast
    exposition) can re-render just that account instead of everything at every scrape.
    """

    # The workspace's name in the several-workspaces form, which labels every series with it;
    # None in the single-workspace form.
    workspace: str | None = None
    accounts: dict[str, AccountState] = field(default_factory=dict)
    api: ApiStats = field(default_factory=ApiStats)
    budget_requests_per_minute: float | None = None
    interval_stretch_factor: float = 1.0
    polling_started: bool = False
    listeners: list[StoreListener] = field(default_factory=list)
    # Failed GET /v1/accounts refreshes by code, exported with account_id="".
    discovery_errors: dict[str, int] = field(default_factory=dict)
    # What the reads of the workspace found (plan usage, the delivery queue, analytics).
    facts: WorkspaceFacts = field(default_factory=WorkspaceFacts)

    @property
    def workspace_labels(self) -> dict[str, str]:
        """The `workspace` label of this workspace's series, or none in the single form."""
        return {} if self.workspace is None else {"workspace": self.workspace}

    def add(self, account: AccountState) -> None:
        """Start tracking an account (at the end of the exposition order); one that replaces
        an account of the same ID takes its place, and its row in the lines."""
        old = self.accounts.get(account.id)
        if old is not None and old is not account:
            account.row = old.row
        self.accounts[account.id] = account
        self.changed(account)

    def remove(self, account_id: str) -> None:
        """Stop tracking an account: its series go away."""
        account = self.accounts.pop(account_id, None)
        if account is not None:
            for listener in self.listeners:
                listener.account_removed(account)

    def changed(self, account: AccountState) -> None:
        """Tell listeners that `account` was mutated."""
        for listener in self.listeners:
            listener.account_changed(account)


# Every workspace's store, in config order, as it is now (a reload may change the list).
StoreSource = Callable[[], Sequence[Store]]
