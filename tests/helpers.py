"""Test helpers shared by every test module: an injectable clock, configs, a fixed store,
the exporter as a process, a /metrics parser, and a real Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import random
import re
import shutil
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.parse import Health, Snapshot
from exporter.scheduler import Scheduler
from exporter.schema import Config, PollingConfig, WorkspaceConfig
from exporter.server import build_registry
from exporter.sharding import Shard
from exporter.store import AccountState, Status, Store
from tests.fake_unipost import API_KEY, FakeUniPost, free_port

ROOT = Path(__file__).parent.parent

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def let_tasks_run(rounds: int = 30) -> None:
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
        await let_tasks_run()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.callback is None:
                continue
            self.now = max(self.now, when)
            timer.callback()
            await let_tasks_run()
        self.now = target
        await let_tasks_run()


@contextlib.asynccontextmanager
async def running(scheduler: Any) -> AsyncIterator[None]:
    """The scheduler's loop, for the block; cancelled and awaited after it."""
    task = asyncio.create_task(scheduler.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class SchedulerStack:
    """A workspace's Scheduler on an injected clock against the in-memory fake UniPost:
    `clock`, `store`, `fake` (its script, health script and workspace answers), `client`."""

    def __init__(
        self, config: Config, fake: FakeUniPost, seed: int = 5, shard: Shard | None = None
    ) -> None:
        self.clock = FakeClock()
        self.store = Store()
        self.fake = fake
        self.client = fake.client(self.clock)
        self.scheduler = Scheduler(
            *only(config), self.store, self.client, self.clock, random.Random(seed), shard
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Any]:
        """The scheduler's loop, for the block."""
        async with running(self.scheduler):
            yield self


def only(config: Config) -> tuple[WorkspaceConfig, PollingConfig]:
    """A single-workspace config's workspace and polling policy: what a Scheduler takes."""
    (workspace,) = config.workspaces
    return workspace, config.polling


async def wait_until(check: Callable[[], bool], seconds: float = 10, what: str = "") -> None:
    """Look every 50 ms until `check()` holds; fail naming `what` after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds}s: {what or check}")
        await asyncio.sleep(0.05)


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


def require_binary(name: str, package: str = "prometheus") -> str:
    """The path of a binary from a Debian package: skipped locally when missing, failed in
    CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: .ci/run must apt-get install {package}")
        pytest.skip(f"{name} not installed (apt-get install {package})")
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


# -- configs and stores -----------------------------------------------------------------------


def make_config(
    account_ids: list[str] | list[dict[str, Any]],
    requests_per_minute: float = 600,
    interval: str = "1m",
    floors: dict[str, str] | None = None,
    max_backoff: str = "6h",
    health_interval: str = "0s",
    workspace_interval: str = "0s",
) -> Config:
    """A single-workspace config for these accounts (IDs or account mappings); health reads
    and the workspace reads (usage, delivery jobs, analytics: `workspace_interval`) are off
    unless asked for."""
    accounts = [a if isinstance(a, dict) else {"id": a} for a in account_ids]
    raw = {
        "unipost": {"api_key": "up_test_x", "requests_per_minute": requests_per_minute},
        "polling": {
            "interval": interval,
            "platform_intervals": floors or {},
            "max_backoff": max_backoff,
            "health_interval": health_interval,
            "usage_interval": workspace_interval,
            "delivery_interval": workspace_interval,
            "analytics_interval": workspace_interval,
        },
        "accounts": accounts,
    }
    return parse_config(yaml.safe_dump(raw), {})


# What tests/fixtures/snapshot_twitter.json means.
TWITTER_SNAPSHOT = Snapshot(
    platform="twitter",
    followers=12480,
    following=327,
    posts=2841,
    platform_values=(("listed_count", 41.0), ("tweet_count", 2841.0)),
    fetched_at=1777401000.0,
)


def account_state(
    account_id: str,
    platform: str,
    labels: tuple[tuple[str, str], ...],
    interval: float,
    **fields: Any,
) -> AccountState:
    """An AccountState with `fields` (status, snapshot, health, api_errors, ...) set."""
    account = AccountState(account_id, platform, labels, interval)
    for name, value in fields.items():
        if name == "status":
            value = Status(value)
        elif name in ("api_errors", "upstream_failures"):
            value = dict(value)
        setattr(account, name, value)
    return account


def fixed_store() -> Store:
    """A store with one account in each interesting state: the golden file's input."""
    store = Store()
    good = TWITTER_SNAPSHOT
    accounts = [
        account_state(
            "sa_twitter_1", "twitter", (("team", "growth"),), 900.0, status="ok", snapshot=good
        ),
        account_state(
            "sa_twitter_2",
            "twitter",
            (),
            900.0,
            status="upstream_failing",
            upstream_failures={"429": 3, "403": 1},
            consecutive_failures=2,
        ),
        account_state(
            'sa_odd"\\\nid',
            "unknown",
            (("team", 'quote " backslash \\ newline \n'),),
            300.0,
            status="pending",
            account_name='Studio "Alex"',
        ),
        account_state(
            "sa_youtube_5",
            "youtube",
            (),
            300.0,
            status="ok",
            health=Health(
                status="degraded",
                token_expires_at=1777660800.0,
                last_successful_post_at=1777300000.0,
                last_error_code="token_expired",
                last_error_at=1777390000.0,
                last_error_message='the token "expired"\n(reconnect)',
            ),
            # A channel that hides its subscribers: no followers or following series.
            snapshot=Snapshot(
                platform="youtube",
                followers=None,
                following=None,
                posts=312,
                platform_values=(("view_count", 18234001.0),),
                fetched_at=1777401000.5,
                platform_flags=(
                    ("following_count_supported", 0.0),
                    ("hidden_subscriber_count", 1.0),
                    ("post_count_public_only", 1.0),
                    ("subscriber_count_rounded", 1.0),
                ),
                unavailable=(
                    ("followers", "hidden by the channel"),
                    ("following", "YouTube does not provide it"),
                ),
            ),
        ),
        account_state(
            "sa_linkedin_4",
            "linkedin",
            (),
            300.0,
            status="not_supported",
            api_errors={"NOT_SUPPORTED": 1},
        ),
    ]
    for account in accounts:
        store.accounts[account.id] = account
    store.api.record_request("account_metrics", "200", 0.12)
    store.api.record_request("account_metrics", "200", 0.7)
    store.api.record_request("account_metrics", "501", 0.04)
    store.api.record_request("account_metrics", "error", 10.0)
    store.api.ratelimit_limit = 60
    store.api.ratelimit_remaining = 57
    store.api.ratelimit_reset = 1777401060
    store.budget_requests_per_minute = 60
    return store


# -- the exporter as a process ------------------------------------------------------------------


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """`python -m exporter ARGS` from the repository, its output captured."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGTERM, then the exit code and stderr."""
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


class Process:
    """A running exporter process and a way to ask it over HTTP(S)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.proc = proc
        self.port = port
        self.stderr = b""
        self.ssl_context = ssl_context
        self.headers = headers or {}

    async def get(self, path: str, **headers: str) -> tuple[int, str]:
        scheme = "https" if self.ssl_context else "http"
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{scheme}://127.0.0.1:{self.port}{path}",
                ssl=self.ssl_context or True,
                headers={**self.headers, **headers},
            ) as response,
        ):
            return response.status, await response.text()

    async def wait_ready(self) -> None:
        for _ in range(200):
            try:
                if (await self.get("/-/ready"))[0] == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("exporter did not become ready")


def workspace_for(fake: FakeUniPost, key_file: Path) -> dict[str, Any]:
    """A workspace of four accounts polling `fake` with the key in `key_file`."""
    return {
        "unipost": {
            "base_url": fake.base_url,
            "api_key_file": str(key_file),
            "requests_per_minute": 600,
            "timeout": "1s",
        },
        "accounts": [
            {"id": "sa_twitter_1", "labels": {"team": "growth"}},
            {"id": "sa_twitter_2"},
            {"id": "sa_instagram_3"},
            {"id": "sa_youtube_4"},
        ],
    }


async def start_process(
    fake: FakeUniPost,
    tmp_path: Path,
    *args: str,
    second_key: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Process, Path]:
    """The exporter as a process; with `second_key`, a second workspace polls with that key."""
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n")
    polling = {"interval": "1s", "platform_intervals": {"twitter": "1s"}}
    if second_key is None:
        raw: dict[str, Any] = {"polling": polling, **workspace_for(fake, key_file)}
    else:
        second_file = tmp_path / "second"
        second_file.write_text(second_key)
        raw = {
            "polling": polling,
            "workspaces": [
                {"name": "acme", **workspace_for(fake, key_file)},
                {"name": "globex", **workspace_for(fake, second_file)},
            ],
        }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    port = free_port()
    listen = f"127.0.0.1:{port}"
    storage = f"--storage.path={tmp_path / 'state'}"  # its own, not the checkout's data/
    proc = await spawn("--config.file", str(config), "--web.listen-address", listen, storage, *args)
    process = Process(proc, port, ssl_context, headers)
    await process.wait_ready()
    return process, config


async def stop(process: Process, sig: signal.Signals = signal.SIGTERM) -> tuple[int, float]:
    """Send `sig`; the exit code and how long the process took to exit."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    process.proc.send_signal(sig)
    _, stderr = await asyncio.wait_for(process.proc.communicate(), timeout=10)
    process.stderr = stderr
    assert process.proc.returncode is not None
    return process.proc.returncode, loop.time() - started


def markdown_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    return {
        re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
