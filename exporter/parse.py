"""Pure parsing of UniPost answers: what a response means, with no I/O and no state."""

from __future__ import annotations

import enum
import functools
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from exporter import platforms


class InvalidResponse(ValueError):
    """A 2xx body that is not a usable snapshot."""


class Snapshot(NamedTuple):
    """A good snapshot: these numbers may be exported.

    A count the platform does not provide is None (UniPost sends 0 for it, which is not
    data), and `unavailable` says why, as (count, reason) pairs.

    A tuple of plain values, not a dataclass: one is kept per account (two with the previous
    one), and the garbage collector stops scanning a tuple of atoms, which keeps its pauses
    short.
    """

    platform: str | None
    followers: float | None
    following: float | None
    posts: float | None
    platform_values: tuple[tuple[str, float], ...]
    fetched_at: float
    # Booleans of platform_specific, as 0 or 1: they describe the snapshot, they are not counts.
    platform_flags: tuple[tuple[str, float], ...] = ()
    unavailable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """A zero-filled snapshot: the platform call failed; nothing here is data."""

    platform: str | None
    upstream_status: str


class ErrorKind(enum.Enum):
    """What a failed request means for polling."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    DISCONNECTED = "disconnected"
    NEEDS_RECONNECT = "needs_reconnect"
    # UniPost's own limiter refused: speaks for the whole workspace.
    RATE_LIMITED = "rate_limited"
    # The platform throttles this one account (e.g. TikTok's UPSTREAM_RATE_LIMITED).
    ACCOUNT_THROTTLED = "account_throttled"
    NOT_SUPPORTED = "not_supported"
    TRANSIENT = "transient"
    PERSISTENT = "persistent"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ApiError:
    """A request that brought no snapshot, with the `code` label it is counted under."""

    code: str
    kind: ErrorKind
    http_status: int | None = None
    message: str = ""


Outcome = Snapshot | UpstreamFailure | ApiError

TIMEOUT = "TIMEOUT"
CONNECTION_ERROR = "CONNECTION_ERROR"
INVALID_RESPONSE = "INVALID_RESPONSE"

_KIND_BY_CODE = {
    "UNAUTHORIZED": ErrorKind.AUTH,
    "FORBIDDEN": ErrorKind.AUTH,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "ACCOUNT_DISCONNECTED": ErrorKind.DISCONNECTED,
    "NEEDS_RECONNECT": ErrorKind.NEEDS_RECONNECT,
    "RATE_LIMITED": ErrorKind.RATE_LIMITED,
    "NOT_SUPPORTED": ErrorKind.NOT_SUPPORTED,
    "UPSTREAM_RATE_LIMITED": ErrorKind.ACCOUNT_THROTTLED,
    "UPSTREAM_ERROR": ErrorKind.TRANSIENT,
    "TIKTOK_ERROR": ErrorKind.TRANSIENT,
    "TIKTOK_TEMPORARY_ERROR": ErrorKind.TRANSIENT,
    "TIKTOK_ANALYTICS_UNAVAILABLE": ErrorKind.TRANSIENT,
    "INTERNAL_ERROR": ErrorKind.TRANSIENT,
    "BAD_REQUEST": ErrorKind.PERSISTENT,
}
_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    501: "NOT_SUPPORTED",
    502: "UPSTREAM_ERROR",
}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_PLATFORM = re.compile(r"^[a-z0-9_]{1,32}$")
_COUNT_FIELDS = ("follower_count", "following_count", "post_count")
# Above 2**53 a float cannot hold a whole count exactly: no real account is there.
MAX_COUNT = 2**53


def classify(status: int, body: bytes) -> Outcome:
    """Turn an HTTP status and body from the metrics endpoint into what it means."""
    if 200 <= status < 300:
        try:
            return parse_snapshot(json.loads(body))  # bytes: json decodes UTF-8 itself
        except UnicodeDecodeError:
            return invalid_response(status, "body is not UTF-8")
        except (json.JSONDecodeError, RecursionError):
            return invalid_response(status, "body is not JSON")
        except InvalidResponse as exc:
            return invalid_response(status, str(exc))
    return classify_error(status, body)


def classify_error(status: int, body: bytes) -> ApiError:
    """Classify a non-2xx answer by its error envelope, or by its status when there is none."""
    code, message = _error_envelope(body)
    kind = _KIND_BY_CODE.get(code) if code else None
    if kind is None and code is not None and status == 429:
        # Only RATE_LIMITED speaks for the workspace: a 429 under any other code is one
        # account's platform throttle. A 429 with no envelope (a proxy) is the workspace's.
        kind = ErrorKind.ACCOUNT_THROTTLED
    if kind is None:
        kind = _kind_by_status(status)
    if code is None:
        code = _CODE_BY_STATUS.get(status, f"HTTP_{status}")
    return ApiError(code=code, kind=kind, http_status=status, message=message)


def parse_snapshot(payload: Any) -> Snapshot | UpstreamFailure:
    """Parse a 200 body: a good snapshot, or a zero-filled failure; raise InvalidResponse."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise InvalidResponse('not the {"data": {...}} envelope')
    specific = data.get("platform_specific")
    if specific is not None and not isinstance(specific, dict):
        raise InvalidResponse("platform_specific is not an object")
    platform = platform_name(data.get("platform"))
    if specific and "upstream_status" in specific:
        return UpstreamFailure(platform, _upstream_status_label(specific["upstream_status"]))
    counts: list[float | None] = [_count(data, name) for name in _COUNT_FIELDS]
    fetched_at = _timestamp(data.get("fetched_at"))
    values, flags = _platform_numbers(specific) if specific else ((), ())
    unavailable: tuple[tuple[str, str], ...] = ()
    if missing := unavailable_counts(platform, specific or _EMPTY):
        for name, _ in missing:
            counts[_COUNT_FIELDS.index(name)] = None
        unavailable = tuple((_COUNT_NAMES[name], why) for name, why in missing)
    followers, following, posts = counts
    return Snapshot(platform, followers, following, posts, values, fetched_at, flags, unavailable)


