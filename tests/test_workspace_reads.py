"""The workspace reads (plan usage, the delivery queue, analytics) on an injected clock: their
cadence within the budget, what the exposition shows, and what a failure, a 402, a 401, a
reload and sharding do to them."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import yaml

from exporter.config import parse_config
from exporter.schema import Config
from exporter.sharding import Shard
from exporter.workspace_reads import UNAVAILABLE_RECHECK
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, error, snapshot
from tests.helpers import Samples, SchedulerStack, scrape, series, value

ANALYTICS = ("analytics_by_platform", "analytics_summary", "analytics_platforms")


def config(accounts: int = 2, requests_per_minute: float = 60, **polling: str) -> Config:
    raw = {
        "unipost": {"api_key": API_KEY, "requests_per_minute": requests_per_minute},
        "polling": {"interval": "1m", "health_interval": "0s", **polling},
        "accounts": [{"id": f"sa_instagram_{i}"} for i in range(accounts)],
    }
    return parse_config(yaml.safe_dump(raw), {})


class Stack(SchedulerStack):
    def __init__(self, config: Config, shard: Shard | None = None) -> None:
        super().__init__(config, FakeUniPost(snapshot, api_key=API_KEY), seed=3, shard=shard)

    def reads(self, endpoint: str) -> list[float]:
        return [t for t, seen in self.fake.workspace_reads if seen == endpoint]

    def scrape(self) -> Samples:
        return scrape(self.store)


def errors(samples: Samples, read: str) -> dict[str, float]:
    return {
        labels["code"]: samples[("unipost_workspace_read_errors_total", frozenset(labels.items()))]
        for labels in series(samples, "unipost_workspace_read_errors_total", read=read)
    }


async def test_each_read_keeps_its_interval_and_the_metrics_polls_keep_theirs() -> None:
    s = Stack(config(accounts=10))
    async with s.running():
        await s.clock.advance(3600)
    # At the defaults: the queue every minute, usage every 5 minutes, analytics every 30
    # (three requests), each from the start, jitter (up to +10%) only ever lengthening.
    assert 55 <= len(s.reads("delivery_jobs")) <= 61
    assert 11 <= len(s.reads("usage")) <= 13
    for endpoint in ANALYTICS:
        assert len(s.reads(endpoint)) == 2, endpoint
    for i in range(10):
        assert len(s.client.times(f"sa_instagram_{i}")) >= 55
    assert value(s.scrape(), "unipost_exporter_interval_stretch_factor") == 1.0


async def test_the_stretch_counts_the_workspace_reads() -> None:
    # Ten accounts at 1m want 10/60 requests a second, which a budget of 11 a minute holds;
    # with the reads (1/60 + 1/300 + 3/1800 a second) it does not: every interval stretches.
    s = Stack(config(accounts=10, requests_per_minute=11))
    async with s.running():
        await s.clock.advance(600)
    wanted = 10 / 60 + 1 / 60 + 1 / 300 + 3 / 1800
    stretch = value(s.scrape(), "unipost_exporter_interval_stretch_factor")
    assert stretch == pytest.approx(wanted / (11 / 60))


async def test_what_each_read_shows() -> None:
    s = Stack(config())
    async with s.running():
        await s.clock.advance(30)
    samples = s.scrape()
    assert value(samples, "unipost_plan_info", plan="basic") == 1
    assert value(samples, "unipost_plan_post_limit") == 2500
    assert {lab["state"] for lab in series(samples, "unipost_usage_posts")} == {
        "published", "scheduled", "quota_hold",
    }  # fmt: skip
    assert value(samples, "unipost_usage_scheduling_allowed") == 1
    assert value(samples, "unipost_delivery_jobs", state="dead") == 1  # the demo's dead job
    assert value(samples, "unipost_analytics_available") == 1
    assert value(samples, "unipost_analytics_window_posts", status="all")
    # Engagement only where the platform fills it: Instagram has reach, never impressions.
    instagram = {
        labels["metric"]
        for labels in series(samples, "unipost_analytics_engagement", platform="instagram")
    }
    assert instagram == {"reach", "likes", "comments", "shares", "saves"}
    assert (
        value(samples, "unipost_analytics_platform_health", platform="tiktok", health="degraded")
        == 1
    )
    assert len(series(samples, "unipost_analytics_platform_health", platform="tiktok")) == 7
    wall = s.clock.wall()
    for read, interval in (("usage", 300), ("delivery_jobs", 60), ("analytics", 1800)):
        success = value(samples, "unipost_workspace_read_last_success_timestamp_seconds",
                        read=read)  # fmt: skip
        assert success is not None and wall - 30 <= success <= wall
        assert value(samples, "unipost_workspace_read_interval_seconds", read=read) == interval
    assert not series(samples, "unipost_workspace_read_errors_total")


async def test_a_failed_read_keeps_the_last_values_is_retried_and_counted() -> None:
    s = Stack(config(usage_interval="0s", analytics_interval="0s"))
    async with s.running():
        await s.clock.advance(5)
        before = s.scrape()
        last = value(before, "unipost_workspace_read_last_success_timestamp_seconds",
                     read="delivery_jobs")  # fmt: skip
        s.fake.workspace_replies["delivery_jobs"] = error(500, "INTERNAL_ERROR", "db down")
        await s.clock.advance(120)
        after = s.scrape()
        # Three attempts (the first and two retries, each with its budget slot), then the
        # values stay as they were: no drop to 0, no gap.
        assert errors(after, "delivery_jobs") == {"INTERNAL_ERROR": 3}
        for state in ("pending", "running", "retrying", "dead"):
            assert value(after, "unipost_delivery_jobs", state=state) == value(
                before, "unipost_delivery_jobs", state=state
            )
        assert value(after, "unipost_workspace_read_last_success_timestamp_seconds",
                     read="delivery_jobs") == last  # fmt: skip
        # A body that is not the documented shape is not retried: counted once, values stay.
        s.fake.workspace_replies["delivery_jobs"] = Reply(raw=b"<html>maintenance</html>")
        await s.clock.advance(600)
        counted = errors(s.scrape(), "delivery_jobs")
        assert counted["INVALID_RESPONSE"] >= 1 and counted["INTERNAL_ERROR"] == 3
        assert value(s.scrape(), "unipost_delivery_jobs", state="dead") == 1
        # It comes back: the next good answer is kept.
        del s.fake.workspace_replies["delivery_jobs"]
        await s.clock.advance(3600)
        success = value(s.scrape(), "unipost_workspace_read_last_success_timestamp_seconds",
                        read="delivery_jobs")  # fmt: skip
        assert success is not None and last is not None and success > last


async def test_skipped_values_are_counted_and_the_rest_is_used() -> None:
    s = Stack(config(delivery_interval="0s", analytics_interval="0s"))
    usage = s.fake.workspace.usage()
    s.fake.workspace_replies["usage"] = Reply(
        body={"data": {**usage, "plan": "Basic Plan!", "quota_hold_count": -2}}
    )
    async with s.running():
        await s.clock.advance(5)
    samples = s.scrape()
    assert errors(samples, "usage") == {"INVALID_VALUE": 2}
    assert not series(samples, "unipost_plan_info")
    assert value(samples, "unipost_usage_posts", state="quota_hold") is None
    assert value(samples, "unipost_usage_posts", state="published") == usage["post_count"]


async def test_a_platform_the_by_platform_answer_drops_loses_its_series() -> None:
    s = Stack(config(usage_interval="0s", delivery_interval="0s", analytics_interval="1m"))
    async with s.running():
        await s.clock.advance(5)
        assert value(s.scrape(), "unipost_analytics_posts", platform="twitter")
        rows = [r for r in s.fake.workspace.analytics("by-platform") if r["platform"] != "twitter"]
        s.fake.workspace_replies["analytics_by_platform"] = Reply(body={"data": rows})
        await s.clock.advance(70)
    samples = s.scrape()
    assert value(samples, "unipost_analytics_posts", platform="twitter") is None
    assert not series(samples, "unipost_analytics_engagement", platform="twitter")
    assert value(samples, "unipost_analytics_posts", platform="instagram")


async def test_a_plan_without_analytics_is_asked_every_6h_and_at_once_on_a_new_plan() -> None:
    s = Stack(config(delivery_interval="0s"))
    s.fake.workspace.plan = "free"
    async with s.running():
        await s.clock.advance(30)
        samples = s.scrape()
        assert value(samples, "unipost_analytics_available") == 0
        assert not [name for name, _ in samples if name.startswith("unipost_analytics_")
                    and name != "unipost_analytics_available"]  # fmt: skip
        # The 402 is an answer, not a failure; only the first request of the read was sent.
        assert not series(samples, "unipost_workspace_read_errors_total")
        assert value(samples, "unipost_workspace_read_interval_seconds", read="analytics") == (
            UNAVAILABLE_RECHECK
        )
        assert len(s.reads("analytics_by_platform")) == 1 and not s.reads("analytics_summary")
        await s.clock.advance(5 * 3600)
        assert len(s.reads("analytics_by_platform")) == 1, "not every 30m"
        # 6h after the first, stretched by jitter like every interval (up to +10%).
        await s.clock.advance(UNAVAILABLE_RECHECK * 1.1 - 5 * 3600)
        assert len(s.reads("analytics_by_platform")) == 2, "again after 6h"
        # An upgrade: the next usage read sees the new plan, and analytics is asked at once.
        s.fake.workspace.plan = "growth"
        await s.clock.advance(330)
        samples = s.scrape()
        assert value(samples, "unipost_plan_info", plan="growth") == 1
        assert len(s.reads("analytics_by_platform")) == 3
        assert value(samples, "unipost_analytics_available") == 1
        assert value(samples, "unipost_analytics_posts", platform="instagram")


async def test_a_401_on_a_workspace_read_pauses_the_workspace() -> None:
    revoked = False

    def metrics(account_id: str) -> Reply:
        return error(401, "UNAUTHORIZED", "revoked") if revoked else snapshot(account_id)

    # Accounts polled hourly: the queue's read (every minute) is the first to hear of it.
    s = Stack(config(accounts=3, interval="1h", usage_interval="0s", analytics_interval="0s"))
    s.fake.script = metrics
    async with s.running():
        await s.clock.advance(30)
        polls = len(s.client.calls)
        revoked = True
        s.fake.workspace_replies["delivery_jobs"] = error(401, "UNAUTHORIZED", "revoked")
        await s.clock.advance(40)
        assert len(s.client.calls) == polls, "no metrics poll in between"
        statuses = {lab["status"] for lab in series(s.scrape(), "unipost_account_status")}
        assert statuses == {"unauthorized"}
        # Paused: a probe a minute at the most tests the key; no workspace read goes out.
        await s.clock.advance(600)
        assert len(s.reads("delivery_jobs")) == 2
        assert len(s.client.calls) - polls <= 6
        # The key works again: the next probe lifts the pause, and the reads go on.
        revoked = False
        del s.fake.workspace_replies["delivery_jobs"]
        await s.clock.advance(3600)
        assert len(s.reads("delivery_jobs")) > 2
    assert errors(s.scrape(), "delivery_jobs") == {"UNAUTHORIZED": 1}
    assert {lab["status"] for lab in series(s.scrape(), "unipost_account_status")} == {"ok"}


async def test_0s_turns_a_read_off_and_a_reload_to_0s_removes_its_series() -> None:
    first = config(delivery_interval="0s")
    s = Stack(first)
    async with s.running():
        await s.clock.advance(30)
        assert not s.reads("delivery_jobs")
        assert not series(s.scrape(), "unipost_delivery_jobs")
        assert value(s.scrape(), "unipost_analytics_available") == 1
        reloaded = replace(first.polling, analytics_interval=0.0, delivery_interval=60.0)
        s.scheduler.reconfigure(first.workspaces[0], reloaded)
        await s.clock.advance(30)
    samples = s.scrape()
    assert not [name for name, _ in samples if name.startswith("unipost_analytics_")]
    assert value(samples, "unipost_workspace_read_interval_seconds", read="analytics") is None
    assert value(samples, "unipost_delivery_jobs", state="dead") == 1


async def test_only_shard_0_reads_the_workspace() -> None:
    for index, reads in ((0, True), (1, False)):
        s = Stack(config(accounts=4), shard=Shard(index, 2))
        async with s.running():
            await s.clock.advance(60)
        assert bool(s.fake.workspace_reads) is reads
        assert bool(series(s.scrape(), "unipost_delivery_jobs")) is reads


def test_the_in_memory_fake_answers_the_workspace_reads_as_the_simulator() -> None:
    fake = FakeUniPost()
    usage = fake.workspace_reply("usage", {"Authorization": f"Bearer {fake.api_key}"}, 0.0)
    assert json.loads(usage.payload())["data"]["plan"] == "basic"
    refused: Any = fake.workspace_reply("usage", {}, 0.0)
    assert refused.status == 401


async def test_no_retry_of_a_read_goes_out_while_the_workspace_is_paused_for_its_key() -> None:
    raw = {
        "unipost": {"api_key": API_KEY, "requests_per_minute": 60},
        "polling": {"usage_interval": "0s", "analytics_interval": "0s"},
        "discovery": {"enabled": True},  # no account yet: the queue's read goes first
    }
    s = Stack(parse_config(yaml.safe_dump(raw), {}))
    s.fake.workspace_replies["delivery_jobs"] = error(500, "INTERNAL_ERROR", "db down")
    async with s.running():
        await s.clock.advance(0.01)
        assert len(s.reads("delivery_jobs")) == 1  # failed: its retries wait
        # Another request hears that the key is rejected: the workspace pauses.
        s.scheduler.auth.rejected("UNAUTHORIZED", probe=False)
        await s.clock.advance(50)
    assert len(s.reads("delivery_jobs")) == 1, "no retry during the pause"
    assert errors(s.scrape(), "delivery_jobs") == {"INTERNAL_ERROR": 1}
