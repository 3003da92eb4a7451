"""Truth against UniPost's real server: one fixture per real answer shape, each naming the
upstream file it follows (tests/fixtures/real/). The parser must read each one right, and
the simulator must answer in the same shape."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from exporter.listing import ListingReader, classify_listing
from exporter.parse import ApiError, ErrorKind, Snapshot, UpstreamFailure, classify
from exporter.simulator import (
    DEFAULT_SIM_KEY,
    Scenario,
    ScenarioError,
    SimAccount,
    Simulator,
    demo_scenario,
    rfc3339nano,
    scenario_from_dict,
)
from tests.fake_unipost import recorded_answer

REAL = Path(__file__).parent / "fixtures" / "real"


def real(name: str) -> dict[str, Any]:
    """A recorded answer: follows (the upstream file), status, content_type, body."""
    return recorded_answer(name)


def body_bytes(answer: dict[str, Any]) -> bytes:
    body = answer["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def test_every_fixture_names_the_upstream_file_it_follows() -> None:
    names = sorted(path.name for path in REAL.glob("*.json"))
    assert len(names) >= 20
    for name in names:
        assert real(name)["follows"].startswith(("api/", "the hosting edge")), name


# -- what each real answer means ------------------------------------------------------------

# (fixture, followers, following, posts, flags that are 1, unavailable counts)
SNAPSHOTS = [
    ("metrics_twitter.json", 12480, 327, 2841, set(), {}),
    ("metrics_instagram.json", 8800, 410, 530, set(), {}),
    ("metrics_tiktok.json", 45000, 12, 640, set(), {}),
    (
        "metrics_youtube.json",
        123000,
        None,
        42,
        {"subscriber_count_rounded", "post_count_public_only"},
        {"following": "YouTube does not provide it"},
    ),
    (
        "metrics_youtube_hidden.json",
        None,
        None,
        3,
        {"hidden_subscriber_count", "subscriber_count_rounded", "post_count_public_only"},
        {"followers": "hidden by the channel", "following": "YouTube does not provide it"},
    ),
    (
        "metrics_threads.json",
        3100,
        None,
        None,
        set(),
        {"following": "Threads does not provide it", "posts": "Threads does not provide it"},
    ),
]


@pytest.mark.parametrize(("name", "followers", "following", "posts", "flags", "missing"), SNAPSHOTS)
def test_a_count_the_platform_does_not_provide_is_absent_never_zero(
    name: str,
    followers: float | None,
    following: float | None,
    posts: float | None,
    flags: set[str],
    missing: dict[str, str],
) -> None:
    answer = real(name)
    result = classify(answer["status"], body_bytes(answer))
    assert isinstance(result, Snapshot)
    assert (result.followers, result.following, result.posts) == (followers, following, posts)
    assert {field for field, on in result.platform_flags if on == 1.0} == flags
    assert dict(result.unavailable) == missing
    # Booleans are flags, never values; numbers are values, never flags.
    specific = answer["body"]["data"].get("platform_specific", {})
    numbers = {k for k, v in specific.items() if type(v) in (int, float)}
    assert {field for field, _ in result.platform_values} == numbers
    assert {field for field, _ in result.platform_flags} == {
        k for k, v in specific.items() if type(v) is bool
    }


def test_go_nanosecond_times_are_read_to_the_microsecond() -> None:
    result = classify(200, body_bytes(real("metrics_youtube.json")))
    assert isinstance(result, Snapshot)
    # 2026-11-27T10:00:00.123456789Z
    assert result.fetched_at == pytest.approx(1795773600.123456, abs=1e-6)


def test_a_supported_false_flag_marks_any_count_absent_on_any_platform() -> None:
    payload = real("metrics_instagram.json")["body"]
    payload["data"]["platform_specific"]["post_count_supported"] = False
    result = classify(200, json.dumps(payload).encode())
    assert isinstance(result, Snapshot)
    assert (result.followers, result.posts) == (8800, None)
    assert dict(result.unavailable) == {"posts": "not provided (post_count_supported: false)"}


def test_a_visible_youtube_channel_with_a_real_zero_keeps_its_zero_followers() -> None:
    payload = real("metrics_youtube.json")["body"]
    payload["data"]["follower_count"] = 0
    result = classify(200, json.dumps(payload).encode())
    assert isinstance(result, Snapshot) and result.followers == 0


@pytest.mark.parametrize(
    ("name", "upstream_status"),
    [
        ("metrics_twitter_zero_filled_429.json", "429"),
        ("metrics_twitter_token_expired_401.json", "401"),
    ],
)
def test_zero_filled_x_answers_are_failures(name: str, upstream_status: str) -> None:
    answer = real(name)
    assert classify(answer["status"], body_bytes(answer)) == UpstreamFailure(
        "twitter", upstream_status
    )


@pytest.mark.parametrize(
    ("name", "code", "kind"),
    [
        ("error_400_bad_request.json", "BAD_REQUEST", ErrorKind.PERSISTENT),
        ("error_401_auth_middleware.json", "UNAUTHORIZED", ErrorKind.AUTH),
        ("error_404_not_found.json", "NOT_FOUND", ErrorKind.NOT_FOUND),
        ("error_409_account_disconnected.json", "ACCOUNT_DISCONNECTED", ErrorKind.DISCONNECTED),
        ("error_409_needs_reconnect_tiktok.json", "NEEDS_RECONNECT", ErrorKind.NEEDS_RECONNECT),
        (
            "error_429_upstream_rate_limited_tiktok.json",
            "UPSTREAM_RATE_LIMITED",
            ErrorKind.ACCOUNT_THROTTLED,
        ),
        ("error_500_internal_error.json", "INTERNAL_ERROR", ErrorKind.TRANSIENT),
        ("error_501_not_supported.json", "NOT_SUPPORTED", ErrorKind.NOT_SUPPORTED),
        ("error_502_upstream_error.json", "UPSTREAM_ERROR", ErrorKind.TRANSIENT),
        ("error_502_tiktok_error.json", "TIKTOK_ERROR", ErrorKind.TRANSIENT),
        ("error_502_tiktok_temporary_error.json", "TIKTOK_TEMPORARY_ERROR", ErrorKind.TRANSIENT),
        (
            "error_502_tiktok_analytics_unavailable.json",
            "TIKTOK_ANALYTICS_UNAVAILABLE",
            ErrorKind.TRANSIENT,
        ),
        ("error_502_edge_plain_text.json", "UPSTREAM_ERROR", ErrorKind.TRANSIENT),
    ],
)
def test_every_real_error_is_classified_by_its_code(name: str, code: str, kind: ErrorKind) -> None:
    answer = real(name)
    result = classify(answer["status"], body_bytes(answer))
    assert isinstance(result, ApiError)
    assert (result.code, result.kind, result.http_status) == (code, kind, answer["status"])


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        # Only RATE_LIMITED speaks for the workspace.
        (b'{"error": {"code": "RATE_LIMITED", "message": "slow down"}}', ErrorKind.RATE_LIMITED),
        # Any other code on a 429 is one account's throttle, even one we do not know yet.
        (b'{"error": {"code": "UPSTREAM_RATE_LIMITED"}}', ErrorKind.ACCOUNT_THROTTLED),
        (b'{"error": {"code": "X_QUOTA_EXHAUSTED"}}', ErrorKind.ACCOUNT_THROTTLED),
        (b'{"error": {"normalized_code": "upstream_rate_limited"}}', ErrorKind.ACCOUNT_THROTTLED),
        # No UniPost envelope (a proxy in front): the workspace's.
        (b"<html>429 Too Many Requests</html>", ErrorKind.RATE_LIMITED),
        (b"", ErrorKind.RATE_LIMITED),
    ],
)
def test_a_429_is_the_workspace_s_only_when_uniPost_s_limiter_says_so(
    body: bytes, kind: ErrorKind
) -> None:
    result = classify(429, body)
    assert isinstance(result, ApiError) and result.kind is kind


def test_the_real_listing_is_read_with_its_extra_fields() -> None:
    answer = real("listing.json")
    body = body_bytes(answer)
    # Read whole, and as the client reads a 2xx listing: piece by piece as it arrives.
    reader = ListingReader(answer["status"])
    for start in range(0, len(body), 7):
        reader.feed(body[start : start + 7])
    streamed = reader.close()
    for listed in (classify_listing(answer["status"], body), streamed):
        assert not isinstance(listed, ApiError)
        assert [(a.id, a.platform, a.name, a.status) for a in listed] == [
            ("sa_twitter_1", "twitter", "acme", "active"),
            ("sa_instagram_3", "instagram", "", "reconnect_required"),
        ]


# -- the simulator answers in the same shapes -------------------------------------------------


def shape(value: Any) -> Any:
    """A body's structure: keys and value types, not values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


