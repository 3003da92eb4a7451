"""The real exporter against a fake UniPost on loopback that answers as the real server does
(its recorded shapes, no rate-limit headers): for 30 s at a 2 s interval, a platform's
per-account throttle, counts a platform never provides, a plain-text 502 and a slow X call
must neither starve the healthy accounts nor become data."""

from __future__ import annotations

import asyncio
import itertools

import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.outcomes import JITTER
from exporter.server import create_app
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, recorded
from tests.helpers import Samples, parse_exposition, scrape_until, series, statuses, value

RUN_SECONDS = 30.0
INTERVAL = 2.0
HEALTHY = ("sa_instagram_a", "sa_instagram_b")
THROTTLED = "sa_tiktok_throttled"
SLOW_X = "sa_twitter_slow"
# Series that must never appear: counts these platforms do not provide.
NEVER = [
    ("unipost_account_followers", "sa_youtube_hidden"),
    ("unipost_account_following", "sa_youtube_hidden"),
    ("unipost_account_following", "sa_youtube_channel"),
    ("unipost_account_following", "sa_threads_1"),
    ("unipost_account_posts", "sa_threads_1"),
]


def real_server(account_id: str) -> Reply:
    answers = {
        "sa_youtube_hidden": lambda: recorded("metrics_youtube_hidden.json", account_id),
        "sa_youtube_channel": lambda: recorded("metrics_youtube.json", account_id),
        "sa_threads_1": lambda: recorded("metrics_threads.json", account_id),
        THROTTLED: lambda: recorded("error_429_upstream_rate_limited_tiktok.json", account_id),
        "sa_instagram_edge": lambda: recorded("error_502_edge_plain_text.json", account_id),
        # UniPost's own X call may take 30 s; this one takes 12.
        SLOW_X: lambda: recorded("metrics_twitter.json", account_id, delay=12.0),
    }
    return answers.get(account_id, lambda: recorded("metrics_instagram.json", account_id))()


ACCOUNTS = [
    "sa_youtube_hidden",
    "sa_youtube_channel",
    "sa_threads_1",
    THROTTLED,
    "sa_instagram_edge",
    SLOW_X,
    *HEALTHY,
]


def throttled_errors(samples: Samples) -> float | None:
    return value(
        samples, "unipost_api_errors_total", account_id=THROTTLED, code="UPSTREAM_RATE_LIMITED"
    )


async def test_one_throttled_account_starves_nobody_and_absent_counts_stay_absent() -> None:
    async with FakeUniPost(real_server) as fake:
        raw = {
            # The default timeout (2m) and the default X floor (15m): as a new user runs it.
            "unipost": {"base_url": fake.base_url, "api_key": API_KEY, "requests_per_minute": 600},
            "polling": {"interval": f"{INTERVAL:g}s", "max_backoff": "1m"},
            "accounts": [{"id": account_id} for account_id in ACCOUNTS],
        }
        app = create_app(parse_config(yaml.safe_dump(raw), {}))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            paces = []

            async def scrape() -> Samples:
                return parse_exposition(await (await client.get("/metrics")).text())

            while loop.time() - started < RUN_SECONDS:
                samples = await scrape()
                paces.append(value(samples, "unipost_exporter_budget_requests_per_minute"))
                for name, account_id in NEVER:
                    assert value(samples, name, account_id=account_id) is None, (name, account_id)
                await asyncio.sleep(0.25)
            elapsed = loop.time() - started
            # The throttled account's requests as of the last scrape: one the fake had seen may
            # still be in flight then (its 4th lands near the run's end), so scrape until the
            # exporter has counted every request the fake saw before that scrape returned.
            times: list[float] = []

            def counted(samples: Samples) -> bool:
                times[:] = fake.request_times(THROTTLED)
                return throttled_errors(samples) == len(times)

            samples = await scrape_until(scrape, counted, seconds=5)
            page = await (await client.get("/")).text()
    requests = {account_id: fake.requested(account_id) for account_id in ACCOUNTS}

    # Healthy accounts get at least 90% of their planned polls (the first at once, then one
    # per interval lengthened by the mean jitter).
    planned = 1 + elapsed / (INTERVAL * (1 + JITTER / 2))
    for account_id in HEALTHY:
        assert requests[account_id] >= 0.9 * planned, (requests, planned)
    # The workspace's pace never dropped.
    assert set(paces) == {600.0}, paces
    # The throttled TikTok account backed off exponentially from its interval: 2x, 4x, 8x.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 2 <= len(times) <= 5, times
    for step, gap in enumerate(gaps, start=1):
        assert INTERVAL * 2**step <= gap <= INTERVAL * 2**step * (1 + JITTER) + 0.5, gaps

    assert statuses(samples) == {
        "sa_youtube_hidden": "ok",
        "sa_youtube_channel": "ok",
        "sa_threads_1": "ok",
        THROTTLED: "upstream_failing",
        "sa_instagram_edge": "error",
        SLOW_X: "ok",
        **{account_id: "ok" for account_id in HEALTHY},
    }
    errors = {(s["account_id"], s["code"]) for s in series(samples, "unipost_api_errors_total")}
    assert errors == {(THROTTLED, "UPSTREAM_RATE_LIMITED"), ("sa_instagram_edge", "UPSTREAM_ERROR")}
    assert throttled_errors(samples) == len(times)
    # The slow X call was waited for: one request, a good snapshot, no TIMEOUT.
    assert requests[SLOW_X] == 1
    assert value(samples, "unipost_account_followers", account_id=SLOW_X) == 12480

    # What the platforms do provide is data; what they flag is visible.
    assert value(samples, "unipost_account_posts", account_id="sa_youtube_hidden") == 3
    assert value(samples, "unipost_account_followers", account_id="sa_youtube_channel") == 123000
    assert value(samples, "unipost_account_followers", account_id="sa_threads_1") == 3100
    views = value(
        samples, "unipost_account_platform_value", account_id="sa_threads_1", field="views"
    )
    assert views == 124000
    flag = "unipost_account_platform_flag"
    assert (
        value(samples, flag, account_id="sa_youtube_hidden", field="hidden_subscriber_count") == 1
    )
    assert (
        value(samples, flag, account_id="sa_youtube_channel", field="hidden_subscriber_count") == 0
    )
    assert (
        value(samples, flag, account_id="sa_youtube_channel", field="following_count_supported")
        == 0
    )
    # The landing page says why a count is missing.
    assert "absent: hidden by the channel" in page
    assert "absent: Threads does not provide it" in page
    assert "hidden_subscriber_count: yes" in page
