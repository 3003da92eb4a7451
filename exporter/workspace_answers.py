"""Pure parsing of UniPost's workspace reads (plan usage, the delivery queue, analytics), and
what a workspace keeps of them. No I/O and no state beyond the values themselves.

    >>> body = b'{"data": {"pending_count": 2, "running_count": 0, "retrying_count": 1,'
    >>> body += b' "dead_count": 0, "recovered_today_count": 4}}'
    >>> parse_delivery_jobs(200, body).value.dead
    0.0

A body that is not the documented shape is an INVALID_RESPONSE ApiError. Inside a good one,
a platform or plan name that is not a safe label value, and a negative count, are skipped
and counted (`Parsed.skipped`); the rest of the answer is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from exporter import platforms
from exporter.parse import (
    SAFE_LABEL_VALUE,
    ApiError,
    envelope_data,
    invalid_response,
    timestamp,
)

T = TypeVar("T")

USAGE, DELIVERY_JOBS, ANALYTICS = "usage", "delivery_jobs", "analytics"
# The `read` label of the workspace reads, in exposition order.
READS = (USAGE, DELIVERY_JOBS, ANALYTICS)
# The code a skipped value is counted under on unipost_workspace_read_errors_total.
INVALID_VALUE = "INVALID_VALUE"
# What UniPost answers on /v1/analytics/* for a plan without analytics (402).
PLAN_FEATURE_NOT_AVAILABLE = "PLAN_FEATURE_NOT_AVAILABLE"
# /v1/analytics/platforms' health values; anything else is shown as `unknown`.
HEALTH_STATES = (
    "not_connected", "needs_reconnect", "partial_reconnect_required", "pending", "degraded",
    "ready", "unknown",
)  # fmt: skip
DELIVERY_STATES = ("pending", "running", "retrying", "dead")
USAGE_STATES = (("published", "post_count"), ("scheduled", "scheduled_count"),
                ("quota_hold", "quota_hold_count"))  # fmt: skip
WINDOW_STATUSES = (("all", "total"), ("published", "published"), ("scheduled", "scheduled"),
                   ("failed", "failed"))  # fmt: skip


class Usage(NamedTuple):
    """GET /v1/usage: the plan, its monthly post limit, and this UTC month's use."""

    plan: str | None  # None: not a safe label value
    post_limit: float | None  # None: unlimited (-1), or skipped
    posts: tuple[tuple[str, float], ...]  # (state, count): published, scheduled, quota_hold
    resets_at: float
    scheduling_allowed: bool


class DeliveryJobs(NamedTuple):
    """GET /v1/post-delivery-jobs/summary (None: a negative count, skipped)."""

    pending: float | None
    running: float | None
    retrying: float | None
    dead: float | None
    recovered_today: float | None


class PlatformPosts(NamedTuple):
    """One row of GET /v1/analytics/by-platform: posts, accounts, and the engagement
    counters the platform's adapter fills (the others are left out)."""

    platform: str
    posts: float | None
    accounts: float | None
    engagement: tuple[tuple[str, float], ...]


class PlatformHealth(NamedTuple):
    """One entry of GET /v1/analytics/platforms."""

    platform: str
    health: str
    last_fetch: float | None  # None: missing, or the epoch (after a refresh request)


@dataclass(frozen=True, slots=True)
class Analytics:
    """The analytics a workspace's plan allows, or `available=False` (402)."""

    available: bool
    by_platform: tuple[PlatformPosts, ...] = ()
    window_posts: tuple[tuple[str, float], ...] = ()  # (status, count): all, published, ...
    platforms: tuple[PlatformHealth, ...] = ()


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """A good answer's value, and how many of its values were skipped."""

    value: T
    skipped: int = 0


@dataclass(slots=True)
class ReadRecord:
    """How one workspace read goes: failures by code, and when it last succeeded."""

    errors: dict[str, int] = field(default_factory=dict)
    last_success: float | None = None  # Unix time
    consecutive_failures: int = 0
    interval: float = 0.0  # seconds between reads now (0: the read is off)
    next_read: float | None = None  # Unix time (None: reading now, or off)

    def count(self, code: str, times: int = 1) -> None:
        self.errors[code] = self.errors.get(code, 0) + times


@dataclass(slots=True)
class WorkspaceFacts:
    """What the workspace reads found: the last good values, and how each read goes."""

    usage: Usage | None = None
    delivery_jobs: DeliveryJobs | None = None
    analytics: Analytics | None = None
    records: dict[str, ReadRecord] = field(default_factory=dict)

    def record(self, read: str) -> ReadRecord:
        return self.records.setdefault(read, ReadRecord())


