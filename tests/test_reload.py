"""Live reload: POST /-/reload (SIGHUP is in test_cli) against a fake UniPost on loopback, and
the scheduler's side of it on an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import load_config, parse_config
from exporter.config_child import load_config_in_child_async
from exporter.listing import ListedAccount
from exporter.options import Options
from exporter.scheduler import Scheduler
from exporter.server import create_app
from exporter.store import Store
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, error, snapshot, zero_filled
from tests.helpers import (
    FakeClock,
    Samples,
    SchedulerStack,
    free_port,
    make_config,
    only,
    parse_exposition,
    scrape,
    scrape_until,
    series,
    statuses,
    value,
)


def replies(account_id: str) -> Reply:
    if account_id == "sa_twitter_failing":
        return zero_filled(account_id)
    return snapshot(account_id, followers=len(account_id))


def write_config(
    path: Path, fake: FakeUniPost, accounts: list[str], rpm: int = 600, **extra: Any
) -> None:
    key_file = path.parent / "key"
    if not key_file.exists():
        key_file.write_text(API_KEY)
    raw = {
        "unipost": {
            "base_url": fake.base_url,
            "api_key_file": str(key_file),
            "requests_per_minute": rpm,
            "timeout": "2s",
        },
        "polling": {"interval": "1s", "platform_intervals": {"twitter": "1s"}, "max_backoff": "1h"},
        "accounts": [{"id": a} for a in accounts],
        **extra,
    }
    path.write_text(yaml.safe_dump(raw))


@dataclass
class Stack:
    fake: FakeUniPost
    client: TestClient[Any, Any]
    path: Path

    async def scrape(self) -> Samples:
        return parse_exposition(await (await self.client.get("/metrics")).text())

    async def until(self, check: Any, seconds: float = 10) -> Samples:
        return await scrape_until(self.scrape, check, seconds)

    async def reload(self) -> tuple[int, str]:
        response = await self.client.post("/-/reload")
        return response.status, await response.text()


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, accounts: list[str]) -> AsyncIterator[Stack]:
    async with FakeUniPost(replies) as fake:
        path = tmp_path / "config.yaml"
        write_config(path, fake, accounts)
        app = create_app(
            load_config(path), Options(loader=lambda: load_config_in_child_async(path))
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Stack(fake, client, path)


async def test_a_reload_adds_and_removes_accounts_and_keeps_the_rest(tmp_path: Path) -> None:
    async with stack(tmp_path, ["sa_instagram_kept", "sa_twitter_failing", "sa_youtube_gone"]) as s:
        before = await s.until(
            lambda x: (
                (value(x, "unipost_upstream_failures_total") or 0) >= 2
                and statuses(x).get("sa_instagram_kept") == "ok"
            )
        )
        loaded_at = value(before, "unipost_exporter_config_last_reload_success_timestamp_seconds")
        assert value(before, "unipost_exporter_config_last_reload_successful") == 1

        write_config(
            s.path, s.fake, ["sa_instagram_kept", "sa_twitter_failing", "sa_tiktok_new"], rpm=300
        )
        assert await s.reload() == (200, "Reloaded.\n")
        after = await s.scrape()
        # The budget takes effect at once; the removed account's series are gone.
        assert value(after, "unipost_exporter_budget_requests_per_minute") == 300
        assert "sa_youtube_gone" not in statuses(after)
        # Unchanged accounts keep their counters: the failing one's count did not restart.
        failures = value(after, "unipost_upstream_failures_total", account_id="sa_twitter_failing")
        assert failures is not None and failures >= 2
        assert value(after, "unipost_account_followers", account_id="sa_instagram_kept") == 17
        assert value(after, "unipost_exporter_config_last_reload_successful") == 1
        reloaded_at = value(after, "unipost_exporter_config_last_reload_success_timestamp_seconds")
        assert loaded_at is not None and reloaded_at is not None and reloaded_at >= loaded_at
        # The added account is polled.
        await s.until(lambda x: statuses(x).get("sa_tiktok_new") == "ok")
        gone_polls = s.fake.requested("sa_youtube_gone")
        await s.until(lambda x: s.fake.requested("sa_tiktok_new") >= 3)
        assert s.fake.requested("sa_youtube_gone") == gone_polls


async def test_a_bad_file_keeps_the_running_config_and_is_reported(tmp_path: Path) -> None:
    async with stack(tmp_path, ["sa_instagram_kept"]) as s:
        good_samples = await s.until(lambda x: statuses(x) == {"sa_instagram_kept": "ok"})
        loaded_at = value(
            good_samples, "unipost_exporter_config_last_reload_success_timestamp_seconds"
        )
        s.path.write_text(s.path.read_text().replace("interval: 1s", "interval: soon"))
        status, text = await s.reload()
        assert status == 500
        assert 'polling.interval: "soon" is not a duration (write it like 30s, 5m or 1h)' in text
        assert API_KEY not in text
        polls = s.fake.requested("sa_instagram_kept")
        samples = await s.until(lambda x: s.fake.requested("sa_instagram_kept") >= polls + 2)
        assert value(samples, "unipost_exporter_config_last_reload_successful") == 0
        assert (
            value(samples, "unipost_exporter_config_last_reload_success_timestamp_seconds")
            == loaded_at
        )
        assert statuses(samples) == {"sa_instagram_kept": "ok"}
        # Only POST reloads.
        assert (await s.client.get("/-/reload")).status == 405
        assert (await s.client.put("/-/reload")).status == 405


async def test_a_rotated_key_file_is_read_on_reload_and_used_at_once(tmp_path: Path) -> None:
    async with stack(tmp_path, ["sa_instagram_a", "sa_youtube_b"]) as s:
        await s.until(lambda x: set(statuses(x).values()) == {"ok"})
        s.fake.api_key = "up_test_ROTATED_key"  # UniPost revokes the old key
        await s.until(lambda x: set(statuses(x).values()) == {"unauthorized"})
        # The workspace is paused for a minute now; the new key must not wait for that.
        (tmp_path / "key").write_text("up_test_ROTATED_key\n")
        assert (await s.reload())[0] == 200
        samples = await s.until(lambda x: set(statuses(x).values()) == {"ok"}, seconds=5)
        assert "up_test_ROTATED_key" not in str(samples)
        assert s.fake.requests[-1].headers["Authorization"] == "Bearer up_test_ROTATED_key"


async def test_several_workspaces_reload_one_by_one(tmp_path: Path) -> None:
    async with FakeUniPost(replies) as fake:
        path = tmp_path / "config.yaml"

        def write(names: list[str]) -> None:
            workspaces = [
                {
                    "name": name,
                    "unipost": {"base_url": fake.base_url, "api_key": API_KEY},
                    "accounts": [{"id": f"sa_instagram_{name}"}],
                }
                for name in names
            ]
            path.write_text(
                yaml.safe_dump({"polling": {"interval": "1s"}, "workspaces": workspaces})
            )

        write(["acme", "globex"])
        app = create_app(
            load_config(path), Options(loader=lambda: load_config_in_child_async(path))
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:

            async def scrape() -> Samples:
                return parse_exposition(await (await client.get("/metrics")).text())

            def workspaces(samples: Samples) -> set[str]:
                return {
                    s["workspace"] for s in series(samples, "unipost_account_status", status="ok")
                }

            await scrape_until(scrape, lambda x: workspaces(x) == {"acme", "globex"})
            write(["globex", "initech"])
            assert (await client.post("/-/reload")).status == 200
            samples = await scrape_until(scrape, lambda x: workspaces(x) == {"globex", "initech"})
            assert not series(samples, "unipost_api_requests_total", workspace="acme")
            assert series(
                samples, "unipost_exporter_budget_requests_per_minute", workspace="initech"
            )


async def test_unchanged_accounts_keep_their_place_and_backoff() -> None:
    clock = FakeClock()
    store = Store()
    ids = ["sa_instagram_a", "sa_instagram_failing"]

    def respond(account_id: str) -> Reply:
        if account_id == "sa_instagram_failing":
            return zero_filled(account_id)
        return snapshot(account_id)

    client = FakeUniPost(respond).client(clock)
    config = make_config(ids, interval="10m")
    scheduler = Scheduler(*only(config), store, client, clock, rng=random.Random(1))
    task = asyncio.create_task(scheduler.run())
    try:
        await clock.advance(3 * 3600)
        failing = store.accounts["sa_instagram_failing"]
        before = {a.id: a.metrics_due for a in store.accounts.values()}
        streak = failing.consecutive_failures
        assert streak >= 3  # in backoff: 20m, 40m, 80m, ...
        calls = len(client.calls)

        scheduler.reconfigure(*only(make_config([*ids, "sa_instagram_new"], interval="10m")))
        await clock.advance(1)
        # Only the new account was polled; the others kept their due times and backoff.
        assert [c for _, c in client.calls[calls:]] == ["sa_instagram_new"]
        assert {i: store.accounts[i].metrics_due for i in ids} == {i: before[i] for i in ids}
        assert failing.consecutive_failures == streak

        scheduler.reconfigure(*only(make_config(["sa_instagram_new"], interval="10m")))
        assert set(store.accounts) == {"sa_instagram_new"}
        await clock.advance(3 * 3600)
        assert {c for _, c in client.calls[calls:]} == {"sa_instagram_new"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_turning_discovery_off_drops_the_discovered_accounts_only() -> None:
    clock = FakeClock()
    store = Store()
    client = FakeUniPost(snapshot).client(clock)
    with_discovery = parse_config(
        "unipost: {api_key: k}\naccounts: [{id: sa_instagram_listed}]\ndiscovery: {enabled: true}",
        {},
    )
    scheduler = Scheduler(*only(with_discovery), store, client, clock)
    listing = [
        ListedAccount("sa_instagram_listed", "instagram", "Listed", "active"),
        ListedAccount("sa_instagram_found", "instagram", "Found", "active"),
    ]
    await scheduler.accounts.sync_listing(listing, with_discovery.workspaces[0].discovery)
    assert set(store.accounts) == {"sa_instagram_listed", "sa_instagram_found"}

    without = parse_config("unipost: {api_key: k}\naccounts: [{id: sa_instagram_listed}]", {})
    scheduler.reconfigure(*only(without))
    assert set(store.accounts) == {"sa_instagram_listed"}
    # The listed account keeps what discovery taught it.
    assert store.accounts["sa_instagram_listed"].account_name == "Listed"


async def test_a_reload_that_fixes_the_address_polls_again_at_once(tmp_path: Path) -> None:
    # Production pacing: after a failure the next poll is 10 minutes away, the listing's 1.
    async with FakeUniPost(replies) as fake:
        path = tmp_path / "config.yaml"

        def write(base_url: str) -> None:
            raw = {
                "unipost": {"base_url": base_url, "api_key": API_KEY, "timeout": "2s"},
                "polling": {"interval": "5m", "max_backoff": "6h"},
                "discovery": {"enabled": True, "refresh_interval": "1h"},
                # X too: at a new address no request reached UniPost, so no X window was
                # spent and its 15-minute floor does not hold the fix back.
                "accounts": [
                    {"id": "sa_instagram_a"},
                    {"id": "sa_youtube_b"},
                    {"id": "sa_twitter_c"},
                ],
            }
            path.write_text(yaml.safe_dump(raw))

        write(f"http://127.0.0.1:{free_port()}")  # a wrong port: nothing listens there
        app = create_app(
            load_config(path), Options(loader=lambda: load_config_in_child_async(path))
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            s = Stack(fake, client, path)
            failed = await s.until(lambda x: set(statuses(x).values()) == {"error"}, seconds=15)
            assert value(failed, "unipost_api_errors_total", account_id="", code="CONNECTION_ERROR")
            write(fake.base_url)  # the fix
            assert await s.reload() == (200, "Reloaded.\n")
            fixed = await s.until(lambda x: set(statuses(x).values()) == {"ok"}, seconds=5)
            assert (
                value(fixed, "unipost_account_consecutive_failures", account_id="sa_youtube_b") == 0
            )
            # Discovery refreshed at once too, not after its retry.
            assert fake.requested("", endpoint="accounts") >= 1


async def test_a_new_key_at_the_same_address_still_respects_the_platform_floor() -> None:
    clock = FakeClock()
    store = Store()
    fake = FakeUniPost(lambda account_id: error(502, "UPSTREAM_ERROR"))
    client = fake.client(clock)
    ids = ["sa_twitter_x", "sa_instagram_y"]
    config = make_config(ids, interval="5m", floors={"twitter": "15m"})
    scheduler = Scheduler(*only(config), store, client, clock, rng=random.Random(1))
    task = asyncio.create_task(scheduler.run())
    try:
        await clock.advance(60)
        assert {a.status for a in store.accounts.values()} == {"error"}
        fake.script = snapshot
        workspace, polling = only(config)
        rotated = replace(workspace, unipost=replace(workspace.unipost, api_key="up_test_new"))
        scheduler.reconfigure(rotated, polling, client=fake.client(clock))
        await clock.advance(5)
        # The backoff is forgotten: Instagram is polled at once...
        assert store.accounts["sa_instagram_y"].status == "ok"
        # ...but the X call sent a minute ago may have spent X's window: not before the floor.
        assert store.accounts["sa_twitter_x"].status == "error"
        await clock.advance(900)
        assert store.accounts["sa_twitter_x"].status == "ok"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_reload_works_out_again_only_what_it_changed() -> None:
    config = make_config(
        [{"id": "sa_instagram_a", "interval": "2m", "labels": {"team": "x"}},
         {"id": "sa_instagram_b", "interval": "2m"}],
        interval="1m",
    )  # fmt: skip
    s = SchedulerStack(config, FakeUniPost())
    accounts = s.store.accounts
    # The same policy; only a's entry changed: a gets its new interval and labels.
    edited = make_config(
        [{"id": "sa_instagram_a", "interval": "4m", "labels": {"team": "y"}},
         {"id": "sa_instagram_b", "interval": "2m"}],
        interval="1m",
    )  # fmt: skip
    s.scheduler.reconfigure(edited.workspaces[0], edited.polling)
    assert (accounts["sa_instagram_a"].interval, accounts["sa_instagram_a"].labels) == (
        240.0, (("team", "y"),)
    )  # fmt: skip
    assert accounts["sa_instagram_b"].interval == 120.0
    assert accounts["sa_instagram_a"].demand == pytest.approx(1 / 240)
    # A new policy (a platform floor) reaches every account, changed entry or not.
    floored = make_config(
        [{"id": "sa_instagram_a", "interval": "4m", "labels": {"team": "y"}},
         {"id": "sa_instagram_b", "interval": "2m"}],
        interval="1m",
        floors={"instagram": "5m"},
    )  # fmt: skip
    s.scheduler.reconfigure(floored.workspaces[0], floored.polling)
    assert {a.interval for a in accounts.values()} == {300.0}
    assert value(scrape(s.store), "unipost_account_poll_interval_seconds",
                 account_id="sa_instagram_b") == 300  # fmt: skip
