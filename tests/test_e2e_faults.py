"""Faults and hostile input, end to end: the real exporter on loopback against a
fault-injecting fake UniPost. Each case checks that the exporter keeps serving, the last good
values stay, the failure is counted under the right code, and polling recovers on its own;
the exporter runs at debug level throughout and its key must surface nowhere."""

from __future__ import annotations

import contextlib
import html
import io
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.clock import SystemClock
from exporter.config import parse_config
from exporter.logs import setup_logging
from exporter.schema import UniPostConfig
from exporter.server import create_app
from tests import fake_unipost as f
from tests.fake_unipost import API_KEY, FakeUniPost, Reply
from tests.helpers import (
    Samples,
    parse_exposition,
    require_binary,
    scrape_until,
    series,
    statuses,
    value,
)


def raw(body: bytes, content_type: str = "application/json") -> f.Fault:
    return f.answer(Reply(raw=body, headers={"Content-Type": content_type}))


def snapshot_with(**changes: Any) -> f.Fault:
    """A snapshot with `changes` to its data, wrong types and all."""
    return f.answer(lambda account_id: f.snapshot(account_id, platform="instagram", **changes))


NAN_FOLLOWERS = (
    b'{"data": {"platform": "instagram", "follower_count": NaN, "following_count": 1,'
    b' "post_count": 1, "fetched_at": "2026-11-27T10:00:00Z"}}'
)
# Per account: the fault it meets, and the code it must be counted under.
FAULTS: dict[str, tuple[f.Fault, str]] = {
    "sa_instagram_hang": (f.hang, "TIMEOUT"),
    "sa_instagram_reset": (f.reset_mid_body, "CONNECTION_ERROR"),
    "sa_instagram_huge": (f.huge(declared=False), "INVALID_RESPONSE"),
    "sa_instagram_hugedeclared": (f.huge(declared=True), "INVALID_RESPONSE"),
    "sa_instagram_badutf8": (raw(b'{"data": {"platform": "\xff\xfe"}}'), "INVALID_RESPONSE"),
    "sa_instagram_nested": (raw(b"[" * 200_000 + b"]" * 200_000), "INVALID_RESPONSE"),
    "sa_instagram_html": (
        raw(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        "INVALID_RESPONSE",
    ),
    "sa_instagram_strings": (snapshot_with(follower_count="1000"), "INVALID_RESPONSE"),
    "sa_instagram_float": (snapshot_with(follower_count=1000.5), "INVALID_RESPONSE"),
    "sa_instagram_negative": (snapshot_with(following_count=-3), "INVALID_RESPONSE"),
    "sa_instagram_nan": (raw(NAN_FOLLOWERS), "INVALID_RESPONSE"),
    "sa_instagram_big": (snapshot_with(follower_count=1e300), "INVALID_RESPONSE"),
    "sa_instagram_specific": (snapshot_with(platform_specific=[1, 2]), "INVALID_RESPONSE"),
    "sa_instagram_echo": (f.echo_headers, "UPSTREAM_ERROR"),
    "sa_instagram_exception": (f.answer(f.steady), "INTERNAL"),
}
# IDs and label values that need escaping in the exposition.
HOSTILE_ID = 'sa_instagram_q"uo\\te\nline'
HOSTILE_LABEL = 'a "quoted" \\ back\nslash'


@contextlib.contextmanager
def debug_log() -> Iterator[io.StringIO]:
    """The exporter's own log output at debug level, as the CLI sets it up."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    formatter = setup_logging("debug", "logfmt", stream)
    formatter.secrets.append(API_KEY)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


class ExplodingSession:
    """A real session, except that, while `exploding`, one account's request raises an
    exception carrying the request's headers: the kind a buggy proxy library throws."""

    exploding = False

    def __init__(self, config: UniPostConfig) -> None:
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {config.api_key}"},
            timeout=aiohttp.ClientTimeout(total=config.timeout),
        )

    @property
    def headers(self) -> Any:
        return self.session.headers

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        return self.session.timeout

    def get(self, url: Any, **kwargs: Any) -> Any:
        if ExplodingSession.exploding and "sa_instagram_exception" in str(url):
            raise RuntimeError(f"proxy refused {url} with headers {dict(self.session.headers)}")
        return self.session.get(url, **kwargs)

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Stack:
    fake: FakeUniPost
    client: TestClient[Any, Any]
    log: io.StringIO

    async def scrape(self) -> Samples:
        response = await self.client.get("/metrics")
        assert response.status == 200
        return parse_exposition(await response.text())

    async def until(self, check: Callable[[Samples], bool], seconds: float = 15) -> Samples:
        return await scrape_until(
            self.scrape,
            check,
            seconds,
            lambda s: (statuses(s), series(s, "unipost_api_errors_total")),
        )