class _Values:
    """Reads numbers and names out of one answer, counting those it skips."""

    def __init__(self) -> None:
        self.skipped = 0

    def count(self, data: dict[str, Any], name: str, unlimited: bool = False) -> float | None:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"{name} is not a number")
        if not math.isfinite(value):
            raise _Invalid(f"{name} is not finite")
        if unlimited and value == -1:
            return None
        if value < 0:
            self.skipped += 1
            return None
        return float(value)

    def name(self, value: Any, what: str) -> str | None:
        if not isinstance(value, str):
            raise _Invalid(f"{what} is not a string")
        if not SAFE_LABEL_VALUE.match(value):
            self.skipped += 1
            return None
        return value


class _Invalid(ValueError):
    """The answer is not the documented shape."""


def _parse(status: int, body: bytes, build: Callable[[Any, _Values], T]) -> Parsed[T] | ApiError:
    data = envelope_data(status, body)
    if isinstance(data, ApiError):
        return data
    values = _Values()
    try:
        return Parsed(build(data, values), values.skipped)
    except _Invalid as exc:
        return invalid_response(status, str(exc))


def _mapping(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Invalid(f"{what} is not an object")
    return data


def _rows(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise _Invalid("data is not a list")
    return [_mapping(row, "a row") for row in data]


def parse_usage(status: int, body: bytes) -> Parsed[Usage] | ApiError:
    """GET /v1/usage."""

    def build(data: Any, values: _Values) -> Usage:
        data = _mapping(data, "data")
        allowed = data.get("scheduling_allowed")
        if not isinstance(allowed, bool):
            raise _Invalid("scheduling_allowed is not true or false")
        resets_at = data.get("resets_at")
        try:
            resets = timestamp(resets_at)
        except ValueError:
            raise _Invalid("resets_at is not an RFC 3339 time") from None
        posts = [(state, values.count(data, key)) for state, key in USAGE_STATES]
        return Usage(
            plan=values.name(data.get("plan"), "plan"),
            post_limit=values.count(data, "post_limit", unlimited=True),
            posts=tuple((state, n) for state, n in posts if n is not None),
            resets_at=resets,
            scheduling_allowed=allowed,
        )

    return _parse(status, body, build)


def parse_delivery_jobs(status: int, body: bytes) -> Parsed[DeliveryJobs] | ApiError:
    """GET /v1/post-delivery-jobs/summary."""

    def build(data: Any, values: _Values) -> DeliveryJobs:
        data = _mapping(data, "data")
        names = (*DELIVERY_STATES, "recovered_today")
        return DeliveryJobs(*(values.count(data, f"{name}_count") for name in names))

    return _parse(status, body, build)


def parse_by_platform(status: int, body: bytes) -> Parsed[tuple[PlatformPosts, ...]] | ApiError:
    """GET /v1/analytics/by-platform: a row per platform with posts in the window."""

    def build(data: Any, values: _Values) -> tuple[PlatformPosts, ...]:
        out = []
        for row in _rows(data):
            platform = values.name(row.get("platform"), "platform")
            posts, accounts = values.count(row, "posts"), values.count(row, "accounts")
            counters = [(metric, values.count(row, metric)) for metric in _filled(platform)]
            if platform is not None:
                engagement = tuple((m, n) for m, n in counters if n is not None)
                out.append(PlatformPosts(platform, posts, accounts, engagement))
        return tuple(out)

    return _parse(status, body, build)


def _filled(platform: str | None) -> tuple[str, ...]:
    return platforms.engagement_filled(platform) if platform is not None else ()


def parse_summary(status: int, body: bytes) -> Parsed[tuple[tuple[str, float], ...]] | ApiError:
    """GET /v1/analytics/summary: the window's posts by status."""

    def build(data: Any, values: _Values) -> tuple[tuple[str, float], ...]:
        posts = _mapping(_mapping(data, "data").get("posts"), "posts")
        counts = [(status, values.count(posts, key)) for status, key in WINDOW_STATUSES]
        return tuple((status, n) for status, n in counts if n is not None)

    return _parse(status, body, build)


def parse_platforms(status: int, body: bytes) -> Parsed[tuple[PlatformHealth, ...]] | ApiError:
    """GET /v1/analytics/platforms: each platform's analytics health and freshness."""

    def build(data: Any, values: _Values) -> tuple[PlatformHealth, ...]:
        out = []
        for row in _rows(data):
            platform = values.name(row.get("platform"), "platform")
            health = row.get("health")
            state = health if health in HEALTH_STATES else "unknown"
            fetched = row.get("last_successful_fetch_at")
            last = None
            if fetched is not None:
                try:
                    last = timestamp(fetched)
                except ValueError:
                    raise _Invalid("last_successful_fetch_at is not an RFC 3339 time") from None
            if platform is not None:
                out.append(PlatformHealth(platform, state, last if last and last > 0 else None))
        return tuple(sorted(out))

    return _parse(status, body, build)