SIM_ACCOUNTS = (
    SimAccount("sa_twitter_1", "twitter", "acme"),
    SimAccount("sa_twitter_2", "twitter", "acme_jobs", behaviour="token_expired"),
    SimAccount("sa_instagram_3", "instagram", "studio.alex"),
    SimAccount("sa_tiktok_4", "tiktok", "acme.brand"),
    SimAccount("sa_youtube_5", "youtube", "Acme TV", followers=123456),
    SimAccount("sa_youtube_6", "youtube", "Acme Labs", hidden_subscribers=True),
    SimAccount("sa_threads_7", "threads", "acme.threads"),
    SimAccount("sa_threads_8", "threads", behaviour="disconnected"),
    SimAccount("sa_tiktok_9", "tiktok", behaviour="missing_scope"),
    SimAccount("sa_tiktok_10", "tiktok", behaviour="throttled"),
    SimAccount("sa_linkedin_11", "linkedin"),
    SimAccount("sa_instagram_12", "instagram", behaviour="platform_error"),
    SimAccount("sa_tiktok_13", "tiktok", behaviour="platform_error"),
    SimAccount("sa_instagram_14", "instagram", behaviour="edge_error"),
    SimAccount("sa_instagram_15", "instagram", behaviour="needs_reconnect"),
)
# Which simulated request gives each recorded shape: (account, calls first, key).
SIMULATED = {
    "metrics_twitter.json": ("sa_twitter_1", 0, DEFAULT_SIM_KEY),
    "metrics_twitter_zero_filled_429.json": ("sa_twitter_1", 1, DEFAULT_SIM_KEY),
    "metrics_twitter_token_expired_401.json": ("sa_twitter_2", 0, DEFAULT_SIM_KEY),
    "metrics_instagram.json": ("sa_instagram_3", 0, DEFAULT_SIM_KEY),
    "metrics_tiktok.json": ("sa_tiktok_4", 0, DEFAULT_SIM_KEY),
    "metrics_youtube.json": ("sa_youtube_5", 0, DEFAULT_SIM_KEY),
    "metrics_youtube_hidden.json": ("sa_youtube_6", 0, DEFAULT_SIM_KEY),
    "metrics_threads.json": ("sa_threads_7", 0, DEFAULT_SIM_KEY),
    "error_401_auth_middleware.json": ("sa_twitter_1", 0, "up_live_wrong"),
    "error_404_not_found.json": ("sa_nobody_0", 0, DEFAULT_SIM_KEY),
    "error_409_account_disconnected.json": ("sa_threads_8", 0, DEFAULT_SIM_KEY),
    "error_409_needs_reconnect_tiktok.json": ("sa_tiktok_9", 0, DEFAULT_SIM_KEY),
    "error_429_upstream_rate_limited_tiktok.json": ("sa_tiktok_10", 0, DEFAULT_SIM_KEY),
    "error_501_not_supported.json": ("sa_linkedin_11", 0, DEFAULT_SIM_KEY),
    "error_502_upstream_error.json": ("sa_instagram_12", 0, DEFAULT_SIM_KEY),
    "error_502_tiktok_temporary_error.json": ("sa_tiktok_13", 0, DEFAULT_SIM_KEY),
    "error_502_edge_plain_text.json": ("sa_instagram_14", 0, DEFAULT_SIM_KEY),
}


