"""parse.py against JSON fixtures of every response shape in the API contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.parse import (
    INVALID_RESPONSE,
    ApiError,
    ErrorKind,
    Snapshot,
    UpstreamFailure,
    classify,
    parse_ratelimit_headers,
    parse_retry_after,
)
from tests.helpers import TWITTER_SNAPSHOT

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_a_twitter_snapshot_carries_counts_and_numeric_platform_fields() -> None:
    result = classify(200, fixture("snapshot_twitter.json"))
    assert result == TWITTER_SNAPSHOT


def test_booleans_and_strings_in_platform_specific_are_not_values() -> None:
    result = classify(200, fixture("snapshot_youtube.json"))
    assert isinstance(result, Snapshot)
    assert result.platform_values == (("view_count", 18234001.0),)
    # 18:30:00.250 at +02:00 is 16:30:00.250 UTC.
    assert result.fetched_at == pytest.approx(1777393800.25)


def test_platform_specific_may_be_absent() -> None:
    result = classify(200, fixture("snapshot_no_platform_specific.json"))
    assert isinstance(result, Snapshot)
    assert (result.followers, result.platform_values) == (5100, ())


def test_a_real_zero_is_a_snapshot() -> None:
    result = classify(200, fixture("snapshot_real_zero.json"))
    assert isinstance(result, Snapshot)
    assert (result.followers, result.following, result.posts) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "platform", "status"),
    [("zero_filled_429.json", "twitter", "429"), ("zero_filled_403.json", "tiktok", "403")],
)
def test_a_zero_filled_snapshot_is_a_failure_not_data(
    name: str, platform: str, status: str
) -> None:
    assert classify(200, fixture(name)) == UpstreamFailure(platform, status)


def test_upstream_status_alone_marks_a_failure_even_with_nonzero_counts() -> None:
    payload = json.loads(fixture("zero_filled_429.json"))
    payload["data"]["follower_count"] = 5
    payload["data"]["platform_specific"]["upstream_status"] = "oops"
    assert classify(200, json.dumps(payload).encode()) == UpstreamFailure("twitter", "unknown")


@pytest.mark.parametrize(
    ("name", "status", "code", "kind"),
    [
        ("real/error_401_auth_middleware.json", 401, "UNAUTHORIZED", ErrorKind.AUTH),
        # The documented contract's, which the real server sends on no GET today.
        ("error_403_forbidden.json", 403, "FORBIDDEN", ErrorKind.AUTH),
        ("real/error_404_not_found.json", 404, "NOT_FOUND", ErrorKind.NOT_FOUND),
        (
            "real/error_409_account_disconnected.json",
            409,
            "ACCOUNT_DISCONNECTED",
            ErrorKind.DISCONNECTED,
        ),
        (
            "real/error_409_needs_reconnect_tiktok.json",
            409,
            "NEEDS_RECONNECT",
            ErrorKind.NEEDS_RECONNECT,
        ),
        ("error_429_rate_limited.json", 429, "RATE_LIMITED", ErrorKind.RATE_LIMITED),
        ("real/error_501_not_supported.json", 501, "NOT_SUPPORTED", ErrorKind.NOT_SUPPORTED),
        ("real/error_502_upstream_error.json", 502, "UPSTREAM_ERROR", ErrorKind.TRANSIENT),
        ("real/error_500_internal_error.json", 500, "INTERNAL_ERROR", ErrorKind.TRANSIENT),
    ],
)
def test_error_envelopes(name: str, status: int, code: str, kind: ErrorKind) -> None:
    body = fixture(name)
    if name.startswith("real/"):  # a recorded answer: its status, and its body
        recorded = json.loads(body)
        assert recorded["status"] == status
        body = json.dumps(recorded["body"]).encode()
    result = classify(status, body)
    assert isinstance(result, ApiError)
    assert (result.code, result.kind, result.http_status) == (code, kind, status)
    assert result.message == json.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (502, "UPSTREAM_ERROR", ErrorKind.TRANSIENT),
        (503, "HTTP_503", ErrorKind.TRANSIENT),
        (401, "UNAUTHORIZED", ErrorKind.AUTH),
        (404, "NOT_FOUND", ErrorKind.NOT_FOUND),
        (409, "HTTP_409", ErrorKind.PERSISTENT),
        (418, "HTTP_418", ErrorKind.PERSISTENT),
    ],
)
def test_a_body_that_is_not_the_envelope_is_classified_by_status(
    status: int, code: str, kind: ErrorKind
) -> None:
    result = classify(status, fixture("error_proxy_page.html"))
    assert isinstance(result, ApiError)
    assert (result.code, result.kind) == (code, kind)


def test_unknown_codes_follow_their_status_class() -> None:
    unknown_4xx = classify(422, b'{"error": {"code": "VALIDATION_ERROR", "message": "x"}}')
    unknown_5xx = classify(503, b'{"error": {"code": "MAINTENANCE", "message": "x"}}')
    assert (unknown_4xx.code, unknown_4xx.kind) == ("VALIDATION_ERROR", ErrorKind.PERSISTENT)  # type: ignore[union-attr]
    assert (unknown_5xx.code, unknown_5xx.kind) == ("MAINTENANCE", ErrorKind.TRANSIENT)  # type: ignore[union-attr]


def _data(**changes: object) -> bytes:
    payload = json.loads(fixture("snapshot_twitter.json"))
    for key, val in changes.items():
        if val is ...:
            del payload["data"][key]
        else:
            payload["data"][key] = val
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>oops</html>", "body is not JSON"),
        (b"\xff\xfe\x00", "body is not UTF-8"),
        (b"[1, 2]", 'not the {"data": {...}} envelope'),
        (b'{"follower_count": 1}', 'not the {"data": {...}} envelope'),
        (_data(follower_count="12480"), "follower_count is not a number"),
        (_data(follower_count=True), "follower_count is not a number"),
        (_data(following_count=-1), "following_count is negative"),
        (_data(post_count=1.5), "post_count is not a whole number"),
        (_data(post_count=...), "post_count is missing"),
        (_data(fetched_at=...), "fetched_at is missing"),
        (_data(fetched_at="yesterday"), "fetched_at is not an RFC 3339 time"),
        (_data(platform_specific=[1]), "platform_specific is not an object"),
        (b'{"data": {"follower_count": NaN}}', "follower_count is not a whole number"),
        (b'{"data": {"follower_count": 1e999}}', "follower_count is not a whole number"),
        (b'{"data": {"follower_count": 1e300}}', "follower_count is out of range"),
        (_data(follower_count=10**400), "follower_count is out of range"),
        (b"[" * 100000 + b"]" * 100000, "body is not JSON"),
    ],
)
def test_invalid_bodies_are_invalid_responses(body: bytes, why: str) -> None:
    result = classify(200, body)
    assert isinstance(result, ApiError)
    assert (result.code, result.kind, result.message) == (INVALID_RESPONSE, ErrorKind.INVALID, why)


def test_retry_after_as_seconds_as_a_date_and_as_garbage() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("30", now) == 30
    date = "Thu, 01 Jan 2032 00:00:30 GMT"
    assert parse_retry_after(date, 1956528000.0) == 30
    assert parse_retry_after(date, 1956528100.0) == 0, "a date in the past means now"
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("\u0663\u0660", now) is None, "only ASCII digits are seconds"
    assert parse_retry_after(None, now) is None


def test_ratelimit_headers_absent_or_malformed_are_ignored() -> None:
    full = parse_ratelimit_headers(
        {
            "X-UniPost-RateLimit-Limit": "60",
            "X-UniPost-RateLimit-Remaining": "12",
            "X-UniPost-RateLimit-Reset": "1800000030",
        }
    )
    assert (full.limit, full.remaining, full.reset) == (60, 12, 1800000030)
    assert full.server_time is None
    dated = parse_ratelimit_headers({"Date": "Thu, 01 Jan 2032 00:00:30 GMT"})
    assert dated.server_time == 1956528030
    partial = parse_ratelimit_headers({"X-UniPost-RateLimit-Limit": "lots", "Date": "today"})
    assert partial.server_time is None
    assert (partial.limit, partial.remaining, partial.reset) == (None, None, None)
