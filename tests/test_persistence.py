"""Persisted state (--storage.path): every state round-trips, a changed config drops what it
should, and no file can crash the exporter or half-load it."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from exporter.config import parse_config
from exporter.persistence import STATE_FILE, StateFile, StateSaver, restore
from exporter.scheduler import Scheduler
from exporter.sharding import Shard
from exporter.store import StateStatus, Store
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, snapshot, zero_filled
from tests.helpers import (
    FakeClock,
    Process,
    Samples,
    finish,
    fixed_store,
    free_port,
    make_config,
    only,
    parse_exposition,
    scrape,
    scrape_until,
    spawn,
    value,
)


def saver_for(
    directory: Path, stores: list[Store], base_url: str = "https://u", clock: Any = None
) -> StateSaver:
    status = StateStatus()
    return StateSaver(StateFile(directory), lambda: stores, lambda s: base_url, status, clock)


async def saved(directory: Path, stores: list[Store], clock: Any = None) -> dict[Any, Any]:
    await saver_for(directory, stores, clock=clock).save()
    return StateFile(directory).load()


async def test_every_state_round_trips(tmp_path: Path) -> None:
    clock = FakeClock()
    store = fixed_store()
    store.accounts["sa_twitter_1"].last_poll_wall = 1777401000.0
    store.accounts["sa_twitter_1"].metrics_due = clock.monotonic() + 300  # polled in 5 min
    store.budget_requests_per_minute = 42.0
    loaded = await saved(tmp_path, [store], clock)
    (workspace,) = loaded.values()
    assert workspace.base_url == "https://u" and workspace.pace_requests_per_minute == 42.0
    fresh = Scheduler(
        *only(make_config(list(store.accounts), interval="5m")),
        Store(),
        FakeUniPost().client(FakeClock()),
        FakeClock(),
    )
    assert restore(fresh.accounts, fresh.budget, workspace) == len(store.accounts)
    # Its next poll comes back at the same time (the fresh clock reads as the old one did).
    back = fresh.store.accounts["sa_twitter_1"].next_poll_wall(clock.wall(), clock.monotonic())
    assert back == clock.wall() + 300
    for account_id, before in store.accounts.items():
        after = fresh.store.accounts[account_id]
        for name in (
            "status",
            "account_name",
            "snapshot",
            "health",
            "consecutive_failures",
            "problem",
            "problem_detail",
            "last_poll_wall",
        ):
            assert getattr(after, name) == getattr(before, name), (account_id, name)
    # Counters are not kept: they restart at 0, as Prometheus expects of every counter.
    assert fresh.store.accounts["sa_linkedin_4"].api_errors == {}
    assert fresh.budget.rate * 60 == 42.0  # the learned pace


async def test_what_a_changed_config_no_longer_has_is_dropped(tmp_path: Path) -> None:
    store = fixed_store()
    (workspace,) = (await saved(tmp_path, [store])).values()
    # The new config polls only one of them, with no discovery: the rest are dropped.
    config = make_config(["sa_twitter_1", "sa_new_account"])
    fresh = Scheduler(*only(config), Store(), FakeUniPost().client(FakeClock()), FakeClock())
    assert restore(fresh.accounts, fresh.budget, workspace) == 1
    assert set(fresh.store.accounts) == {"sa_twitter_1", "sa_new_account"}
    assert fresh.store.accounts["sa_new_account"].status == "pending"
    # With discovery, a discovered account comes back until the next listing says otherwise;
    # one outside this replica's shard does not.
    discovery = parse_config("unipost: {api_key: k}\ndiscovery: {enabled: true}", {})
    sharded = Scheduler(
        *only(discovery),
        Store(),
        FakeUniPost().client(FakeClock()),
        FakeClock(),
        shard=_AllBut(),
    )
    restore(sharded.accounts, sharded.budget, workspace)
    assert "sa_twitter_1" in sharded.store.accounts
    assert "sa_twitter_2" not in sharded.store.accounts


async def test_a_restored_account_waits_for_its_floor(tmp_path: Path) -> None:
    clock = FakeClock()
    store = fixed_store()
    x = store.accounts["sa_twitter_1"]
    x.last_poll_wall = clock.wall() - 60  # polled a minute ago; X's floor is 15 minutes
    (workspace,) = (await saved(tmp_path, [store])).values()
    config = make_config(["sa_twitter_1"], floors={"twitter": "15m"})
    fake = FakeUniPost(snapshot)
    scheduler = Scheduler(*only(config), Store(), fake.client(clock), clock, rng=random.Random(1))
    restore(scheduler.accounts, scheduler.budget, workspace)
    task = asyncio.create_task(scheduler.run())
    try:
        samples = scrape(scheduler.store)
        assert value(samples, "unipost_account_followers") == 12480  # served at once
        await clock.advance(839)
        assert fake.requested("sa_twitter_1") == 0  # not inside the window
        await clock.advance(2)
        assert fake.requested("sa_twitter_1") == 1  # and right after it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"garbage \x00\xff", b'{"version": 2, "workspaces": []}', b'{"version": 1}',
     b'[1, 2]', b'{"version": 1, "workspaces": [{"name": null}]}'],
    ids=["empty", "truncated", "garbage", "newer-version", "no-workspaces", "not-an-object",
         "torn-workspace"],
)  # fmt: skip
def test_an_unusable_file_is_moved_aside_and_the_exporter_starts_fresh(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    assert StateFile(tmp_path).load() == {}
    assert (tmp_path / (STATE_FILE + ".corrupt")).read_bytes() == content
    assert not (tmp_path / STATE_FILE).exists()
    assert [r.getMessage() for r in caplog.records] == [
        "state file unusable; moved aside, starting fresh"
    ]


async def test_a_bad_account_entry_starts_that_account_fresh(tmp_path: Path) -> None:
    (workspace,) = (await saved(tmp_path, [fixed_store()])).values()
    workspace.accounts["sa_twitter_1"]["status"] = "on fire"
    fresh = Scheduler(*only(make_config(["sa_twitter_1", "sa_twitter_2"])), Store(),
                      FakeUniPost().client(FakeClock()), FakeClock())  # fmt: skip
    assert restore(fresh.accounts, fresh.budget, workspace) == 1
    assert fresh.store.accounts["sa_twitter_1"].snapshot is None


def test_an_unreadable_file_starts_fresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / STATE_FILE).mkdir()  # unreadable as a file, even for root
    assert StateFile(tmp_path).load() == {}
    assert "cannot read the state file; starting fresh" in caplog.text


def test_an_unusable_directory_is_reported_and_persistence_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert not StateFile(blocker / "state").prepare()  # its parent is a file
    assert "storage directory is not usable" in caplog.text
    assert StateFile(tmp_path / "new").prepare()  # one missing level is created


async def test_a_crash_between_write_and_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fixed_store()
    saver = saver_for(tmp_path, [store])
    await saver.save()
    before = (tmp_path / STATE_FILE).read_bytes()

    def crash(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    store.accounts["sa_twitter_1"].account_name = "renamed"
    await saver.save()
    assert (tmp_path / STATE_FILE).read_bytes() == before
    assert saver.status.save_failures == 1 and saver.dirty
    assert json.loads(before)["version"] == 1
    # The file holds no secret: keys live in the config only.
    assert b"api_key" not in before and b"Bearer" not in before


@pytest.mark.process
@pytest.mark.parametrize("garbage", [False, True], ids=["restored", "garbage-starts-clean"])
async def test_a_restart_serves_the_last_values_and_spends_no_platform_window(
    tmp_path: Path, garbage: bool
) -> None:
    looked_up: dict[str, float] = {}

    def x_like(account_id: str) -> Reply:
        if account_id != "sa_twitter_x":
            return snapshot(account_id, followers=5)
        now = asyncio.get_running_loop().time()
        last = looked_up.get(account_id)
        if last is not None and now - last < WINDOW:
            return zero_filled(account_id)  # X refuses a second lookup inside its window
        looked_up[account_id] = now
        return snapshot(account_id, followers=777, fetched_at="2026-11-27T10:00:00.5Z")

    async with FakeUniPost(x_like) as fake:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "unipost": {"base_url": fake.base_url, "api_key": API_KEY, "timeout": "2s",
                        "requests_per_minute": 600},
            "polling": {"interval": "2s", "platform_intervals": {"twitter": f"{WINDOW}s"}},
            "accounts": [{"id": "sa_twitter_x"}, {"id": "sa_instagram_ok"}],
        }))  # fmt: skip
        args = ["--config.file", str(config), f"--storage.path={tmp_path / 'state'}"]
        first = await exporter(args)
        try:
            await first.until(lambda s: value(s, "unipost_account_followers",
                                              account_id="sa_twitter_x") == 777
                              and value(s, "unipost_analytics_available") == 1)  # fmt: skip
        finally:
            code, _ = await finish(first.proc)
        assert code == 0
        (x_lookup,) = fake.request_times("sa_twitter_x")
        # The workspace reads ran once each (usage, the queue, three analytics reports).
        reads = sorted(endpoint for _, endpoint in fake.workspace_reads)
        assert len(reads) == 5
        if garbage:
            (tmp_path / "state" / STATE_FILE).write_bytes(b"\x00garbage{")
        second = await exporter(args)
        try:
            samples = await second.scrape()
            x_followers = value(samples, "unipost_account_followers", account_id="sa_twitter_x")
            if garbage:
                # Starts clean (the file moved aside) and polls.
                assert x_followers is None
                await second.until(lambda s: fake.requested("sa_twitter_x") >= 2)
                assert (tmp_path / "state" / (STATE_FILE + ".corrupt")).exists()
                return
            # The first scrape already serves X's last value and its true last success.
            assert x_followers == 777
            last_success = value(
                samples, "unipost_account_last_success_timestamp_seconds", account_id="sa_twitter_x"
            )
            assert last_success == 1795773600.5
            assert value(samples, "unipost_exporter_state_save_failures_total") == 0
            # The workspace reads' last values too, with their true last success, and their
            # next reads as planned (the queue's a minute after the first process read it).
            assert value(samples, "unipost_plan_info", plan="basic") == 1
            assert value(samples, "unipost_delivery_jobs", state="dead") == 1
            assert value(samples, "unipost_analytics_available") == 1
            restored = value(samples, "unipost_workspace_read_last_success_timestamp_seconds",
                             read="usage")  # fmt: skip
            assert restored is not None and restored < time.time() - 0.5
            # No request for X inside its window; one after it.
            while asyncio.get_running_loop().time() < x_lookup + WINDOW - 1:
                assert fake.requested("sa_twitter_x") == 1
                assert len(fake.workspace_reads) == len(reads), "no read before its time"
                await asyncio.sleep(0.5)
            await second.until(lambda s: fake.requested("sa_twitter_x") == 2, seconds=10)
            (_, again) = fake.request_times("sa_twitter_x")
            assert again >= x_lookup + WINDOW
            assert value(await second.scrape(), "unipost_account_status",
                         account_id="sa_twitter_x", status="ok") == 1  # fmt: skip
        finally:
            await finish(second.proc)


WINDOW = 20


class Exporter:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port

    async def scrape(self) -> Samples:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            return parse_exposition(await response.text())

    async def until(self, check: Any, seconds: float = 15) -> Samples:
        return await scrape_until(self.scrape, check, seconds)


async def exporter(args: list[str]) -> Exporter:
    """The exporter as a process, once ready (its saved state is loaded by then)."""
    port = free_port()
    proc = await spawn(*args, "--web.listen-address", f"127.0.0.1:{port}")
    process = Process(proc, port)
    await process.wait_ready()
    return Exporter(proc, port)


class _AllBut(Shard):
    """A shard that owns every account but sa_twitter_2."""

    def owns(self, account_id: str) -> bool:
        return account_id != "sa_twitter_2"