@pytest.fixture
async def sim() -> AsyncIterator[TestClient[Any, Any]]:
    scenario = Scenario(accounts=SIM_ACCOUNTS, upstream_error_rate=0.0)
    simulator = Simulator(scenario, clock=lambda: 1_795_773_600.5)
    async with TestClient(TestServer(simulator.app())) as client:
        yield client


async def fetch(
    client: TestClient[Any, Any], path: str, key: str = DEFAULT_SIM_KEY
) -> tuple[int, str, Any, Any]:
    response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
    text = await response.text()
    body = json.loads(text) if response.content_type == "application/json" else text
    return response.status, response.content_type, body, response.headers


@pytest.mark.parametrize("name", sorted(SIMULATED))
async def test_the_simulator_answers_in_the_real_server_s_shape(
    sim: TestClient[Any, Any], name: str
) -> None:
    account_id, calls_first, key = SIMULATED[name]
    path = f"/v1/accounts/{account_id}/metrics"
    for _ in range(calls_first):
        await fetch(sim, path, key)
    status, content_type, body, headers = await fetch(sim, path, key)
    answer = real(name)
    assert status == answer["status"]
    assert content_type == answer["content_type"].split(";")[0]
    assert shape(body) == shape(answer["body"])
    # The real server puts no limiter headers on GETs.
    assert not [h for h in headers if h.lower().startswith("x-unipost-ratelimit")]
    assert "Retry-After" not in headers
    mine, recorded = (
        classify(status, body_bytes({"body": body})),
        classify(answer["status"], body_bytes(answer)),
    )
    if isinstance(recorded, Snapshot):
        assert isinstance(mine, Snapshot) and mine.unavailable == recorded.unavailable
    elif isinstance(recorded, ApiError):
        assert isinstance(mine, ApiError)
        assert (mine.code, mine.kind, mine.http_status) == (
            recorded.code,
            recorded.kind,
            recorded.http_status,
        )
    else:
        assert mine == recorded


