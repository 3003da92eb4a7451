"""The exporter at scale, measured against baselines in the same run.

    python -m bench.run                     # 10,000 accounts (make bench)
    python -m bench.run --accounts 100000   # the large case
    python -m bench.run --accounts 300 --seconds 2 --scrapes 2   # a smoke run

A fast fake UniPost runs in its own process (its CPU is not counted), enforcing a
workspace limit equal to the exporter's budget. The exporter runs in this process, as it
does in production: the real app, client, scheduler and exposition, on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import heap
from exporter.client import make_session
from exporter.config import (
    AccountConfig,
    Config,
    PollingConfig,
    UniPostConfig,
    WorkspaceConfig,
)
from exporter.persistence import StateFile, StateSaver
from exporter.server import EXPOSITION, RUNTIME, build_registry, create_app
from exporter.store import StateStatus
from tests.fake_unipost import TokenBucket

ROOT = Path(__file__).parent.parent
# The key the benchmark's exporter sends and its fake UniPost expects.
API_KEY = "up_test_bench"
# The fake UniPost's limiter: the budget's rate, and room for 10 ms of arrival jitter.
FAKE_BURST = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def max_in_window(times: Sequence[float], window: float) -> int:
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, t + window - 1e-9) - i for i, t in enumerate(ordered)),
        default=0,
    )


async def forget_spawn(monitor: StallMonitor) -> None:
    """Drop the stall the benchmark itself just caused: forking the scraper process (with a
    preexec_fn, so a real fork of this whole process) blocks the loop for 10-30 ms."""
    await asyncio.sleep(0.005)  # let the monitor record that late tick first
    monitor.take()


class StallMonitor:
    """How late the event loop runs a 1 ms timer: the stall polls and /-/healthy would see."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.samples.append(time.perf_counter() - started - 0.001)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._run())

    def take(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            self._task = None


def samples_of(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    return {
        (s.name, frozenset(s.labels.items()), s.value)
        for family in text_string_to_metric_families(text)
        if not family.name.startswith(("process_", "python_"))
        for s in family.samples
    }


def pin(cpu: int) -> Callable[[], None] | None:
    """On a machine with two or more cores, keep the exporter on core 0 and the helpers
    (fake UniPost, scraper) on core 1, so the figures are the exporter's, not contention's."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class FakeServer:
    """The tests' fake UniPost in its own process (on core 1), and a client for its /stats."""

    def __init__(self, process: asyncio.subprocess.Process, base: str) -> None:
        self.process = process
        self.base = base
        self.session = aiohttp.ClientSession()

    @classmethod
    async def start(cls, port: int, rate: float, burst: int) -> FakeServer:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fake_unipost", "--port", str(port), "--rate", str(rate),
            "--burst", str(burst), "--api-key", API_KEY, cwd=ROOT, preexec_fn=pin(1),
        )  # fmt: skip
        fake = cls(process, f"http://127.0.0.1:{port}")
        for _ in range(100):
            try:
                await fake.stats()
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        return fake

    async def stats(self, full: bool = False) -> dict[str, Any]:
        """The fake's counters; `full`: also its per-account figures (polls, gaps)."""
        url = f"{self.base}/stats" + ("?full=1" if full else "")
        async with self.session.get(url) as response:
            result: dict[str, Any] = await response.json()
            return result

    async def arrivals(self) -> array[float]:
        """When the fake saw each metrics request (the same monotonic clock as ours)."""
        async with self.session.get(f"{self.base}/arrivals") as response:
            return array("d", await response.read())

    async def stop(self) -> None:
        await self.session.close()
        self.process.terminate()
        await self.process.wait()


def bench_config(base: str, accounts: int, rate: float, interval: float) -> Config:
    """`accounts` instagram accounts at `interval`, with a budget of `rate` requests/s."""
    # Built directly: parsing a 100,000-entry YAML file would leave its garbage in the RSS.
    workspace = WorkspaceConfig(
        unipost=UniPostConfig(
            api_key=API_KEY, base_url=base, timeout=10.0, requests_per_minute=rate * 60
        ),
        accounts=tuple(AccountConfig(id=f"sa_instagram_{i}") for i in range(accounts)),
    )
    return Config(
        polling=PollingConfig(interval=interval, max_backoff=60.0), workspaces=(workspace,)
    )


class GcWatch:
    """The garbage collector's pauses, from its own callbacks: the longest, per phase."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.full = 0  # full collections seen
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)
            if info["generation"] == 2:
                self.full += 1

    def take(self) -> list[float]:
        pauses, self.pauses = self.pauses, []
        return pauses

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


def replay(times: Sequence[float], rate: float, burst: float) -> int:
    """How many of these requests an exact token bucket (the fake's) would refuse."""
    ordered = sorted(times)
    if not ordered:
        return 0
    now = [ordered[0]]
    bucket = TokenBucket(rate, burst, lambda: now[0])
    for when in ordered:
        now[0] = when
        bucket.take()
    return bucket.refused


def traced_sends(sends: array[float]) -> aiohttp.TraceConfig:
    """An aiohttp hook that records when the exporter sends each metrics request."""
    trace = aiohttp.TraceConfig()
    loop = asyncio.get_running_loop()

    async def on_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path.endswith("/metrics"):
            sends.append(loop.time())

    trace.on_request_start.append(on_start)
    return trace


class FirstRound:
    """When the exporter sent each metrics request of its first round, and when the fake
    UniPost saw each: kept as arrays, and analysed once the memory figures are read (sorted
    copies and lists of floats at 100,000 accounts took ~13 MB, which are the benchmark's)."""

    def __init__(self) -> None:
        self.sends: array[float] = array("d")
        self.arrivals: array[float] = array("d")
        self.sessions: list[aiohttp.ClientSession] = []

    def session(self, unipost: UniPostConfig) -> aiohttp.ClientSession:
        """The exporter's session, tracing its sends until stop_tracing()."""
        session = make_session(unipost, [traced_sends(self.sends)])
        self.sessions.append(session)
        return session

    def stop_tracing(self) -> None:
        """aiohttp builds and awaits a trace object per hook and request while any trace is
        configured (~6 per request); the exporter runs without, so the benchmark stops."""
        for session in self.sessions:
            session.trace_configs.clear()

    def figures(self, out: dict[str, Any], rate: float) -> None:
        arrivals, mine = self.arrivals, self.sends
        out["startup_max_per_1s"] = max_in_window(arrivals, 1.0)
        out["startup_max_per_50ms"] = max_in_window(arrivals, 0.05)
        out["sends_max_per_50ms"] = max_in_window(mine, 0.05)
        # The cause, from both ends: an exact limiter replaying the exporter's send times,
        # and replaying the times the fake saw them; and how late the fake saw them.
        out["refused_replay_sends"] = replay(mine, rate, FAKE_BURST)
        out["refused_replay_arrivals"] = replay(arrivals, rate, FAKE_BURST)
        lags = [a - s for a, s in zip(sorted(arrivals), sorted(mine), strict=False)]
        out["arrival_lag_p99_ms"] = percentile(lags or [0.0], 0.99) * 1000
        out["arrival_lag_max_ms"] = max(lags or [0.0]) * 1000


async def first_round(
    out: dict[str, Any], config: Config, n: int, fake: FakeServer, port: int, record: FirstRound
) -> tuple[web.Application, web.AppRunner]:
    """Start the exporter and wait until every account was polled once."""
    app = create_app(config, session_factory=record.session)
    runner = web.AppRunner(app, access_log=None)
    started = time.perf_counter()
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # Watched from the fake UniPost's side: scanning the store here would cost the exporter's
    # own event loop milliseconds per look at 100,000 accounts.
    while (stats := await fake.stats())["accounts"] < n:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    out["first_round_s"] = time.perf_counter() - started
    out["rss_mb_after_first_round"] = rss_mb()
    out["refused_first_round"] = stats["refused"]
    record.stop_tracing()
    record.arrivals = await fake.arrivals()
    return app, runner


def config_rate(config: Config) -> float:
    return config.workspaces[0].unipost.requests_per_minute / 60.0


async def steady(
    out: dict[str, Any], args: argparse.Namespace, fake: FakeServer, app: web.Application
) -> None:
    """Polling without scrapes: budget use, cadence, the fake's own load."""
    n, rate = args.accounts, args.rate
    before, wall0 = await fake.stats(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    after, wall1 = await fake.stats(), time.perf_counter()
    wall = wall1 - wall0
    polls, health = answered(before, after)
    out["polls_per_s"] = polls / wall
    out["health_per_s"] = health / wall
    out["budget_use"] = (polls + health) / wall / rate
    # The plans: every account once per stretched interval (metrics), and once per stretched
    # health interval (health reads). The cadence without health reads is gap_plan_no_health_s.
    interval, health_interval = args.interval, app_health_interval(app)
    stretch = app[RUNTIME].stores()[0].interval_stretch_factor
    out["stretch"] = stretch
    out["polls_plan_per_s"] = n / (interval * stretch)
    out["health_plan_per_s"] = n / (health_interval * stretch) if health_interval else 0.0
    fake_cpu = after["cpu_seconds"] - before["cpu_seconds"]
    out["fake_cpu_share"] = fake_cpu / wall
    out["fake_cpu_per_request_ms"] = fake_cpu / max(polls + health, 1) * 1000


async def cpu_per_request(
    out: dict[str, Any], args: argparse.Namespace, fake: FakeServer, app: web.Application
) -> None:
    """The exporter's CPU per request (metrics polls and health reads) and the naive paced
    poller's, in turns on the same core: NAIVE_RUNS windows of the exporter polling without
    scrapes, args.seconds in all, each followed by a naive poller in a fresh process while
    the exporter waits.

    In turns, because this VM has slow phases: back to back, 2-5 s windows of one process
    varied up to 27%, so windows minutes or even seconds apart compared the phases, not the
    code. The exporter waits the way it waits for a refusal's Retry-After: its budget is
    blocked, so its loop sleeps on one timer; afterwards the budget paces it from then on,
    with no burst.
    """
    schedulers = app[RUNTIME].schedulers()
    seconds = args.seconds / NAIVE_RUNS
    cpu = requests = 0.0
    runs = []
    for _ in range(NAIVE_RUNS):
        await asyncio.sleep(0.5)  # back to its pace
        before, cpu0 = await fake.stats(), time.process_time()
        await asyncio.sleep(seconds)
        after, cpu1 = await fake.stats(), time.process_time()
        cpu, requests = cpu + cpu1 - cpu0, requests + sum(answered(before, after))
        for scheduler in schedulers:  # until the naive poller is done, at the latest
            scheduler.budget.blocked_until = scheduler.clock.monotonic() + seconds + 30
        await asyncio.sleep(0.2)  # the polls in flight land
        runs.append(await naive_process(args, fake.base, seconds))
        for scheduler in schedulers:
            scheduler.budget.blocked_until = -math.inf
            scheduler.queue.wake()
    out["cpu_per_poll_ms"] = cpu / max(requests, 1) * 1000
    for key in ("naive_paced_cpu_per_poll_ms", "naive_cpu_per_poll_ms"):
        out[key] = statistics.median(run[key] for run in runs)
    out["naive_paced_runs_ms"] = [run["naive_paced_cpu_per_poll_ms"] for run in runs]


def answered(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int]:
    """The metrics polls the fake answered (refusals not counted) and the health reads it
    served between two readings of its /stats."""
    polls = (after["requests"] - after["refused"]) - (before["requests"] - before["refused"])
    return polls, after["health_reads"] - before["health_reads"]


def app_health_interval(app: web.Application) -> float:
    return float(app[RUNTIME].config.polling.health_interval)


async def scrapes(
    out: dict[str, Any], args: argparse.Namespace, port: int, monitor: StallMonitor, gcw: GcWatch
) -> None:
    """Scrapes while polling: latency and event-loop stall, plain and gzip."""
    url = f"http://127.0.0.1:{port}/metrics"
    for mode in ("plain", "gzip"):
        scraper = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.scrape", "--url", url, "--count", str(args.scrapes),
            *(["--gzip"] if mode == "gzip" else []), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            preexec_fn=pin(1),
        )  # fmt: skip
        await forget_spawn(monitor)
        stdout, _ = await scraper.communicate()
        result = json.loads(stdout)
        out[f"metrics_{mode}_p50_ms"] = percentile(result["latencies"], 0.5) * 1000
        out[f"metrics_{mode}_p99_ms"] = percentile(result["latencies"], 0.99) * 1000
        out[f"metrics_{mode}_bytes"] = result["bytes"]
        stalls = monitor.take() or [0.0]
        out[f"stall_scrape_{mode}_max_ms"] = max(stalls) * 1000
        out[f"stall_scrape_{mode}_p99_ms"] = percentile(stalls, 0.99) * 1000
    out["gc_pause_max_ms"] = max(gcw.take() or [0.0]) * 1000


async def save_state(
    out: dict[str, Any], app: web.Application, base: str, monitor: StallMonitor
) -> None:
    """Saving the state (--storage.path) while polling: its size, and the loop's stall."""
    with tempfile.TemporaryDirectory() as directory:
        file = StateFile(directory)
        saver = StateSaver(file, app[RUNTIME].stores, lambda store: base, StateStatus())
        monitor.take()
        began = time.perf_counter()
        await saver.save()
        out["state_save_ms"] = (time.perf_counter() - began) * 1000
        out["stall_save_max_ms"] = max(monitor.take() or [0.0]) * 1000
        out["state_bytes"] = file.path.stat().st_size


async def baselines(out: dict[str, Any], app: web.Application, repeat: int) -> None:
    """generate_latest() and the in-process render, on the same samples (polling stopped)."""
    stores = app[RUNTIME].stores()
    exposition = app[EXPOSITION]
    reference = build_registry(stores, with_process_metrics=True, reload=app[RUNTIME].reload_status)
    out["generate_latest_ms"] = median_time(lambda: generate_latest(reference), repeat) * 1000
    out["fast_render_ms"] = median_time(exposition.render, 5) * 1000
    out["identical_to_prometheus_client"] = samples_of(exposition.render().decode()) == samples_of(
        generate_latest(reference).decode()
    )


# The naive pollers run in this many fresh processes per size, between as many windows of
# the exporter: the same code varied 0.33-0.44 ms a request from one process to the next on
# this VM, so one process's luck would decide the ratio. The baseline is their median; their
# spread is shown beside it.
NAIVE_RUNS = 3


async def naive_process(args: argparse.Namespace, base: str, seconds: float) -> dict[str, Any]:
    """The naive pollers' figures, from a fresh process on the exporter's core."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.naive", "--base", base, "--rate", str(args.rate),
        "--seconds", str(seconds), "--accounts", str(args.accounts), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, preexec_fn=pin(0),
    )  # fmt: skip
    stdout, _ = await process.communicate()
    figures: dict[str, Any] = json.loads(stdout)
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, rate = args.accounts, args.rate
    pin_self = pin(0)
    if pin_self:
        pin_self()
    server_port, exporter_port = free_port(), free_port()
    fake = await FakeServer.start(server_port, rate, burst=FAKE_BURST)
    args.interval = max(1.0, n / (2 * rate))  # demand is twice the budget: intervals stretch
    config = bench_config(fake.base, n, rate, args.interval)
    out: dict[str, Any] = {"accounts": n, "rate": rate}
    gcw = GcWatch()
    monitor = StallMonitor()
    monitor.start()
    record = FirstRound()
    app, runner = await first_round(out, config, n, fake, exporter_port, record)
    out["gc_pause_max_first_round_ms"] = max(gcw.take() or [0.0]) * 1000
    await monitor.stop()  # its 1 ms timer would be counted as polling CPU
    await steady(out, args, fake, app)
    monitor.start()
    await asyncio.sleep(min(args.seconds, 5))
    steady_stalls = monitor.take()
    out["stall_no_scrape_max_ms"] = max(steady_stalls or [0.0]) * 1000
    out["stall_no_scrape_p99_ms"] = percentile(steady_stalls or [0.0], 0.99) * 1000
    gcw.take()
    await scrapes(out, args, exporter_port, monitor, gcw)
    await save_state(out, app, fake.base, monitor)
    out["rss_mb_after_scrapes"] = rss_mb()
    final = await fake.stats(full=True)
    out["refused_429"] = final["refused"]
    out["polls_per_account_min"] = final["min_polls"]
    # Each account's time between polls, as the fake saw it, against the plan: its interval
    # stretched (health reads included in the stretch), and the same without health reads.
    out["gap_median_s"] = final["gap_median"] or 0.0
    out["gaps"] = final["gaps"]
    out["gap_plan_s"] = args.interval * out["stretch"]
    out["gap_plan_no_health_s"] = args.interval * max(1.0, n / args.interval / rate)
    out["polls_per_account_max"] = final["max_polls"]
    await monitor.stop()
    gcw.stop()  # the benchmark's instruments are off: the exporter runs without them
    # CPU per request last, in turns with the naive pollers.
    await cpu_per_request(out, args, fake, app)
    await runner.cleanup()
    record.figures(out, config_rate(config))
    # Stopping released the heap (heap.release); the baselines run as the exporter's scrapes
    # did, with the long-lived heap out of the garbage collector's scans.
    heap.settle()
    await baselines(out, app, repeat=1 if n >= 50_000 else 3)
    await fake.stop()
    return out


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _spread(values: Sequence[float]) -> str:
    """The range of one figure measured in several processes, and how far apart its ends are."""
    low, high = min(values), max(values)
    return f"{low:.3f}-{high:.3f} ms ({high / low:.2f}x)"


# The sweep's rows: (figure, how to show it from one size's figures, goal).
SWEEP_ROWS: list[tuple[str, Callable[[dict[str, Any]], str], str]] = [
    ("resident memory after first round", lambda r: f"{r['rss_mb_after_first_round']:.0f} MB",
     "<= 200 MB at 100k"),
    ("resident memory after scrapes", lambda r: f"{r['rss_mb_after_scrapes']:.0f} MB", ""),
    # In the unit of the rows above (MB = 1,024 KB: VmRSS / 1024); it was bytes / 1,000.
    ("  RSS / accounts", lambda r: f"{r['rss_mb_after_scrapes'] * 1024 / r['accounts']:.2f} KB",
     "<= 2 KB"),
    ("/metrics p50, uncompressed", lambda r: _ms(r["metrics_plain_p50_ms"]), ""),
    ("generate_latest()", lambda r: _ms(r["generate_latest_ms"]), ""),
    ("  /metrics vs generate_latest()",
     lambda r: f"{r['generate_latest_ms'] / r['metrics_plain_p50_ms']:.0f}x faster",
     ">= 20x at 100k"),
    ("/metrics p50, gzip", lambda r: _ms(r["metrics_gzip_p50_ms"]), ""),
    ("body, plain -> gzip", lambda r: f"{r['metrics_plain_bytes'] / 1e6:.1f} -> "
     f"{r['metrics_gzip_bytes'] / 1e6:.1f} MB", ""),
    ("loop stall during scrapes, max", lambda r: _ms(max(r["stall_scrape_plain_max_ms"],
                                                         r["stall_scrape_gzip_max_ms"])),
     "<= 20 ms"),
    ("loop stall without scrapes, max", lambda r: _ms(r["stall_no_scrape_max_ms"]), ""),
    ("loop stall while saving state, max", lambda r: _ms(r["stall_save_max_ms"]), "<= 20 ms"),
    ("state file, saved in", lambda r: f"{r['state_bytes'] / 1e6:.1f} MB, "
     f"{r['state_save_ms'] / 1000:.1f} s", ""),
    ("output vs prometheus_client",
     lambda r: "identical" if r["identical_to_prometheus_client"] else "DIFFERENT", "identical"),
    ("GC pause, max (scrapes)", lambda r: _ms(r["gc_pause_max_ms"]), ""),
    ("CPU per request", lambda r: f"{r['cpu_per_poll_ms']:.3f} ms", ""),
    ("naive paced poller, same run", lambda r: f"{r['naive_paced_cpu_per_poll_ms']:.3f} ms", ""),
    (f"  its {NAIVE_RUNS} processes, min-max", lambda r: _spread(r["naive_paced_runs_ms"]), ""),
    ("  exporter vs naive paced",
     lambda r: f"{r['cpu_per_poll_ms'] / r['naive_paced_cpu_per_poll_ms']:.2f}x", "<= 1.3x"),
    ("first round", lambda r: f"{r['first_round_s']:.1f} s (plan {r['accounts'] / r['rate']:.0f})",
     ""),
    ("refused in the first round (fake)", lambda r: str(r["refused_first_round"]), "0"),
    ("  replaying the exporter's sends", lambda r: str(r["refused_replay_sends"]), "0"),
    ("  replaying the fake's arrivals", lambda r: str(r["refused_replay_arrivals"]), ""),
    ("  most sends in any 50 ms", lambda r: str(r["sends_max_per_50ms"]),
     "budget 50 + burst 10"),
    ("  fake saw them late by, p99 / max",
     lambda r: f"{r['arrival_lag_p99_ms']:.1f} / {r['arrival_lag_max_ms']:.1f} ms", ""),
    ("budget use (metrics + health)", lambda r: f"{r['budget_use']:.1%}", ">= 95%"),
    ("metrics polls/s vs plan", lambda r: f"{r['polls_per_s']:.0f} / {r['polls_plan_per_s']:.0f}",
     ""),
    ("each account's poll gap, median", lambda r: f"{r['gap_median_s']:.2f} s "
     f"({r['gaps']:,} gaps)", ""),
    ("  vs plan (stretch incl. health)",
     lambda r: f"{r['gap_plan_s']:.2f} s, {r['gap_median_s'] / r['gap_plan_s']:.3f}x",
     "within 2%"),
    ("  plan without health reads", lambda r: f"{r['gap_plan_no_health_s']:.2f} s", ""),
    ("health reads/s vs plan (1h)",
     lambda r: f"{r['health_per_s']:.1f} / {r['health_plan_per_s']:.1f}", ""),
    ("fake UniPost: CPU of its core", lambda r: f"{r['fake_cpu_share']:.0%}", "< 100%"),
    ("fake UniPost: CPU per request", lambda r: f"{r['fake_cpu_per_request_ms']:.3f} ms", ""),
]  # fmt: skip


def sweep_table(results: Sequence[dict[str, Any]]) -> str:
    """One column per size: how each figure grows with the work."""
    header = ("figure", *(f"{r['accounts']:,} accounts" for r in results), "goal")
    rows = [(name, *(show(r) for r in results), goal) for name, show, goal in SWEEP_ROWS]
    rate = results[0]["rate"]
    return format_rows(
        f"unipost-exporter benchmark, budget {rate} requests/s (fake UniPost limit = budget)",
        [header, *rows],
    )


def table(r: dict[str, Any]) -> str:
    return sweep_table([r])


def format_table(title: str, rows: Sequence[tuple[str, str, str, str, str]]) -> str:
    """A titled table of figures, each with its baseline, ratio and goal (bench.load)."""
    return format_rows(title, [("figure", "exporter", "baseline", "ratio", "goal"), *rows])


def format_rows(title: str, rows: Sequence[Sequence[str]]) -> str:
    """A titled table whose first row is the header, and the machine it ran on."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"{title}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}",
        " | ".join(str(h).ljust(w) for h, w in zip(rows[0], widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    for row in rows[1:]:
        lines.append(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--accounts",
        default="10000",
        help="accounts, or a comma-separated sweep (1000,10000,100000)",
    )
    parser.add_argument("--rate", type=int, default=1000, help="budget, requests per second")
    parser.add_argument("--seconds", type=float, default=15, help="steady-state window")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes per mode")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(size) for size in str(args.accounts).split(",")]
    if len(sizes) == 1:
        args.accounts = sizes[0]
        result = asyncio.run(run(args))
        return report(table(result), [result], args.json)
    results = [measure_alone(size, args) for size in sizes]
    return report(sweep_table(results), results, args.json)


def measure_alone(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """One size of a sweep, in a fresh process: its memory is its own."""
    with tempfile.TemporaryDirectory() as directory:
        figures = Path(directory) / "figures.json"
        command = [sys.executable, "-m", "bench.run", "--accounts", str(size), "--rate",
                   str(args.rate), "--seconds", str(args.seconds), "--scrapes",
                   str(args.scrapes), "--json", str(figures)]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        result: dict[str, Any] = json.loads(figures.read_text())[0]
        return result


def report(text: str, results: Any, json_path: Path | None) -> int:
    """Print the table; with --json, also write the figures (bench.run: a list, a size each)."""
    print(text)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
