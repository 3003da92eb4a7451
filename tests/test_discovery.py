"""Account discovery: against the simulator on loopback, and on an injected clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from exporter import client as client_module
from exporter.accounts import LOGGED_PER_LISTING
from exporter.client import MAX_BODY_BYTES
from exporter.config import parse_config
from exporter.discovery import Discoverer
from exporter.exposition import FastExposition
from exporter.scheduler import Scheduler
from exporter.server import build_registry, build_tail_registry, create_app
from exporter.simulator import DEFAULT_SIM_KEY, SimAccount, Simulator, demo_scenario
from exporter.store import Store
from tests.fake_unipost import API_KEY, FakeUniPost, benchmark_listing, snapshot
from tests.helpers import (
    FakeClock,
    Samples,
    only,
    parse_exposition,
    scrape,
    scrape_until,
    series,
    statuses,
    value,
)


def discovery_config(base_url: str, **discovery: Any) -> Any:
    raw = {
        "unipost": {"base_url": base_url, "api_key": DEFAULT_SIM_KEY, "requests_per_minute": 6000},
        "polling": {"interval": "1s", "platform_intervals": {"twitter": "1s"}},
        "discovery": {"enabled": True, "refresh_interval": "300ms", **discovery},
        "accounts": [{"id": "sa_instagram_studio", "interval": "2s", "labels": {"team": "growth"}}],
    }
    return parse_config(yaml.safe_dump(raw), {})


class Stack:
    def __init__(self, simulator: Simulator, client: TestClient[Any, Any]) -> None:
        self.simulator = simulator
        self.client = client

    async def scrape(self) -> Samples:
        return parse_exposition(await (await self.client.get("/metrics")).text())

    async def until(self, check: Any, seconds: float = 10) -> Samples:
        return await scrape_until(
            self.scrape, check, seconds, lambda s: series(s, "unipost_account_info")
        )


async def stack(**discovery: Any) -> AsyncIterator[Stack]:
    scenario = replace(demo_scenario(), upstream_error_rate=0.0, x_window=0.5)
    simulator = Simulator(scenario)
    async with TestServer(simulator.app(), host="127.0.0.1") as sim_server:
        base_url = str(sim_server.make_url("")).rstrip("/")
        app = create_app(discovery_config(base_url, **discovery))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Stack(simulator, client)


def ids(samples: Samples, name: str = "unipost_account_status") -> set[str]:
    return {labels["account_id"] for labels in series(samples, name)}


async def test_discovered_accounts_are_polled_with_names_and_exclusions() -> None:
    # Listed with an API key, a disconnected account is left out.
    listed = {a.id for a in demo_scenario().accounts if a.behaviour != "disconnected"}
    expected = listed - {"sa_twitter_legacy"}
    async for s in stack(exclude=["sa_twitter_legacy"]):
        samples = await s.until(
            lambda smp: (
                ids(smp) == expected and not series(smp, "unipost_account_status", status="pending")
            )
        )
        assert value(samples, "unipost_account_info", account_name="acme") == 1
        assert value(samples, "unipost_account_info", account_id="sa_instagram_shop") == 1
        # Listed as reconnect_required: its status without a metrics call.
        assert statuses(samples)["sa_instagram_shop"] == "needs_reconnect"
        # Listed in accounts: too, it keeps its own labels.
        assert value(
            samples, "unipost_account_info", account_id="sa_instagram_studio", team="growth"
        )
        assert value(samples, "unipost_account_followers", account_id="sa_tiktok_brand") > 0  # type: ignore[operator]
        assert value(samples, "unipost_api_requests_total", endpoint="accounts", status_code="200")


async def test_the_platform_filter() -> None:
    async for s in stack(platforms=["twitter"]):
        samples = await s.until(lambda smp: "sa_twitter_acme" in ids(smp))
        await asyncio.sleep(0.5)
        samples = await s.until(lambda smp: True)
        # The configured instagram account stays; discovery adds only twitter ones.
        assert ids(samples) == {
            "sa_twitter_acme",
            "sa_twitter_legacy",
            "sa_twitter_noscope",
            "sa_instagram_studio",
        }


async def test_accounts_appear_and_leave_and_a_failed_refresh_keeps_the_list(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async for s in stack(platforms=["twitter", "youtube"]):
        await s.until(lambda smp: ids(smp) >= {"sa_twitter_acme", "sa_youtube_channel"})
        s.simulator.accounts["sa_youtube_new"] = SimAccount("sa_youtube_new", "youtube", "new")
        del s.simulator.accounts["sa_twitter_legacy"]
        samples = await s.until(
            lambda smp: (
                "sa_youtube_new" in ids(smp, "unipost_account_followers")
                and "sa_twitter_legacy" not in ids(smp)
            )
        )
        assert not any(
            labels.get("account_id") == "sa_twitter_legacy"
            for (_, label_set) in samples
            for labels in [dict(label_set)]
        ), "an account that left the listing leaves no series"
        s.simulator.fail_listing = True
        del s.simulator.accounts["sa_youtube_new"]  # unseen while listing fails
        samples = await s.until(
            lambda smp: (
                (value(smp, "unipost_api_errors_total", account_id="", code="INTERNAL_ERROR") or 0)
                >= 1
            )
        )
        await asyncio.sleep(0.5)
        samples = await s.until(lambda smp: True)
        assert "sa_youtube_new" in ids(samples), "a failed refresh keeps the last good list"
        warnings = [r for r in caplog.records if "listing accounts failed" in r.getMessage()]
        assert len(warnings) == 1, "logged once, not at every retry"
        s.simulator.fail_listing = False


async def test_refreshes_spend_the_budget_and_retry_sooner_after_a_failure() -> None:
    clock = FakeClock()
    store = Store()
    fake = FakeUniPost(snapshot)
    client = fake.client(clock)
    fake.listing = [{"id": "sa_instagram_a", "platform": "instagram", "account_name": "A"}]
    config = parse_config(
        yaml.safe_dump(
            {
                "unipost": {"api_key": "k", "requests_per_minute": 60},
                "discovery": {"enabled": True, "refresh_interval": "1h"},
                # Only the listing and the accounts' polls take slots here.
                "polling": {
                    "usage_interval": "0s",
                    "delivery_interval": "0s",
                    "analytics_interval": "0s",
                },
            }
        ),
        {},
    )
    scheduler = Scheduler(*only(config), store, client, clock)
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )
    discoverer = Discoverer(
        config.workspaces[0].discovery, client, scheduler.accounts, scheduler.budget, store, clock
    )
    tasks = [asyncio.create_task(scheduler.run()), asyncio.create_task(discoverer.run())]
    try:
        await clock.advance(5)
        # The listing took the first budget slot, the discovered account the next one.
        assert [(round(t - 1000), c) for t, c in client.calls] == [
            (0, "list None"),
            (1, "sa_instagram_a"),
        ]
        fake.listing = None  # the next refresh fails
        await clock.advance(3600)
        fake.listing = []  # and the one after it says the account is gone
        await clock.advance(61)
        lists = [round(t - 1000) for t, c in client.calls if c.startswith("list")]
        assert lists == [0, 3600, 3660], "retried a minute after the failure, not an hour"
        samples = scrape(store)
        assert value(samples, "unipost_api_errors_total", account_id="", code="UPSTREAM_ERROR") == 1
        assert series(samples, "unipost_account_status") == []
        assert fast.render() == generate_latest(build_registry([store], with_process_metrics=False))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def discovered_by_http(fake: FakeUniPost, **unipost: Any) -> Any:
    """The exporter app, discovering through `fake` over loopback."""
    raw = {
        "unipost": {"base_url": fake.base_url, "api_key": API_KEY, **unipost},
        "polling": {"interval": "1h", "health_interval": "0s"},
        "discovery": {"enabled": True},
    }
    return create_app(parse_config(yaml.safe_dump(raw), {}))


async def test_a_listing_of_thousands_is_read_as_it_arrives_and_logged_in_brief(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The real server lists every account in one answer: 5,000 of them are 2 MB, more than
    # any snapshot may be (client.MAX_BODY_BYTES).
    fake = FakeUniPost(snapshot)
    fake.listing_body = benchmark_listing(5000)
    assert len(fake.listing_body) > MAX_BODY_BYTES
    caplog.set_level(logging.INFO)
    async with fake, TestClient(TestServer(await discovered_by_http(fake))) as client:

        async def scraped() -> Samples:
            return parse_exposition(await (await client.get("/metrics")).text())

        samples = await scrape_until(
            scraped, lambda s: len(ids(s, "unipost_account_info")) == 5000, 20, lambda s: s
        )
    names = {labels["account_name"] for labels in series(samples, "unipost_account_info")}
    assert len(names) == 5000 and "acct_4999" in names
    lines = [r.getMessage() for r in caplog.records if "discovered" in r.getMessage()]
    assert lines.count("account discovered") == LOGGED_PER_LISTING
    summary = [r for r in caplog.records if r.getMessage() == "accounts discovered"]
    assert len(summary) == 1 and getattr(summary[0], "fields", {})["more"] == 5000 - 20


async def test_a_listing_over_its_cap_is_invalid_and_keeps_the_last_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeUniPost(snapshot)
    fake.listing_body = benchmark_listing(10)
    monkeypatch.setattr(client_module, "MAX_LISTING_BYTES", len(fake.listing_body) - 1)
    async with fake, TestClient(TestServer(await discovered_by_http(fake))) as client:

        async def scraped() -> Samples:
            return parse_exposition(await (await client.get("/metrics")).text())

        samples = await scrape_until(
            scraped,
            lambda s: value(s, "unipost_api_errors_total", account_id="", code="INVALID_RESPONSE"),
            10,
            lambda s: s,
        )
    assert series(samples, "unipost_account_info") == []
