"""The simulator's workspace reads (exporter/simulator/workspace.py): the same shapes as the
real server's recordings (tests/fixtures/real/), the plan gate, and UniPost's official
Python SDK (`unipost` on PyPI) reading every answer with its typed methods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import unipost
from aiohttp.test_utils import TestClient, TestServer
from unipost.errors import UniPostError

from exporter.client import WORKSPACE_PATHS
from exporter.simulator import DEFAULT_SIM_KEY, Simulator, demo_scenario
from exporter.simulator.model import WORKSPACE_READ_PATHS
from exporter.simulator.scenario import ScenarioError, scenario_from_dict
from tests.fake_unipost import recorded_answer

NOW = 1_795_773_600.5  # 2026-11-27T10:00:00.5Z


def test_the_simulator_serves_the_paths_the_exporter_reads() -> None:
    assert set(WORKSPACE_READ_PATHS) == set(WORKSPACE_PATHS.values())


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, TestClient[Any, Any]]]:
    simulator = Simulator(demo_scenario(), clock=lambda: NOW)
    async with TestClient(TestServer(simulator.app())) as client:
        yield simulator, client


async def get(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await client.get(path, headers={"Authorization": f"Bearer {DEFAULT_SIM_KEY}"})
    assert response.content_type == "application/json"
    return response.status, await response.json()


def keys(value: Any) -> Any:
    """A body's keys, all the way down (lists: the union over their items)."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            merged.update(keys(item) if isinstance(item, dict) else {})
        return [merged]
    return None


@pytest.mark.parametrize(
    ("path", "fixture", "optional"),
    [
        ("/v1/post-delivery-jobs/summary", "delivery_jobs_summary.json", set()),
        ("/v1/analytics/by-platform", "analytics_by_platform.json", set()),
        ("/v1/analytics/summary", "analytics_summary.json", set()),
        # `warning` is omitted below 80% of the limit (omitempty).
        ("/v1/usage", "usage_basic.json", {"warning"}),
    ],
)
async def test_each_answer_has_the_real_server_s_shape(
    sim: tuple[Simulator, TestClient[Any, Any]], path: str, fixture: str, optional: set[str]
) -> None:
    status, body = await get(sim[1], path)
    answer = recorded_answer(fixture)
    assert status == answer["status"]
    expected = keys(answer["body"])
    if optional:
        expected["data"] = {k: v for k, v in expected["data"].items() if k not in optional}
    assert keys(body) == expected


async def test_platforms_lists_all_nine_with_the_real_fields_in_random_order(
    sim: tuple[Simulator, TestClient[Any, Any]],
) -> None:
    orders = []
    known = keys(recorded_answer("analytics_platforms.json")["body"]["data"])[0]
    for _ in range(4):
        status, body = await get(sim[1], "/v1/analytics/platforms")
        assert status == 200
        orders.append([entry["platform"] for entry in body["data"]])
        for entry in body["data"]:
            assert set(entry) <= set(known), entry["platform"]
    assert {len(set(order)) for order in orders} == {9}
    assert len({tuple(order) for order in orders}) > 1, "a Go map's order, not a fixed one"


async def test_an_unlimited_plan_is_minus_one_with_no_warning() -> None:
    simulator = Simulator(scenario_from_dict({"plan": "team"}), clock=lambda: NOW)
    async with TestClient(TestServer(simulator.app())) as client:
        _, body = await get(client, "/v1/usage")
    assert keys(body) == keys(recorded_answer("usage_team_unlimited.json")["body"])
    assert (body["data"]["post_limit"], body["data"]["plan"]) == (-1, "team")
    assert body["data"]["resets_at"] == "2026-12-01T00:00:00Z"


@pytest.mark.parametrize("report", ["by-platform", "summary", "platforms"])
async def test_the_free_plan_gets_the_plan_gate_s_402_on_every_analytics_read(
    sim: tuple[Simulator, TestClient[Any, Any]], report: str
) -> None:
    simulator, client = sim
    simulator.plan = "free"
    status, body = await get(client, f"/v1/analytics/{report}")
    answer = recorded_answer("error_402_plan_feature_not_available.json")
    assert (status, keys(body)) == (answer["status"], keys(answer["body"]))
    assert body["error"]["message"] == answer["body"]["error"]["message"]
    # Usage and the queue are not gated.
    assert (await get(client, "/v1/usage"))[0] == 200


def test_a_scenario_s_plan_must_be_one_of_uniPost_s() -> None:
    with pytest.raises(ScenarioError, match="plan: must be one of free, api, basic"):
        scenario_from_dict({"plan": "platinum"})


def _read_with_the_sdk(base_url: str) -> dict[str, Any]:
    client = unipost.UniPost(api_key=DEFAULT_SIM_KEY, base_url=base_url, timeout=10)
    return {
        "usage": client.usage.get(),
        "delivery": client.delivery_jobs.summary(),
        "summary": client.analytics.summary(),
        "by_platform": client.analytics.by_platform(),
        "platforms": client.analytics.platforms(),
    }


def _analytics_error(base_url: str) -> UniPostError:
    client = unipost.UniPost(api_key=DEFAULT_SIM_KEY, base_url=base_url, timeout=10)
    try:
        client.analytics.by_platform()
    except UniPostError as exc:
        return exc
    raise AssertionError("no error")


async def test_uniposts_official_sdk_reads_the_simulator_with_its_typed_methods() -> None:
    simulator = Simulator(demo_scenario())
    async with TestServer(simulator.app(), host="127.0.0.1") as server:
        base_url = str(server.make_url("")).rstrip("/")
        read = await asyncio.to_thread(_read_with_the_sdk, base_url)
        usage = read["usage"]
        assert isinstance(usage, unipost.types.Usage)
        assert (usage.plan, usage.post_limit) == ("basic", 2500)
        assert usage.post_count > 0 and usage.period
        assert read["delivery"]["dead_count"] == simulator.scenario.dead_delivery_jobs == 1
        assert read["summary"]["posts"]["total"] > 0
        platforms = {row["platform"] for row in read["by_platform"]}
        assert {"twitter", "instagram", "tiktok"} <= platforms
        assert len(read["platforms"]) == 9
        # A free plan: the 402 arrives as the SDK's typed error, with UniPost's code.
        simulator.plan = "free"
        error = await asyncio.to_thread(_analytics_error, base_url)
        assert (error.status, error.code) == (402, "plan_feature_not_available")
        assert "paid plan" in str(error)
