"""Test helpers: an injectable clock, a scripted in-memory client, and a /metrics parser."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.client import RawResponse
from exporter.config import Config, PollingConfig, WorkspaceConfig, platform_from_id
from exporter.server import build_registry
from exporter.store import Store

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def settle(rounds: int = 30) -> None:
    """Let every task that can run, run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class _FakeTimer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class FakeClock:
    """Time that moves only when a test advances it; timers fire in order."""

    def __init__(self, start: float = 1000.0, wall_offset: float = 1_800_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall_offset
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_offset + self.now

    def call_later(self, seconds: float, callback: Callable[[], None]) -> _FakeTimer:
        timer = _FakeTimer(callback)
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: future.done() or future.set_result(None))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing each timer at its own time."""
        target = self.now + seconds
        await settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.callback is None:
                continue
            self.now = max(self.now, when)
            timer.callback()
            await settle()
        self.now = target
        await settle()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> RawResponse:
    """A RawResponse as the HTTP client would return it."""
    return RawResponse(
        status=status,
        headers=CIMultiDictProxy(CIMultiDict(headers or {})),
        body=json.dumps(body).encode(),
    )


def good(account_id: str, followers: int = 100, platform: str | None = None) -> RawResponse:
    """A good snapshot; the platform defaults to the one the ID names."""
    platform = platform or platform_from_id(account_id)
    return json_response(
        200,
        {
            "data": {
                "social_account_id": account_id,
                "platform": platform,
                "follower_count": followers,
                "following_count": 10,
                "post_count": 5,
                "platform_specific": {"listed_count": 3},
                "fetched_at": "2026-04-28T18:30:00Z",
            }
        },
    )


def zero_filled(account_id: str, upstream_status: int = 429) -> RawResponse:
    return json_response(
        200,
        {
            "data": {
                "social_account_id": account_id,
                "platform": "twitter",
                "follower_count": 0,
                "following_count": 0,
                "post_count": 0,
                "platform_specific": {"upstream_status": upstream_status, "upstream_error": "{}"},
                "fetched_at": "2026-04-28T18:30:00Z",
            }
        },
    )


def api_error(status: int, code: str, headers: dict[str, str] | None = None) -> RawResponse:
    return json_response(
        status,
        {"error": {"code": code, "normalized_code": code.lower(), "message": "m"}},
        headers,
    )


Responder = Callable[[str, float], RawResponse]


class ScriptedClient:
    """Stands in for UniPostClient: answers from a function of (account_id, time)."""

    def __init__(self, clock: FakeClock, respond: Responder, latency: float = 0.0) -> None:
        self.clock = clock
        self.respond = respond
        self.latency = latency
        self.calls: list[tuple[float, str]] = []

    async def get_account_metrics(self, account_id: str) -> RawResponse:
        self.calls.append((self.clock.monotonic(), account_id))
        if self.latency:
            await self.clock.sleep(self.latency)
        return self.respond(account_id, self.clock.monotonic())

    def times(self, account_id: str) -> list[float]:
        return [t for t, a in self.calls if a == account_id]


def only(config: Config) -> tuple[WorkspaceConfig, PollingConfig]:
    """A single-workspace config's workspace and polling policy: what a Scheduler takes."""
    (workspace,) = config.workspaces
    return workspace, config.polling


async def scrape_until(
    scrape: Callable[[], Awaitable[Samples]],
    check: Callable[[Samples], bool],
    seconds: float = 10,
    show: Callable[[Samples], object] = repr,
) -> Samples:
    """Scrape every 50 ms until `check` holds; fail with `show(last scrape)` after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        samples = await scrape()
        if check(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {seconds}s; last scrape: {show(samples)}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_exposition(text: str) -> Samples:
    """Every sample in an exposition, keyed by name and label set."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(store: Store) -> Samples:
    """What Prometheus would read from this store."""
    registry = build_registry([store], with_process_metrics=False)
    return parse_exposition(generate_latest(registry).decode())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample whose labels include `labels`, or None when there is none."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def series(samples: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    """Label sets of every sample of `name` whose labels include `labels`."""
    return [
        dict(ls) for (n, ls), _ in samples.items() if n == name and set(labels.items()) <= set(ls)
    ]


def statuses(samples: Samples, **labels: str) -> dict[str, str]:
    """Each account's current status (the one unipost_account_status series it has)."""
    return {
        s["account_id"]: s["status"] for s in series(samples, "unipost_account_status", **labels)
    }


def require_binary(name: str) -> str:
    """The path of a Debian `prometheus` binary: skipped locally when missing, failed in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: .ci/run must apt-get install prometheus")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


@contextlib.asynccontextmanager
async def real_prometheus(
    tmp_path: Path, exporter_port: int, rule_files: Sequence[Path] = ()
) -> AsyncIterator[str]:
    """Debian's Prometheus scraping the exporter (job "unipost") every second; yields its URL."""
    binary = require_binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(path) for path in rule_files],
                "scrape_configs": [
                    {
                        "job_name": "unipost",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    }
                ],
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()