def config_for(fake: FakeUniPost, ids: list[str], **polling: Any) -> Any:
    raw = {
        "unipost": {
            "base_url": fake.base_url,
            "api_key": API_KEY,
            "requests_per_minute": 6000,
            "timeout": "500ms",
        },
        "polling": {"interval": "1s", "max_backoff": "2s", **polling},
        "accounts": [{"id": i, "labels": {"zone": HOSTILE_LABEL}} for i in ids],
    }
    return parse_config(yaml.safe_dump(raw), {})


@contextlib.asynccontextmanager
async def stack(ids: list[str], **kwargs: Any) -> AsyncIterator[Stack]:
    fake = FakeUniPost()
    await fake.up()
    try:
        with debug_log() as log:
            app = create_app(config_for(fake, ids), session_factory=ExplodingSession, **kwargs)  # type: ignore[arg-type]
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                yield Stack(fake, client, log)
    finally:
        await fake.down()


def assert_no_secret(stack: Stack, *texts: str) -> None:
    for text in (stack.log.getvalue(), *texts):
        assert API_KEY not in text


async def test_every_fault_is_counted_last_values_stay_and_polling_recovers() -> None:
    ids = [*FAULTS, HOSTILE_ID]
    async with stack(ids) as s:
        good = await s.until(lambda x: set(statuses(x).values()) == {"ok"})
        before = {i: value(good, "unipost_account_followers", account_id=i) for i in ids}
        assert all(before.values())

        s.fake.faults.update({i: fault for i, (fault, _) in FAULTS.items()})
        ExplodingSession.exploding = True
        faulty = await s.until(
            lambda x: all(
                (value(x, "unipost_api_errors_total", account_id=i, code=code) or 0) >= 1
                and statuses(x)[i] == "error"
                for i, (_, code) in FAULTS.items()
            ),
            seconds=20,
        )
        for account_id in FAULTS:
            # Last good values stay; nothing from a bad answer became data.
            now = value(faulty, "unipost_account_followers", account_id=account_id)
            assert now == before[account_id], account_id
        # The cap: the exporter hung up after about 1 MiB of each 50 MB body (what the
        # server got out beyond that sat in loopback socket buffers).
        assert s.fake.huge_sends and max(s.fake.huge_sends) < 10 * 1024 * 1024, s.fake.huge_sends
        text = await (await s.client.get("/metrics")).text()
        check_metrics_with_promtool(text)
        # The hostile ID and label are escaped, and read back exactly.
        assert value(faulty, "unipost_account_followers", account_id=HOSTILE_ID, zone=HOSTILE_LABEL)

        s.fake.faults.clear()  # every fault heals
        ExplodingSession.exploding = False
        healed = await s.until(
            lambda x: (
                set(statuses(x).values()) == {"ok"}
                and all(
                    value(x, "unipost_account_consecutive_failures", account_id=i) == 0 for i in ids
                )
            ),
            seconds=20,
        )
        page = await (await s.client.get("/")).text()
        assert html.escape(HOSTILE_ID) in page
    assert_no_secret(s, text, page, str(healed))
    log = s.log.getvalue()
    # The key did reach the log's input, through the echoing server and the exception, and
    # was scrubbed there.
    assert "Bearer <redacted>" in log
    assert "proxy refused" in log and "Traceback" in log


