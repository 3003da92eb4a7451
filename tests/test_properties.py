"""Property-based tests: whatever UniPost or an operator hands the exporter, parsing ends in a
value or a named error, never an unhandled exception."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.listing import ListingReader, classify_listing
from exporter.parse import (
    MAX_COUNT,
    ApiError,
    Snapshot,
    UpstreamFailure,
    classify,
    parse_ratelimit_headers,
    parse_retry_after,
)
from exporter.schema import RESERVED_LABELS, Config
from exporter.validation import ConfigError
from exporter.webconfig import WebConfig, WebConfigError, load_web_config

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON values, with the numbers that hurt: NaN, infinities, huge ints, negative zero.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
count = st.one_of(
    st.integers(min_value=-5, max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
)
# Bodies shaped like the contract's, with any field wrong in any way.
snapshot_like = st.fixed_dictionaries(
    {
        "data": st.fixed_dictionaries(
            {},
            optional={
                "platform": st.one_of(st.sampled_from(["twitter", "TikTok", ""]), json_values),
                "follower_count": count,
                "following_count": count,
                "post_count": count,
                "fetched_at": st.one_of(
                    st.sampled_from(["2026-04-28T18:30:00Z", "2026-04-28T18:30:00.123456+02:00"]),
                    st.text(max_size=30),
                    json_values,
                ),
                "platform_specific": st.one_of(
                    st.dictionaries(
                        st.sampled_from(["upstream_status", "listed_count", "x"])
                        | st.text(max_size=8),
                        json_values,
                        max_size=4,
                    ),
                    json_values,
                ),
            },
        )
    },
    optional={"request_id": json_values},
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@PROPERTY
@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=300))
def test_any_bytes_classify_to_an_outcome(status: int, body: bytes) -> None:
    assert isinstance(classify(status, body), Snapshot | UpstreamFailure | ApiError)
    assert isinstance(classify_listing(status, body), list | ApiError)


# Bodies shaped like GET /v1/accounts's, with any row or field wrong in any way.
listing_like = st.fixed_dictionaries(
    {},
    optional={
        "meta": json_values,
        "data": st.one_of(
            st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"id": st.one_of(st.text(max_size=12), json_values)},
                        optional={
                            "platform": st.one_of(st.sampled_from(["twitter", "X"]), json_values),
                            "account_name": json_values,
                            "status": json_values,
                            "scope": json_values,
                        },
                    ),
                    json_values,
                ),
                max_size=5,
            ),
            json_values,
        ),
        "request_id": json_values,
    },
)


def _within_int64(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_within_int64(v) for v in value.values())
    if isinstance(value, list):
        return all(_within_int64(v) for v in value)
    # Not -2**63 either: yajl (ijson's C parser) reads its magnitude first, which overflows.
    return not isinstance(value, int) or -(2**63) < value < 2**63


def _read_in_pieces(body: bytes, cuts: list[int]) -> Any:
    reader = ListingReader(200)
    start = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        reader.feed(body[start:cut])
        start = cut
    reader.feed(body[start:])
    result = reader.close()
    return result if isinstance(result, ApiError) else list(result)


@PROPERTY
@given(payload=st.one_of(listing_like, json_values), cuts=st.lists(st.integers(0, 10**6)))
def test_a_listing_read_in_pieces_means_what_the_whole_body_means(
    payload: Any, cuts: list[int]
) -> None:
    # JSON as UniPost's server (Go) writes it: no NaN or Infinity, which Python's json also
    # takes, and integers within int64, beyond which ijson's C parser says "not JSON".
    try:
        body = json.dumps(payload, allow_nan=False).encode()
    except ValueError:
        assume(False)
    assume(_within_int64(payload))
    assert repr(_read_in_pieces(body, cuts)) == repr(classify_listing(200, body))


@PROPERTY
@given(body=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_any_bytes_read_as_a_listing_end_in_accounts_or_a_named_error(
    body: bytes, cuts: list[int]
) -> None:
    assert isinstance(_read_in_pieces(body, cuts), list | ApiError)


@PROPERTY
@given(payload=st.one_of(snapshot_like, json_values))
def test_any_json_is_a_snapshot_a_failure_or_a_named_error(payload: Any) -> None:
    outcome = classify(200, _dumps(payload))
    if isinstance(outcome, Snapshot):
        # Whatever got through is exportable: whole, finite, within range.
        for number in (outcome.followers, outcome.following, outcome.posts):
            assert math.isfinite(number) and 0 <= number <= MAX_COUNT and number == int(number)
        assert math.isfinite(outcome.fetched_at)
        assert all(math.isfinite(v) for _, v in outcome.platform_values)
    elif isinstance(outcome, ApiError):
        assert outcome.code == "INVALID_RESPONSE" and outcome.message
    else:
        assert outcome.upstream_status == "unknown" or outcome.upstream_status.isdigit()


@PROPERTY
@given(
    retry_after=st.text(max_size=40),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-UniPost-RateLimit-Limit",
                "X-UniPost-RateLimit-Remaining",
                "X-UniPost-RateLimit-Reset",
                "Date",
            ]
        ),
        st.text(max_size=40),
    ),
)
def test_any_header_values_parse_or_are_ignored(retry_after: str, headers: dict[str, str]) -> None:
    wait = parse_retry_after(retry_after, 1_800_000_000.0)
    assert wait is None or (math.isfinite(wait) and wait >= 0)
    parsed = parse_ratelimit_headers(headers)
    for number in (parsed.limit, parsed.remaining, parsed.reset):
        assert number is None or (math.isfinite(number) and number >= 0)


# -- config ----------------------------------------------------------------------------------

KEYS = [
    "unipost", "polling", "accounts", "discovery", "workspaces", "name", "api_key",
    "api_key_file", "base_url", "timeout", "requests_per_minute", "interval",
    "platform_intervals", "max_backoff", "id", "labels", "enabled", "platforms",
    "refresh_interval", "exclude", "twitter", *sorted(RESERVED_LABELS),
]  # fmt: skip
yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["5m", "0s", "1h30m", "${HOME}", "${NOPE}", "${}", "http://x", "sa_x_1"])
    | st.text(max_size=12)
)
config_trees = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


@PROPERTY
@given(tree=config_trees)
def test_any_config_tree_loads_or_names_its_problems(tree: Any) -> None:
    text = yaml.safe_dump(tree, allow_unicode=True)
    try:
        config = parse_config(text, {"HOME": "/home/x"})
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert isinstance(config, Config) and config.workspaces


@PROPERTY
@given(text=st.text(max_size=200))
def test_any_config_text_loads_or_names_its_problems(text: str) -> None:
    try:
        parse_config(text, {})
    except ConfigError as exc:
        assert exc.problems


WEB_KEYS = [
    "tls_server_config", "basic_auth_users", "http_server_config", "cert_file", "key_file",
    "client_auth_type", "client_ca_file", "client_allowed_sans", "min_version", "max_version",
    "headers", "http2", "cipher_suites", "NoClientCert", "RequireAndVerifyClientCert", "TLS12",
    "TLS13", "X-Frame-Options", "prometheus",
]  # fmt: skip
web_trees = st.recursive(
    yaml_scalars | st.sampled_from(WEB_KEYS),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(WEB_KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(tree=web_trees)
@example(tree={"tls_server_config": {"min_version": []}})  # found by hypothesis: a TypeError
def test_any_web_config_loads_or_names_its_problems(tree: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "web.yml"
        path.write_text(yaml.safe_dump(tree, allow_unicode=True))
        try:
            config = load_web_config(path)
        except WebConfigError as exc:
            assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        else:
            assert isinstance(config, WebConfig)
