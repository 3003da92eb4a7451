"""Parsing the workspace reads: every real answer shape (tests/fixtures/real/), and a body
that is not the documented shape, an unsafe name or a negative count."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from exporter.parse import INVALID_RESPONSE, ApiError
from exporter.workspace_answers import (
    PLAN_FEATURE_NOT_AVAILABLE,
    DeliveryJobs,
    Parsed,
    PlatformHealth,
    PlatformPosts,
    Usage,
    parse_by_platform,
    parse_delivery_jobs,
    parse_platforms,
    parse_summary,
    parse_usage,
)
from tests.fake_unipost import recorded_answer


def recorded(name: str) -> tuple[int, bytes]:
    answer = recorded_answer(name)
    return answer["status"], json.dumps(answer["body"]).encode()


def data(value: Any) -> bytes:
    return json.dumps({"data": value, "request_id": "req_1"}).encode()


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_usage_of_a_plan_with_a_limit() -> None:
    assert parse_usage(*recorded("usage_basic.json")) == Parsed(
        Usage(
            plan="basic",
            post_limit=2500.0,
            posts=(("published", 1980.0), ("scheduled", 40.0), ("quota_hold", 3.0)),
            resets_at=at("2027-01-01T00:00:00+00:00"),
            scheduling_allowed=True,
        )
    )


def test_an_unlimited_plan_has_no_limit_not_a_negative_one() -> None:
    parsed = parse_usage(*recorded("usage_team_unlimited.json"))
    assert isinstance(parsed, Parsed)
    assert (parsed.value.plan, parsed.value.post_limit, parsed.skipped) == ("team", None, 0)


def test_delivery_jobs() -> None:
    assert parse_delivery_jobs(*recorded("delivery_jobs_summary.json")) == Parsed(
        DeliveryJobs(pending=4, running=1, retrying=2, dead=1, recovered_today=7)
    )


def test_by_platform_keeps_only_the_counters_each_platform_fills() -> None:
    parsed = parse_by_platform(*recorded("analytics_by_platform.json"))
    assert isinstance(parsed, Parsed)
    rows = {row.platform: row for row in parsed.value}
    # Instagram's adapter never asks for impressions: its 0 is "not provided", left out.
    assert rows["instagram"] == PlatformPosts(
        "instagram",
        24,
        2,
        (("reach", 18200), ("likes", 1310), ("comments", 95), ("shares", 40), ("saves", 61)),
    )
    assert dict(rows["twitter"].engagement) == {
        "impressions": 52000, "likes": 1900, "comments": 210, "shares": 160, "saves": 88,
    }  # fmt: skip
    assert dict(rows["linkedin"].engagement) == {"likes": 220, "comments": 31}
    assert "impressions" not in dict(rows["tiktok"].engagement)


def test_a_real_zero_of_a_counter_the_platform_fills_is_kept() -> None:
    body = data([{"platform": "twitter", "posts": 1, "accounts": 1, "impressions": 0,
                  "likes": 0, "comments": 0, "shares": 0, "saves": 0}])  # fmt: skip
    parsed = parse_by_platform(200, body)
    assert isinstance(parsed, Parsed)
    assert dict(parsed.value[0].engagement)["likes"] == 0


def test_summary_counts_the_window_s_posts_by_status() -> None:
    assert parse_summary(*recorded("analytics_summary.json")) == Parsed(
        (("all", 112.0), ("published", 101.0), ("scheduled", 6.0), ("failed", 3.0))
    )


def test_platforms_health_and_freshness() -> None:
    parsed = parse_platforms(*recorded("analytics_platforms.json"))
    assert isinstance(parsed, Parsed)
    entries = {entry.platform: entry for entry in parsed.value}
    assert len(entries) == 9
    assert entries["tiktok"] == PlatformHealth(
        "tiktok", "degraded", at("2026-12-06T06:30:00+00:00")
    )
    assert entries["facebook"] == PlatformHealth("facebook", "not_connected", None)
    # The epoch, after a refresh request, is no fetch at all.
    assert entries["threads"].last_fetch is None


def test_an_unknown_health_value_is_unknown() -> None:
    body = data([{"platform": "twitter", "health": "on_fire"}])
    assert parse_platforms(200, body) == Parsed((PlatformHealth("twitter", "unknown", None),))


def test_the_plan_gate_is_an_error_with_its_code() -> None:
    outcome = parse_by_platform(*recorded("error_402_plan_feature_not_available.json"))
    assert isinstance(outcome, ApiError)
    assert (outcome.code, outcome.http_status) == (PLAN_FEATURE_NOT_AVAILABLE, 402)


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_usage, b"<html>bad gateway</html>"),
        (parse_usage, data([])),
        (parse_usage, data({"plan": "basic"})),
        (
            parse_usage,
            data({**json.loads(recorded("usage_basic.json")[1])["data"], "post_count": "many"}),
        ),
        (
            parse_usage,
            data(
                {**json.loads(recorded("usage_basic.json")[1])["data"], "resets_at": "next month"}
            ),
        ),
        (parse_delivery_jobs, data({"pending_count": 1})),
        (parse_by_platform, data({"platform": "twitter"})),
        (parse_by_platform, data(["twitter"])),
        (parse_summary, data({"posts": None})),
        (parse_platforms, data([{"platform": "x", "last_successful_fetch_at": "yesterday"}])),
    ],
)
def test_a_body_that_is_not_the_documented_shape_is_invalid(parse: Any, body: bytes) -> None:
    outcome = parse(200, body)
    assert isinstance(outcome, ApiError) and outcome.code == INVALID_RESPONSE


def test_unsafe_names_and_negative_counts_are_skipped_and_counted() -> None:
    usage = json.loads(recorded("usage_basic.json")[1])["data"]
    parsed = parse_usage(200, data({**usage, "plan": 'basic"} evil', "scheduled_count": -4}))
    assert isinstance(parsed, Parsed)
    assert parsed.skipped == 2
    assert parsed.value.plan is None
    assert dict(parsed.value.posts) == {"published": 1980, "quota_hold": 3}
    rows = [
        {"platform": "Twitter X!", "posts": 3, "accounts": 1},
        {"platform": "twitter", "posts": -1, "accounts": 1, "impressions": 10, "likes": -5,
         "comments": 1, "shares": 0, "saves": 0},
    ]  # fmt: skip
    parsed_rows = parse_by_platform(200, data(rows))
    assert isinstance(parsed_rows, Parsed)
    assert parsed_rows.skipped == 3
    assert parsed_rows.value == (
        PlatformPosts("twitter", None, 1, (("impressions", 10), ("comments", 1), ("shares", 0),
                                           ("saves", 0))),
    )  # fmt: skip
    jobs = parse_delivery_jobs(200, data({"pending_count": -1, "running_count": 0,
                                          "retrying_count": 0, "dead_count": 2,
                                          "recovered_today_count": 0}))  # fmt: skip
    assert isinstance(jobs, Parsed) and jobs.skipped == 1 and jobs.value.pending is None