async def test_the_simulator_lists_like_the_real_server(sim: TestClient[Any, Any]) -> None:
    status, _, body, headers = await fetch(sim, "/v1/accounts")
    recorded = real("listing.json")["body"]
    assert status == 200
    assert set(body) == set(recorded) and set(body["meta"]) == set(recorded["meta"])
    assert body["meta"]["total"] == body["meta"]["limit"] == len(body["data"])
    # Listed with an API key, disconnected accounts are left out.
    assert "sa_threads_8" not in {row["id"] for row in body["data"]}
    recorded_keys = set(recorded["data"][0])  # a row whose external_user_id is null: omitted
    for row in body["data"]:
        assert set(row) == recorded_keys, row["id"]
    statuses = {row["id"]: row["status"] for row in body["data"]}
    assert statuses["sa_instagram_15"] == "reconnect_required"
    assert not [h for h in headers if h.lower().startswith("x-unipost-ratelimit")]


async def test_the_simulator_s_times_are_go_rfc3339nano(sim: TestClient[Any, Any]) -> None:
    _, _, body, _ = await fetch(sim, "/v1/accounts/sa_instagram_3/metrics")
    assert body["data"]["fetched_at"] == "2026-11-27T10:00:00.5Z"
    assert rfc3339nano(1_795_773_600.0) == "2026-11-27T10:00:00Z"
    assert rfc3339nano(1_795_773_600.120) == "2026-11-27T10:00:00.12Z"
    go_format = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")
    for seconds in (1_795_773_600.000_000_1, 1_795_773_600.999_999, 0.25):
        assert go_format.match(rfc3339nano(seconds)), rfc3339nano(seconds)


async def test_the_simulator_s_limiter_headers_are_a_scenario_choice() -> None:
    scenario = Scenario(
        accounts=SIM_ACCOUNTS[:1],
        upstream_error_rate=0.0,
        rate_limit_headers=True,
        rate_limit_capacity=1,
        rate_limit_refill_per_second=0.01,
    )
    async with TestClient(TestServer(Simulator(scenario).app())) as client:
        status, _, _, headers = await fetch(client, "/v1/accounts/sa_twitter_1/metrics")
        assert status == 200 and headers["X-UniPost-RateLimit-Limit"] == "1"
        status, _, body, headers = await fetch(client, "/v1/accounts/sa_twitter_1/metrics")
        assert (status, body["error"]["code"]) == (429, "RATE_LIMITED")
        assert "Retry-After" in headers


def test_a_scenario_cannot_call_hidden_subscribers_anything_but_a_boolean() -> None:
    with pytest.raises(ScenarioError, match=r"accounts\[0\].hidden_subscribers"):
        scenario_from_dict(
            {"accounts": [{"id": "a", "platform": "youtube", "hidden_subscribers": "yes"}]}
        )
    assert scenario_from_dict({"rate_limit_headers": True}).rate_limit_headers is True
    with pytest.raises(ScenarioError, match="rate_limit_headers: must be true or false"):
        scenario_from_dict({"rate_limit_headers": 1})
    assert replace(Scenario(accounts=()), rate_limit_headers=True).rate_limit_headers


@pytest.mark.parametrize(
    ("account_id", "recorded"),
    [("sa_tiktok_brand", "health_degraded.json"), ("sa_instagram_new", "health_minimal.json")],
)
async def test_the_simulator_reads_health_like_the_real_server(
    account_id: str, recorded: str
) -> None:
    async with TestClient(TestServer(Simulator(demo_scenario()).app())) as client:
        status, content_type, body, _ = await fetch(client, f"/v1/accounts/{account_id}/health")
    answer = real(recorded)
    assert (status, content_type) == (answer["status"], answer["content_type"])
    assert shape(body) == shape(answer["body"])
