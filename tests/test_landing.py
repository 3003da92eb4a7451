"""The landing page as a person reads it: the demo's page in a real browser (Debian's
headless Chromium), and the page's rules on a fixed store."""

from __future__ import annotations

import asyncio
import html
import re
import time
from pathlib import Path

import aiohttp
import pytest

from exporter import landing
from exporter.parse import Snapshot
from exporter.store import Status, Store
from exporter.workspace_answers import Analytics, DeliveryJobs, Usage
from tests.helpers import account_state, finish, fixed_store, free_port, require_binary, spawn

NOW = 1_777_401_600.0


async def chromium_text(url: str, tmp_path: Path) -> tuple[str, Path]:
    """What Chromium renders at `url`, as text (its DOM after loading), and a screenshot."""
    binary = require_binary("chromium", package="chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    shot = tmp_path / "landing.png"
    for args in ([*flags, "--dump-dom", url], [*flags, f"--screenshot={shot}",
                                               "--window-size=1600,1200", url]):  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            binary, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0
        if "--dump-dom" in args:
            dom = stdout.decode()
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    return " ".join(text.split()), shot


@pytest.mark.process
async def test_the_demo_page_in_a_real_browser(tmp_path: Path) -> None:
    port = free_port()
    proc = await spawn("--demo", "--web.listen-address", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"{base}/") as response:
                        page = await response.text()
                    # Every account has been polled once, the throttled one has backed off.
                    if (
                        "Not polled yet" not in page
                        and "UPSTREAM_RATE_LIMITED" in page
                        and "not read yet" not in page
                    ):
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
        text, shot = await chromium_text(f"{base}/", tmp_path)
    finally:
        await finish(proc)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank
    for words in (
        "UniPost Exporter",
        "Demo mode.",
        "This page refreshes every 30 seconds.",
        "Accounts: 13",
        # Names where known, the ID under them.
        "Acme Labs sa_youtube_hidden",
        # Why a count is missing, in words.
        "absent: hidden by the channel",
        "absent: Threads does not provide it",
        # The reason behind a status, and what to do.
        "UPSTREAM_RATE_LIMITED: TikTok is rate limiting this account; try again later",
        "The platform keeps failing for this account; it backs off and recovers on its own.",
        "upstream_status=403",
        "The platform refuses this account's lookups (its tier or scopes)",
        "Reconnect the account in UniPost (credentials or scopes).",
        "UniPost has no metrics for this platform; nothing to do.",
        # The workspace block: the plan against its limit, the queue, analytics.
        "Workspace",
        "basic:",
        "of 2,500 this month",
        "1 dead (dead jobs failed for good: retry or dismiss them)",
        "available:",
        "posts in the last 30 days",
    ):
        assert words in text, words
    # Times as a person says them.
    assert "just now" in text or " ago" in text
    assert re.search(r"\bin \d+ s\b", text), "the next poll, as 'in N s'"
    # Those that need attention come first: the throttled account before the healthy ones.
    assert text.index("sa_tiktok_shop") < text.index("sa_tiktok_brand")


def test_counts_show_their_change_and_times_their_exact_value_on_hover() -> None:
    store = Store()
    before = Snapshot("twitter", 1000, 50, 10, (), NOW - 3600)
    now = Snapshot("twitter", 1042, 49, 10, (), NOW - 180)
    store.accounts["sa_twitter_1"] = account_state(
        "sa_twitter_1", "twitter", (), 900.0, status=Status.OK, account_name="acme",
        snapshot=now, previous=before,
    )  # fmt: skip
    store.accounts["sa_twitter_1"].metrics_due = 5000.0 + 720  # planned 12 min from now
    page, pages = landing.render([store], NOW, 5000.0)
    assert pages == 1
    assert "1,042 <span class=up>(+42)</span>" in page
    assert "49 <span class=down>(-1)</span>" in page
    assert '<span title="2026-04-28 18:37:00 UTC">3 min ago</span>' in page
    assert '<span title="2026-04-28 18:52:00 UTC">in 12 min</span>' in page


def test_everything_is_escaped() -> None:
    page, _ = landing.render([fixed_store()], NOW, 0.0)
    assert 'sa_odd"\\\nid' not in page and "Studio &quot;Alex&quot;" in page
    assert "<script" not in landing.render([_hostile()], NOW, 0.0)[0]


def test_the_workspace_block_says_what_the_plan_allows() -> None:
    store = Store()
    facts = store.facts
    for read, interval in (("usage", 300.0), ("delivery_jobs", 60.0), ("analytics", 21600.0)):
        record = facts.record(read)
        record.interval, record.last_success, record.next_read = interval, NOW - 120, NOW + 60
    facts.usage = Usage("free", 100.0, (("published", 96.0), ("scheduled", 4.0)), NOW + 86400 * 3,
                        scheduling_allowed=False)  # fmt: skip
    facts.delivery_jobs = DeliveryJobs(2, 0, 1, 0, 5)
    facts.analytics = Analytics(available=False)
    facts.record("delivery_jobs").consecutive_failures = 2
    page, _ = landing.render([store], NOW, 0.0)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "free: 96 published + 4 scheduled of 100 this month (100%); resets in 3 days" in text
    assert "Scheduling is blocked" in text
    assert "2 pending, 0 running, 1 retrying, 0 dead; 5 recovered today" in text
    assert "2 min ago (2 failed since)" in text
    assert "analytics needs a paid UniPost plan" in text
    # No block where no read is on (shard 1 of a sharded exporter).
    assert "Workspace" not in landing.render([fixed_store()], NOW, 0.0)[0]


def _hostile() -> Store:
    store = Store(workspace="<script>alert(1)</script>")
    store.accounts["x"] = account_state(
        "<script>x</script>", "twitter", (), 60.0, status=Status.ERROR,
        account_name="<script>y</script>", problem="CONNECTION_ERROR",
        problem_detail="<script>z</script>",
    )  # fmt: skip
    return store


def test_ten_thousand_accounts_are_paged_with_a_summary_of_all() -> None:
    store = Store()
    for i in range(10_000):
        status = Status.ERROR if i % 1000 == 0 else Status.OK
        store.accounts[f"sa_x_{i}"] = account_state(f"sa_x_{i}", "x", (), 60.0, status=status)
    first, pages = landing.render([store], NOW, 0.0)
    assert pages == 100
    assert first.count("<tr") == landing.PAGE_SIZE + 1  # the header row too
    assert "10 error, 9990 ok" in first
    assert first.index("sa_x_0<") < first.index("sa_x_1<")  # errors first
    last, _ = landing.render([store], NOW, 0.0, page=100)
    assert "Page 100 of 100" in last and 'href="?page=99"' in last


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(2, "just now"), (-42, "42 s ago"), (180, "in 3 min"), (-7300, "2 h ago"),
     (3 * 86400, "in 3 days"), (-86400, "1 day ago")],
)  # fmt: skip
def test_relative_times(seconds: float, said: str) -> None:
    assert landing.relative(seconds) == said
