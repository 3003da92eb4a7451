"""`--demo` and `simulate` as real processes, read the way a newcomer would."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import aiohttp
import pytest

from exporter.simulator import DEFAULT_SIM_KEY
from tests.helpers import ROOT, finish, free_port, parse_exposition, series, spawn, value

pytestmark = pytest.mark.process


async def test_demo_shows_every_kind_of_account_within_15_seconds() -> None:
    port = free_port()
    started = time.monotonic()
    proc = await spawn("--demo", "--web.listen-address", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    first_followers = None
    seen: set[str] = set()
    try:
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < 15:
                try:
                    async with session.get(f"{base}/metrics") as response:
                        samples = parse_exposition(await response.text())
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
                    continue
                followers = value(
                    samples, "unipost_account_followers", account_id="sa_tiktok_brand"
                )
                if followers is not None and first_followers is None:
                    first_followers = followers
                seen |= {s["status"] for s in series(samples, "unipost_account_status")}
                grown = followers is not None and first_followers is not None
                if (
                    grown
                    and followers > first_followers
                    and {  # type: ignore[operator]
                        "ok",
                        "upstream_failing",
                        "disconnected",
                        "needs_reconnect",
                        "not_supported",
                    }
                    <= seen
                ):
                    break
                await asyncio.sleep(0.5)
            else:
                pytest.fail(f"after 15s: statuses {seen}, followers {first_followers}->{followers}")
            async with session.get(base + "/") as response:
                page = await response.text()
    finally:
        code, log = await finish(proc)
    assert "Demo mode." in page and "simulator" in page
    # The hidden-subscriber channel shows why it has no followers; the throttled TikTok
    # account backs off on its own.
    assert value(samples, "unipost_account_followers", account_id="sa_youtube_hidden") is None
    hidden = value(
        samples,
        "unipost_account_platform_flag",
        account_id="sa_youtube_hidden",
        field="hidden_subscriber_count",
    )
    assert hidden == 1
    assert "absent: hidden by the channel" in page
    throttled = value(
        samples,
        "unipost_api_errors_total",
        account_id="sa_tiktok_shop",
        code="UPSTREAM_RATE_LIMITED",
    )
    assert throttled is not None and throttled >= 1
    assert code == 0
    assert "DEMO MODE" in log.splitlines()[0]


@pytest.mark.parametrize(
    "command",
    [["-m", "exporter", "simulate"], ["-m", "exporter.simulator"]],
    ids=["unipost-exporter simulate", "python -m exporter.simulator"],
)
async def test_the_simulator_runs_on_its_own(command: list[str]) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        "--web.listen-address",
        f"127.0.0.1:{port}",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(
                        f"http://127.0.0.1:{port}/v1/accounts",
                        headers={"Authorization": f"Bearer {DEFAULT_SIM_KEY}"},
                    ) as response:
                        body = await response.json()
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("simulator did not start")
    finally:
        code, log = await finish(proc)
    # The demo workspace has 13 accounts; disconnected ones are not listed.
    assert len(body["data"]) == 12
    assert code == 0
    assert "UniPost simulator on http://127.0.0.1:" in log


async def test_the_simulator_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await spawn("simulate", "--web.listen-address", f"127.0.0.1:{port}")
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    lines = stderr.decode().strip().splitlines()
    assert proc.returncode == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"unipost-exporter simulate: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in lines[0]
