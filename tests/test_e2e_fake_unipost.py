"""The real exporter app on loopback against a fake UniPost on loopback, read through /metrics."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.server import create_app
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, error, snapshot, zero_filled
from tests.helpers import (
    Samples,
    free_port,
    parse_exposition,
    scrape_until,
    series,
    statuses,
    value,
)


def config_for(fake: FakeUniPost, accounts: list[dict[str, Any]], **unipost: Any) -> Any:
    raw = {
        "unipost": {
            "base_url": fake.base_url,
            "api_key": API_KEY,
            "requests_per_minute": 6000,
            "timeout": "2s",
            **unipost,
        },
        "polling": {"interval": "1s", "platform_intervals": {"twitter": "1s"}},
        "accounts": accounts,
    }
    return parse_config(yaml.safe_dump(raw), {})


class Exporter:
    def __init__(self, client: TestClient[Any, Any], fake: FakeUniPost) -> None:
        self.client = client
        self.fake = fake

    async def scrape(self, **headers: str) -> Samples:
        response = await self.client.get("/metrics", headers=headers)
        assert response.status == 200
        return parse_exposition(await response.text())

    async def until(self, check: Callable[[Samples], bool], seconds: float = 10) -> Samples:
        return await scrape_until(self.scrape, check, seconds)


async def start(
    handler: Callable[[str], Reply], accounts: list[dict[str, Any]], **unipost: Any
) -> AsyncIterator[Exporter]:
    async with FakeUniPost(handler) as fake:
        app = create_app(config_for(fake, accounts, **unipost))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Exporter(client, fake)


def mixed(account_id: str) -> Reply:
    replies = {
        "sa_twitter_1": lambda: snapshot(
            account_id, followers=12480, specific={"tweet_count": 2841, "listed_count": 41}
        ),
        "sa_twitter_2": lambda: zero_filled(account_id, upstream_status=429),
        "sa_bluesky_3": lambda: snapshot(account_id, platform="bluesky", followers=0),
        "sa_linkedin_4": lambda: error(501, "NOT_SUPPORTED"),
        "sa_instagram_5": lambda: error(409, "ACCOUNT_DISCONNECTED"),
        "sa_tiktok_6": lambda: Reply(raw=b"<html>not json</html>"),
    }
    return replies.get(account_id, lambda: error(404, "NOT_FOUND"))()


MIXED_ACCOUNTS = [
    {"id": "sa_twitter_1", "labels": {"team": "growth"}},
    {"id": "sa_twitter_2"},
    {"id": "sa_bluesky_3"},
    {"id": "sa_linkedin_4"},
    {"id": "sa_instagram_5"},
    {"id": "sa_tiktok_6"},
    {"id": "sa_gone_7"},
]


@pytest.fixture
async def exporter() -> AsyncIterator[Exporter]:
    async for e in start(mixed, MIXED_ACCOUNTS):
        yield e


async def test_metrics_show_good_values_and_never_a_zero_filled_snapshot(
    exporter: Exporter,
) -> None:
    samples = await exporter.until(
        lambda s: (
            value(s, "unipost_upstream_failures_total", account_id="sa_twitter_2") is not None
            and len(series(s, "unipost_account_status", status="pending")) == 0
        )
    )
    labels = {"account_id": "sa_twitter_1", "platform": "twitter", "team": "growth"}
    assert value(samples, "unipost_account_followers", **labels) == 12480
    assert value(samples, "unipost_account_following", **labels) == 10
    assert value(samples, "unipost_account_posts", **labels) == 5
    assert value(samples, "unipost_account_platform_value", field="listed_count", **labels) == 41
    assert value(samples, "unipost_account_last_success_timestamp_seconds", **labels) == 1777401000
    assert value(samples, "unipost_account_info", account_name="", **labels) == 1
    # The zero-filled account has no values at all, only a failure count and a status.
    for name in ("followers", "following", "posts", "last_success_timestamp_seconds"):
        assert value(samples, f"unipost_account_{name}", account_id="sa_twitter_2") is None
    assert value(samples, "unipost_upstream_failures_total", upstream_status="429") >= 1  # type: ignore[operator]
    # A real zero is data.
    assert value(samples, "unipost_account_followers", account_id="sa_bluesky_3") == 0
    assert statuses(samples) == {
        "sa_twitter_1": "ok",
        "sa_twitter_2": "upstream_failing",
        "sa_bluesky_3": "ok",
        "sa_linkedin_4": "not_supported",
        "sa_instagram_5": "disconnected",
        "sa_tiktok_6": "error",
        "sa_gone_7": "not_found",
    }
    errors = {s["account_id"]: s["code"] for s in series(samples, "unipost_api_errors_total")}
    assert errors == {
        "sa_linkedin_4": "NOT_SUPPORTED",
        "sa_instagram_5": "ACCOUNT_DISCONNECTED",
        "sa_tiktok_6": "INVALID_RESPONSE",
        "sa_gone_7": "NOT_FOUND",
    }
    assert value(samples, "unipost_exporter_build_info") == 1
    metrics_ok = value(
        samples, "unipost_api_requests_total", endpoint="account_metrics", status_code="200"
    )
    assert metrics_ok is not None and metrics_ok >= 4
    latencies = value(
        samples, "unipost_api_request_duration_seconds_count", endpoint="account_metrics"
    )
    assert latencies is not None and latencies >= 7


async def test_exposition_has_help_saying_values_come_from_background_polls(
    exporter: Exporter,
) -> None:
    text = await (await exporter.client.get("/metrics")).text()
    assert "# HELP unipost_account_followers Followers in the last good snapshot." in text
    helps = [line for line in text.splitlines() if line.startswith("# HELP unipost_account_")]
    assert helps and all("background poll" in line for line in helps)
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    # No sample carries a timestamp: name{labels} value, nothing after.
    assert all(len(line.rsplit("} ", 1)[-1].split()) == 1 for line in samples if "}" in line)


async def test_gzip_and_openmetrics_are_negotiated(exporter: Exporter) -> None:
    response = await exporter.client.get(
        "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert b"unipost_exporter_build_info" in gzip.decompress(await response.read())
    response = await exporter.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).endswith("# EOF\n")


async def test_landing_page_health_and_readiness(exporter: Exporter) -> None:
    await exporter.until(lambda s: not series(s, "unipost_account_status", status="pending"))
    page = await (await exporter.client.get("/")).text()
    assert '<a href="metrics">' in page
    for account in MIXED_ACCOUNTS:
        assert f"<td>{account['id']}</td>" in page
    assert "<td>upstream_failing</td>" in page
    assert API_KEY not in page
    assert (await exporter.client.get("/-/healthy")).status == 200
    assert (await exporter.client.get("/-/ready")).status == 200


async def test_an_account_that_disappears_upstream_loses_its_values() -> None:
    gone = [False]

    def handler(account_id: str) -> Reply:
        return error(404, "NOT_FOUND") if gone[0] else snapshot(account_id, followers=9)

    async for exporter in start(handler, [{"id": "sa_twitter_1"}]):
        await exporter.until(lambda s: value(s, "unipost_account_followers") == 9)
        gone[0] = True
        samples = await exporter.until(
            lambda s: value(s, "unipost_account_status", status="not_found") == 1
        )
        assert value(samples, "unipost_account_followers") is None
        assert value(samples, "unipost_account_platform_value") is None
        assert len(series(samples, "unipost_account_status")) == 1


async def test_malformed_and_oversized_bodies_are_counted_and_last_values_stay() -> None:
    calls = [0]

    def handler(account_id: str) -> Reply:
        calls[0] += 1
        if calls[0] == 1:
            return snapshot(account_id, followers=77)
        if calls[0] % 2:
            return Reply(raw=b"{" * 5000)
        return Reply(raw=b" " * (2 * 1024 * 1024))

    async for exporter in start(handler, [{"id": "sa_twitter_1"}]):
        samples = await exporter.until(
            lambda s: (value(s, "unipost_api_errors_total", code="INVALID_RESPONSE") or 0) >= 2
        )
        assert value(samples, "unipost_account_followers") == 77
        assert value(samples, "unipost_account_status", status="error") == 1


async def test_ratelimit_headers_are_exported() -> None:
    def handler(account_id: str) -> Reply:
        reply = snapshot(account_id)
        reply.headers.update(
            {
                "X-UniPost-RateLimit-Limit": "120",
                "X-UniPost-RateLimit-Remaining": "119",
                "X-UniPost-RateLimit-Reset": "1800000060",
            }
        )
        return reply

    async for exporter in start(handler, [{"id": "sa_twitter_1"}]):
        samples = await exporter.until(
            lambda s: value(s, "unipost_api_ratelimit_limit") is not None
        )
        assert value(samples, "unipost_api_ratelimit_limit") == 120
        assert value(samples, "unipost_api_ratelimit_remaining") == 119
        assert value(samples, "unipost_api_ratelimit_reset_timestamp_seconds") == 1800000060


async def test_a_revoked_key_shows_every_account_unauthorized() -> None:
    async with FakeUniPost(lambda a: snapshot(a), api_key="up_live_other") as fake:
        # A slot a second: the 401 is back long before a second request could leave (at
        # 100 a second, one more may be in flight when it comes, on a busy machine).
        accounts = [{"id": "sa_twitter_1"}, {"id": "sa_twitter_2"}]
        app = create_app(config_for(fake, accounts, requests_per_minute=60))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            exporter = Exporter(client, fake)
            samples = await exporter.until(
                lambda s: len(series(s, "unipost_account_status", status="unauthorized")) == 2
            )
            await asyncio.sleep(0.5)
            # The workspace is paused: one request, no hammering with a rejected key.
            assert len(fake.requests) == 1
            assert value(samples, "unipost_api_errors_total", code="UNAUTHORIZED") == 1


async def test_the_requests_unipost_receives() -> None:
    async for exporter in start(lambda a: snapshot(a), [{"id": "sa_twitter_1"}]):
        await exporter.until(lambda s: value(s, "unipost_account_followers") is not None)
        seen = exporter.fake.requests[0]
        headers = seen.headers
        assert seen.path == "/v1/accounts/sa_twitter_1/metrics"
        assert headers["Authorization"] == f"Bearer {API_KEY}"
        assert headers["User-Agent"].startswith("unipost-exporter/")


async def test_concurrent_scrapes_share_renders_and_never_get_an_older_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import exporter.server as server

    renders = []
    real = server._render

    async def counting(*args: Any) -> None:
        renders.append(args[1:3])
        await real(*args)

    monkeypatch.setattr(server, "_render", counting)
    # A turn of the loop after every piece, as a large exposition's render takes them: a
    # small one renders within one turn, before another scrape could join it.
    monkeypatch.setattr(server, "RENDER_TURN", 0.0)
    async for e in start(mixed, MIXED_ACCOUNTS):
        await e.until(lambda s: not series(s, "unipost_account_status", status="pending"))
        renders.clear()
        responses = await asyncio.gather(*(e.client.get("/metrics") for _ in range(20)))
        bodies = {await r.text() for r in responses}
        assert all(r.status == 200 for r in responses)
        # Twenty scrapers at once: a few renders, not twenty (each shared by the scrapes
        # that queued while the one before it ran).
        assert 1 <= len(renders) < 20 and len(bodies) <= len(renders)
        assert e.client.app[server.RENDERS]._waiting == {}, "no scrape is left waiting"
        # A scrape after a change sees it: it never gets a body begun before it arrived.
        store = e.client.app[server.RUNTIME].stores()[0]
        account = store.accounts["sa_twitter_1"]
        account.account_name = "renamed"
        store.changed(account)
        assert value(await e.scrape(), "unipost_account_info", account_name="renamed") == 1


async def test_a_scraper_that_stops_reading_holds_back_no_one() -> None:
    # 40,000 accounts: a body of ~15 MB, more than loopback's socket buffers (~10 MB at
    # most) hold for a client that reads nothing.
    import exporter.server as server

    accounts = [{"id": f"sa_instagram_{i}"} for i in range(40_000)]
    async for e in start(lambda a: snapshot(a), accounts):
        reader, writer = await asyncio.open_connection(e.client.host, e.client.port, limit=2**26)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")  # its render has begun; then no more
        # Its render finishes without it: the exposition takes changes again.
        lines = e.client.app[server.EXPOSITION].stores[0]
        renders = e.client.app[server.RENDERS]
        await wait_for(lambda: lines._readers == 0 and not renders._waiting)  # noqa: B023
        store = e.client.app[server.RUNTIME].stores()[0]
        account = store.accounts["sa_instagram_7"]
        account.account_name = "renamed"
        store.changed(account)
        # Other scrapes go on, and see the change.
        assert value(await e.scrape(), "unipost_account_info", account_name="renamed") == 1
        # The stalled client still gets its whole body, as it was when it asked.
        assert head.startswith(b"HTTP/1.1 200")
        (length,) = re.findall(rb"Content-Length: (\d+)", head)
        body = await asyncio.wait_for(reader.readexactly(int(length)), 30)
        writer.close()
        assert len(body) > 12_000_000 and b'account_name="renamed"' not in body
        assert len(series(parse_exposition(body.decode()), "unipost_account_info")) == 40_000


async def wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_connection_error_says_where_and_why(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    raw = {
        "unipost": {"base_url": f"http://127.0.0.1:{port}", "api_key": API_KEY, "timeout": "2s"},
        "polling": {"interval": "1m"},
        "accounts": [{"id": "sa_instagram_1"}],
    }
    app = create_app(parse_config(yaml.safe_dump(raw), {}))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await scrape_until(
            lambda: _scrape(client), lambda s: statuses(s) == {"sa_instagram_1": "error"}
        )
        page = await (await client.get("/")).text()
    failed = [r for r in caplog.records if r.getMessage() == "request failed"]
    detail = failed[0].fields["detail"]  # type: ignore[attr-defined]
    assert f"127.0.0.1:{port}" in detail and "Connect call failed" in detail, detail
    changed = [r for r in caplog.records if r.getMessage() == "account status changed"]
    assert changed[-1].levelname == "WARNING"
    assert changed[-1].fields["to"] == "error"  # type: ignore[attr-defined]
    assert f"127.0.0.1:{port}" in changed[-1].fields["detail"]  # type: ignore[attr-defined]
    assert f"127.0.0.1:{port}" in page
    assert API_KEY not in page + caplog.text


async def _scrape(client: TestClient[Any, Any]) -> Samples:
    return parse_exposition(await (await client.get("/metrics")).text())
