"""The UniPost simulator, every behaviour asserted through HTTP, with an injected clock."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from exporter.parse import Snapshot, UpstreamFailure, classify
from exporter.simulator import (
    DEFAULT_SIM_KEY,
    Scenario,
    ScenarioError,
    SimAccount,
    Simulator,
    demo_scenario,
    load_scenario,
    scenario_from_dict,
)

AUTH = {"Authorization": f"Bearer {DEFAULT_SIM_KEY}"}


class Sim:
    def __init__(self, client: TestClient[Any, Any], clock: list[float]) -> None:
        self.client = client
        self.clock = clock

    async def get(self, path: str, key: str = DEFAULT_SIM_KEY) -> tuple[int, Any, Any]:
        response = await self.client.get(path, headers={"Authorization": f"Bearer {key}"})
        return response.status, await response.json(), response.headers

    async def metrics(self, account_id: str) -> tuple[int, Any, Any]:
        return await self.get(f"/v1/accounts/{account_id}/metrics")


async def simulator(scenario: Scenario) -> AsyncIterator[Sim]:
    clock = [1_800_000_000.0]
    sim = Simulator(scenario, clock=lambda: clock[0])
    async with TestClient(TestServer(sim.app())) as client:
        yield Sim(client, clock)


QUIET = dict(upstream_error_rate=0.0, rate_limit_capacity=10_000, rate_limit_refill_per_second=1000)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async for s in simulator(replace(demo_scenario(), **QUIET)):  # type: ignore[arg-type]
        yield s


async def test_a_wrong_key_is_401_in_the_auth_middleware_s_envelope(sim: Sim) -> None:
    status, body, _ = await sim.get("/v1/accounts/sa_twitter_acme/metrics", key="up_live_wrong")
    assert status == 401
    # The real auth middleware sends code and message only.
    assert body == {"error": {"code": "UNAUTHORIZED", "message": "Invalid or missing API key"}}


async def test_snapshots_are_wrapped_in_data_and_parse_as_good(sim: Sim) -> None:
    status, body, _ = await sim.metrics("sa_twitter_acme")
    assert status == 200 and body["request_id"].startswith("req_")
    data = body["data"]
    assert data["social_account_id"] == "sa_twitter_acme"
    assert set(data["platform_specific"]) == {"tweet_count", "listed_count"}
    assert data["platform_specific"]["tweet_count"] == data["post_count"]
    status, body, _ = await sim.get("/v1/profiles/pr_1/accounts/sa_youtube_channel/metrics")
    specific = body["data"]["platform_specific"]
    assert specific["hidden_subscriber_count"] is False
    assert specific["subscriber_count_rounded"] is True
    assert specific["view_count"] > 0
    status, body, _ = await sim.metrics("sa_tiktok_brand")
    assert "likes_count" in body["data"]["platform_specific"]
    parsed = classify(200, _json(body))
    assert isinstance(parsed, Snapshot) and parsed.followers == body["data"]["follower_count"]


async def followers_over(sim: Sim, account_id: str, days: int) -> list[int]:
    values = []
    for _ in range(days):
        _, body, _ = await sim.metrics(account_id)
        values.append(body["data"]["follower_count"])
        sim.clock[0] += 86400
    return values


async def test_follower_counts_trend_with_daily_noise(sim: Sim) -> None:
    growth = await followers_over(sim, "sa_tiktok_brand", 30)
    decline = await followers_over(sim, "sa_twitter_legacy", 30)
    plateau = await followers_over(sim, "sa_instagram_studio", 120)
    assert growth[-1] > growth[0] * 3  # 5%/day for 30 days
    assert decline[-1] < decline[0] * 0.8
    early, late = plateau[10] - plateau[0], plateau[-1] - plateau[-11]
    assert early > 5 * max(late, 1), "a plateau grows early, then flattens"
    sim.clock[0] += 3600 * 6
    _, first, _ = await sim.metrics("sa_instagram_studio")
    sim.clock[0] += 3600 * 6
    _, second, _ = await sim.metrics("sa_instagram_studio")
    assert first["data"]["follower_count"] != second["data"]["follower_count"], "daily noise"


async def test_following_and_posts_move(sim: Sim) -> None:
    _, before, _ = await sim.metrics("sa_twitter_acme")
    sim.clock[0] += 86400 * 3
    sim.clock[0] += 1000  # past the X window
    _, after, _ = await sim.metrics("sa_twitter_acme")
    assert after["data"]["post_count"] > before["data"]["post_count"]
    assert after["data"]["following_count"] != before["data"]["following_count"]


async def test_a_second_x_lookup_inside_the_window_is_zero_filled_429(sim: Sim) -> None:
    _, first, _ = await sim.metrics("sa_twitter_acme")
    sim.clock[0] += 60
    _, second, _ = await sim.metrics("sa_twitter_acme")
    sim.clock[0] += 900
    _, third, _ = await sim.metrics("sa_twitter_acme")
    assert first["data"]["follower_count"] > 0
    assert second["data"]["follower_count"] == 0
    assert second["data"]["platform_specific"]["upstream_status"] == 429
    assert isinstance(classify(200, _json(second)), UpstreamFailure)
    assert third["data"]["follower_count"] > 0


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("account_id", "status", "code"),
    [
        ("sa_threads_old", 409, "ACCOUNT_DISCONNECTED"),
        ("sa_instagram_shop", 409, "NEEDS_RECONNECT"),
        ("sa_tiktok_shop", 429, "UPSTREAM_RATE_LIMITED"),
        ("sa_linkedin_company", 501, "NOT_SUPPORTED"),
        ("sa_nobody_here", 404, "NOT_FOUND"),
    ],
)
async def test_account_failures(sim: Sim, account_id: str, status: int, code: str) -> None:
    got, body, headers = await sim.metrics(account_id)
    assert (got, body["error"]["code"]) == (status, code)
    assert "X-UniPost-RateLimit-Remaining" not in headers  # GETs are not limited upstream


async def test_an_x_tier_without_access_is_a_zero_filled_403(sim: Sim) -> None:
    _, body, _ = await sim.metrics("sa_twitter_noscope")
    assert classify(200, _json(body)) == UpstreamFailure("twitter", "403")


async def test_occasional_upstream_errors_are_502() -> None:
    scenario = replace(demo_scenario(), **{**QUIET, "upstream_error_rate": 0.3})  # type: ignore[arg-type]
    async for sim in simulator(scenario):
        statuses = []
        for _ in range(200):
            status, body, _ = await sim.metrics("sa_instagram_studio")
            statuses.append(status)
            if status == 502:
                assert body["error"]["code"] == "UPSTREAM_ERROR"
        assert 40 <= statuses.count(502) <= 80


async def test_the_workspace_limiter_sets_headers_and_answers_429_with_retry_after() -> None:
    scenario = replace(
        demo_scenario(),
        upstream_error_rate=0.0,
        rate_limit_headers=True,
        rate_limit_capacity=5,
        rate_limit_refill_per_second=0.5,
    )
    async for sim in simulator(scenario):
        answers = [await sim.metrics("sa_instagram_studio") for _ in range(6)]
        assert [a[0] for a in answers] == [200] * 5 + [429]
        remaining = [int(a[2]["X-UniPost-RateLimit-Remaining"]) for a in answers]
        assert remaining == [4, 3, 2, 1, 0, 0]
        assert all(a[2]["X-UniPost-RateLimit-Limit"] == "5" for a in answers)
        assert int(answers[4][2]["X-UniPost-RateLimit-Reset"]) == 1_800_000_000 + 10
        assert answers[5][1]["error"]["code"] == "RATE_LIMITED"
        assert answers[5][2]["Retry-After"] == "2"
        sim.clock[0] += 2
        assert (await sim.metrics("sa_instagram_studio"))[0] == 200


async def test_listing_accounts_with_the_platform_filter(sim: Sim) -> None:
    status, body, _ = await sim.get("/v1/accounts")
    assert status == 200
    connected = [a for a in demo_scenario().accounts if a.behaviour != "disconnected"]
    assert len(body["data"]) == len(connected) == body["meta"]["total"]
    statuses = {row["id"]: row["status"] for row in body["data"]}
    assert "sa_threads_old" not in statuses  # disconnected: left out, as with a real key
    assert statuses["sa_instagram_shop"] == "reconnect_required"
    _, body, _ = await sim.get("/v1/accounts?platform=twitter")
    assert {row["id"] for row in body["data"]} == {
        "sa_twitter_acme",
        "sa_twitter_legacy",
        "sa_twitter_noscope",
    }
    assert {row["account_name"] for row in body["data"]} == {"acme", "acme_legacy", "acme_jobs"}


async def test_listing_accounts_by_external_user_id() -> None:
    scenario = Scenario(
        accounts=(
            SimAccount("sa_instagram_1", "instagram", external_user_id="user_7"),
            SimAccount("sa_instagram_2", "instagram"),
        )
    )
    async for sim in simulator(scenario):
        _, body, _ = await sim.get("/v1/accounts?external_user_id=user_7")
        assert [row["id"] for row in body["data"]] == ["sa_instagram_1"]
        assert body["data"][0]["account_name"] is None


async def test_the_same_seed_gives_the_same_answers() -> None:
    scenario = replace(demo_scenario(), upstream_error_rate=0.2, seed=42)

    async def run() -> list[Any]:
        async for sim in simulator(scenario):
            out = []
            for account in scenario.accounts:
                status, body, _ = await sim.metrics(account.id)
                body.pop("request_id", None)
                out.append((status, body))
                sim.clock[0] += 3600
            return out
        raise AssertionError

    assert await run() == await run()


def test_scenario_files(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "seed: 9\nx_window: 1m\naccounts:\n"
        "  - {id: sa_twitter_a, platform: twitter, followers: 10, trend: decline}\n"
    )
    scenario = load_scenario(path)
    assert scenario.seed == 9 and scenario.x_window == 60
    assert scenario.accounts == (
        SimAccount("sa_twitter_a", "twitter", followers=10, trend="decline"),
    )
    for text, message in [
        ("sedd: 1", "sedd: unknown key"),
        ("accounts: [{id: a, platform: x, trend: up}]", "accounts[0].trend: must be one of"),
        ("accounts: [{id: a}]", "accounts[0].platform: is required"),
        ("seed: -1", "seed: must be a non-negative number"),
    ]:
        path.write_text(text)
        with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_scenario(path)


def test_scenario_health_keys() -> None:
    scenario = scenario_from_dict(
        {"accounts": [{"id": "sa_x_1", "platform": "twitter", "health": "degraded",
                       "token_expires_in_days": 3, "last_post_days_ago": None,
                       "last_error": "rate_limited", "last_error_message": "slow"}]}
    )  # fmt: skip
    (account,) = scenario.accounts
    assert (account.health, account.token_expires_in_days, account.last_error) == (
        "degraded", 3, "rate_limited"
    )  # fmt: skip
    for bad, message in [
        ({"health": "sick"}, "accounts[0].health: must be ok or degraded"),
        ({"token_expires_in_days": "soon"}, "accounts[0].token_expires_in_days: must be"),
    ]:
        with pytest.raises(ScenarioError, match=re.escape(message)):
            scenario_from_dict({"accounts": [{"id": "a", "platform": "x", **bad}]})


def test_a_bad_scenario_names_every_problem_at_once() -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(
            {
                "sedd": 1,
                "x_window": "soon",
                "accounts": [{"id": "a", "platform": "x", "trend": "up"}, {"platform": "x"}],
            }
        )
    assert caught.value.problems == [
        "sedd: unknown key; did you mean seed?",
        'x_window: "soon" is not a duration (write it like 30s, 5m or 1h)',
        "accounts[0].trend: must be one of growth, plateau, decline",
        "accounts[1].id: is required",
    ]