_COUNT_NAMES = {
    "follower_count": "followers",
    "following_count": "following",
    "post_count": "posts",
}


# The platform_specific keys that can make unavailable_counts() name a count.
_MARKS = frozenset(["hidden_subscriber_count", *(f"{name}_supported" for name in _COUNT_FIELDS)])
_EMPTY: Mapping[str, Any] = {}


def unavailable_counts(platform: str | None, specific: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The counts (by field name) this snapshot does not really provide, each with why."""
    if platform not in platforms.NEVER_FILLED and _MARKS.isdisjoint(specific):
        return []  # most answers: their platform fills every count, and no mark says not
    missing: dict[str, str] = {}
    for name in platforms.NEVER_FILLED.get(platform or "", ()):
        missing[name] = f"{platforms.display_name(platform or '')} does not provide it"
    if specific.get("hidden_subscriber_count") is True:
        missing.setdefault("follower_count", "hidden by the channel")
    for name in _COUNT_FIELDS:
        if specific.get(f"{name}_supported") is False:
            missing.setdefault(name, f"not provided ({name}_supported: false)")
    return [(name, missing[name]) for name in _COUNT_FIELDS if name in missing]


class Health(NamedTuple):
    """An account's health from GET /v1/accounts/{id}/health (UniPost's database, no
    platform call). A field UniPost omitted (or sent as null) is None. A tuple, like
    Snapshot, so the garbage collector does not keep scanning one per account."""

    status: str  # ok, degraded, disconnected, or what UniPost says (a safe label value)
    token_expires_at: float | None = None
    last_successful_post_at: float | None = None
    last_error_code: str | None = None  # a coarse category: token_expired, rate_limited, ...
    last_error_at: float | None = None
    # The platform's raw text: shown on the landing page (escaped), never a label.
    last_error_message: str = ""


SAFE_LABEL_VALUE = re.compile(r"^[a-z0-9_]{1,64}$")


def classify_health(status: int, body: bytes) -> Health | ApiError:
    """Turn an answer from the health endpoint into the account's health, or an error."""
    data = envelope_data(status, body)
    if isinstance(data, ApiError):
        return data
    if not isinstance(data, dict):
        return invalid_response(status, 'not the {"data": {...}} envelope')
    try:
        return _health(data)
    except InvalidResponse as exc:
        return invalid_response(status, str(exc))


def _health(data: dict[str, Any]) -> Health:
    state = data.get("status")
    if not isinstance(state, str) or not state:
        raise InvalidResponse("status is missing")
    error = data.get("last_error")
    if error is not None and not isinstance(error, dict):
        raise InvalidResponse("last_error is not an object")
    error = error or {}
    code = error.get("code")
    message = error.get("message")
    return Health(
        status=_safe_label(state),
        token_expires_at=_optional_time(data, "token_expires_at"),
        last_successful_post_at=_optional_time(data, "last_successful_post_at"),
        last_error_code=_safe_label(code) if isinstance(code, str) and code else None,
        last_error_at=_optional_time(error, "occurred_at"),
        last_error_message=message[:500] if isinstance(message, str) else "",
    )


def _safe_label(value: str) -> str:
    """A value fit for a label (lowercase words), or "unknown"; one copy of each value."""
    return sys.intern(value) if SAFE_LABEL_VALUE.match(value) else "unknown"


