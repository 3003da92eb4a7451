"""A real Prometheus (Debian's package) scrapes the real exporter process and stores its series."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fake_unipost import API_KEY, FakeUniPost, Reply, snapshot, zero_filled
from tests.helpers import real_prometheus, start_process, stop

pytestmark = pytest.mark.promtool


def handler(account_id: str) -> Reply:
    if account_id == "sa_twitter_2":
        return zero_filled(account_id)
    return snapshot(account_id, followers=4242, specific={"listed_count": 7})


@pytest.fixture
async def fake() -> AsyncIterator[FakeUniPost]:
    async with FakeUniPost(handler) as fake:
        yield fake


async def query(session: aiohttp.ClientSession, base: str, promql: str) -> list[Any]:
    async with session.get(f"{base}/api/v1/query", params={"query": promql}) as response:
        body = await response.json()
    assert body["status"] == "success", body
    result: list[Any] = body["data"]["result"]
    return result


async def test_prometheus_scrapes_the_exporter(fake: FakeUniPost, tmp_path: Path) -> None:
    process, _ = await start_process(fake, tmp_path)
    try:
        async with (
            real_prometheus(tmp_path, process.port) as base,
            aiohttp.ClientSession() as session,
        ):
            followers: list[Any] = []
            for _ in range(300):
                try:
                    followers = await query(session, base, "unipost_account_followers")
                except aiohttp.ClientError:
                    followers = []
                if len(followers) == 3:
                    break
                await asyncio.sleep(0.1)
            assert {r["metric"]["account_id"] for r in followers} == {
                "sa_twitter_1",
                "sa_instagram_3",
                "sa_youtube_4",
            }, "the zero-filled account never becomes a data point"
            assert {r["value"][1] for r in followers} == {"4242"}
            async with session.get(f"{base}/api/v1/targets") as response:
                targets = (await response.json())["data"]["activeTargets"]
            assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]
            failures = await query(session, base, "unipost_upstream_failures_total")
            assert [r["metric"]["account_id"] for r in failures] == ["sa_twitter_2"]
            status = await query(session, base, 'unipost_account_status{status="ok"}')
            assert len(status) == 3
    finally:
        code, _ = await stop(process)
    assert code == 0
    assert API_KEY.encode() not in process.stderr