def check_metrics_with_promtool(text: str) -> None:
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


async def test_unipost_down_then_back() -> None:
    ids = ["sa_instagram_a", "sa_youtube_b"]
    async with stack(ids) as s:
        await s.until(lambda x: set(statuses(x).values()) == {"ok"})
        await s.fake.down()  # connection refused
        down = await s.until(
            lambda x: all(
                (value(x, "unipost_api_errors_total", account_id=i, code="CONNECTION_ERROR") or 0)
                >= 2
                for i in ids
            )
        )
        assert value(down, "unipost_account_followers", account_id="sa_instagram_a") == 1014
        assert (await s.client.get("/-/ready")).status == 200
        await s.fake.up()
        await s.until(lambda x: set(statuses(x).values()) == {"ok"})
    assert_no_secret(s)


@pytest.mark.parametrize(
    ("fault", "blocked_for"),
    [
        (f.retry_after_date(2), (1.0, 3.5)),  # an HTTP date, read against the server's Date
        # Garbage: the default, capped at 2s.
        (f.answer(f.rate_limited("any minute now")), (2.0, 4.0)),
        # Absurd: capped at max_backoff.
        (f.answer(f.rate_limited("99999999999999999999")), (2.0, 4.0)),
    ],
    ids=["http-date", "garbage", "absurd"],
)
async def test_retry_after_in_every_shape_is_honoured_and_capped(
    fault: f.Fault, blocked_for: tuple[float, float]
) -> None:
    async with stack(["sa_instagram_a"]) as s:
        await s.until(lambda x: statuses(x) == {"sa_instagram_a": "ok"})
        s.fake.faults["sa_instagram_a"] = fault
        await s.until(
            lambda x: value(x, "unipost_api_errors_total", code="RATE_LIMITED") is not None
        )
        refused_at = s.fake.requests[-1].time
        s.fake.faults.clear()
        samples = await s.until(lambda x: s.fake.requests[-1].time > refused_at, seconds=10)
        gap = next(seen.time for seen in s.fake.requests if seen.time > refused_at) - refused_at
        low, high = blocked_for
        assert low <= gap <= high, gap
        assert value(samples, "unipost_api_errors_total", code="RATE_LIMITED") == 1
    assert_no_secret(s, str(samples))


class JumpingClock(SystemClock):
    """The real clock, whose wall time can be moved as NTP or an operator might."""

    offset = 0.0

    def wall(self) -> float:
        return time.time() + self.offset


async def test_a_wall_clock_jump_changes_neither_pace_nor_cadence() -> None:
    clock = JumpingClock()
    # The workspace bucket is always nearly empty, so the pace is read from its reset time.
    ids = [f"sa_instagram_{i}" for i in range(4)]
    async with stack(ids, clock=clock) as s:
        s.fake.faults.update({i: f.low_bucket(limit=100, remaining=5, full_in=5) for i in ids})
        await s.until(lambda x: set(statuses(x).values()) == {"ok"})
        # About 95 requests in 5-6 seconds: the pace held at the bucket's refill rate.
        pace = value(await s.scrape(), "unipost_exporter_budget_requests_per_minute")
        assert pace is not None and 900 <= pace <= 1200, pace
        for jump in (-3600.0, 86400.0):
            clock.offset = jump
            count = len(s.fake.requests)
            # Four accounts at 1s keep coming: 12 polls within a few seconds.
            samples = await s.until(lambda x, c=count: len(s.fake.requests) >= c + 12, seconds=8)
            after = value(samples, "unipost_exporter_budget_requests_per_minute")
            assert after is not None and 900 <= after <= 1200, (jump, after)
            assert set(statuses(samples).values()) == {"ok"}
    assert_no_secret(s, str(samples))