def _optional_time(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    try:
        return _timestamp(value)
    except InvalidResponse:
        raise InvalidResponse(f"{name} is not an RFC 3339 time") from None


def envelope_data(status: int, body: bytes) -> Any:
    """The `data` of a 2xx answer (None when missing), or the error the answer is."""
    if not 200 <= status < 300:
        return classify_error(status, body)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return invalid_response(status, "body is not JSON")
    return payload.get("data") if isinstance(payload, dict) else None


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = parse_http_date(value)
    return None if when is None else max(0.0, when - now_wall)


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The workspace limiter's state as the last response reported it; None when absent."""

    limit: float | None
    remaining: float | None
    reset: float | None
    # The server's clock (its Date header): reset and Retry-After dates are read against it,
    # so a jump or skew of the exporter's own wall clock cannot distort them.
    server_time: float | None = None

    def server_now(self, local_wall: float) -> float:
        """Now on the server's clock when the answer says (Date), else on ours."""
        return self.server_time if self.server_time is not None else local_wall


RATELIMIT_HEADERS = (
    "X-UniPost-RateLimit-Limit",
    "X-UniPost-RateLimit-Remaining",
    "X-UniPost-RateLimit-Reset",
)


def has_ratelimit_headers(headers: Mapping[str, str]) -> bool:
    """Whether the answer carries any of the workspace limiter's headers."""
    return any(name in headers for name in RATELIMIT_HEADERS)


def parse_ratelimit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Read `X-UniPost-RateLimit-*` and `Date`, ignoring absent or malformed values."""
    limit, remaining, reset = (_header_number(headers.get(name)) for name in RATELIMIT_HEADERS)
    return RateLimitHeaders(limit, remaining, reset, parse_http_date(headers.get("Date")))


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date as Unix seconds, or None when absent or malformed."""
    if value is None:
        return None
    return _http_date(value)


# Every answer carries a Date, and it changes once a second: parsed once, not per poll
# (email.utils takes ~8 us, a few percent of a poll's CPU).
@functools.lru_cache(maxsize=16)
def _http_date(value: str) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _header_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def invalid_response(status: int, message: str) -> ApiError:
    return ApiError(INVALID_RESPONSE, ErrorKind.INVALID, http_status=status, message=message)


def _error_envelope(body: bytes) -> tuple[str | None, str]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None, ""
    code = error.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        normalized = error.get("normalized_code")
        code = normalized.upper() if isinstance(normalized, str) else None
        if code is not None and not _CODE.match(code):
            code = None
    message = error.get("message")
    return code, message[:200] if isinstance(message, str) else ""


def platform_name(value: Any) -> str | None:
    """A usable, normalized platform name, or None."""
    if not isinstance(value, str):
        return None
    known = _PLATFORMS.get(value)
    if known is not None:
        return known
    if not _PLATFORM.match(value.lower()):
        return None
    name = sys.intern(value.lower())  # one copy, not one per account
    if len(_PLATFORMS) < _PLATFORMS_MAX:
        _PLATFORMS[value] = name
    return name


# The platform names seen, as sent -> as normalized: a poll looks its name up, not checks it.
_PLATFORMS: dict[str, str] = {}
_PLATFORMS_MAX = 64


def _kind_by_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED  # no envelope: a proxy or UniPost's own limiter
    if status == 501:
        return ErrorKind.NOT_SUPPORTED
    if status >= 500:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERSISTENT


def _upstream_status_label(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[1-5]\d\d", value.strip()):
        return value.strip()
    return "unknown"


def _count(data: dict[str, Any], name: str) -> float:
    value = data.get(name, _MISSING)
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return float(value)  # the common case, checked in one step
    if value is _MISSING:
        raise InvalidResponse(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidResponse(f"{name} is not a number")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise InvalidResponse(f"{name} is not a whole number")
    if value < 0:
        raise InvalidResponse(f"{name} is negative")
    if value > MAX_COUNT:
        raise InvalidResponse(f"{name} is out of range")
    return float(value)


_MISSING = object()


def _platform_numbers(
    specific: dict[str, Any],
) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """platform_specific's numbers and its booleans (as 0 or 1), each sorted by key, in one
    pass; anything else (text, lists, a number too large for a float) is left out."""
    values, flags = [], []
    for key, value in specific.items():
        if type(value) is bool:
            flags.append((sys.intern(str(key)), float(value)))
            continue
        if not isinstance(value, int | float):
            continue
        try:
            number = float(value)
        except OverflowError:
            continue
        if math.isfinite(number):
            values.append((sys.intern(str(key)), number))
    return tuple(sorted(values)), tuple(sorted(flags))


def timestamp(value: Any) -> float:
    """An RFC 3339 time as Unix seconds; InvalidResponse (a ValueError) when it is not one."""
    return _timestamp(value)


def _timestamp(value: Any) -> float:
    if not isinstance(value, str):
        raise InvalidResponse("fetched_at is missing")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidResponse("fetched_at is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
