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
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

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

ROOT = Path(__file__).parent.parent
# The key the benchmark's exporter sends and its fake UniPost expects.
API_KEY = "up_test_bench"


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

    async def stats(self, arrivals: bool = False) -> dict[str, Any]:
        url = f"{self.base}/stats" + ("?arrivals=1" if arrivals else "")
        async with self.session.get(url) as response:
            result: dict[str, Any] = await response.json()
            return result

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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, rate = args.accounts, args.rate
    pin_self = pin(0)
    if pin_self:
        pin_self()
    server_port, exporter_port = free_port(), free_port()
    fake = await FakeServer.start(server_port, rate, burst=10)
    stats = fake.stats
    interval = max(1.0, n / (2 * rate))  # demand is twice the budget: intervals stretch
    config = bench_config(fake.base, n, rate, interval)
    out: dict[str, Any] = {"accounts": n, "rate": rate}
    monitor = StallMonitor()
    monitor.start()

    # -- start-up: the first round -------------------------------------------------------
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    started = time.perf_counter()
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", exporter_port).start()
    stores = app[RUNTIME].stores()
    # Watched from the fake UniPost's side: scanning the store here would cost the exporter's
    # own event loop milliseconds per look at 100,000 accounts.
    while (await stats())["accounts"] < n:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    out["first_round_s"] = time.perf_counter() - started
    first = await stats(arrivals=True)
    arrivals = first["arrivals"][:n]
    out["startup_max_per_1s"] = max_in_window(arrivals, 1.0)
    out["startup_max_per_50ms"] = max_in_window(arrivals, 0.05)
    out["rss_mb_after_first_round"] = rss_mb()
    await monitor.stop()  # its 1 ms timer would be counted as polling CPU

    # -- steady polling, no scrapes: CPU per poll, budget use ------------------------------
    before, cpu0, wall0 = await stats(), time.process_time(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    after, cpu1, wall1 = await stats(), time.process_time(), time.perf_counter()
    polls = (after["requests"] - after["refused"]) - (before["requests"] - before["refused"])
    out["polls_per_s"] = polls / (wall1 - wall0)
    out["cpu_per_poll_ms"] = (cpu1 - cpu0) / max(polls, 1) * 1000
    out["budget_use"] = out["polls_per_s"] / rate
    monitor.start()
    await asyncio.sleep(min(args.seconds, 5))
    steady_stalls = monitor.take()

    # -- scrapes while polling: latency and event-loop stall -------------------------------
    url = f"http://127.0.0.1:{exporter_port}/metrics"
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
    # -- saving the state (--storage.path) while polling: its size, and the loop's stall ------
    with tempfile.TemporaryDirectory() as directory:
        file = StateFile(directory)
        saver = StateSaver(file, app[RUNTIME].stores, lambda store: fake.base, StateStatus())
        monitor.take()
        began = time.perf_counter()
        await saver.save()
        out["state_save_ms"] = (time.perf_counter() - began) * 1000
        out["stall_save_max_ms"] = max(monitor.take() or [0.0]) * 1000
        out["state_bytes"] = file.path.stat().st_size
    out["stall_no_scrape_max_ms"] = max(steady_stalls or [0.0]) * 1000
    out["stall_no_scrape_p99_ms"] = percentile(steady_stalls or [0.0], 0.99) * 1000
    out["rss_mb_after_scrapes"] = rss_mb()
    final = await stats()
    out["refused_429"] = final["refused"]
    out["polls_per_account_min"] = final["min_polls"]
    out["polls_per_account_max"] = final["max_polls"]

    # -- baselines on the same samples (polling paused meanwhile is fine: same state) ------
    await monitor.stop()
    await runner.cleanup()
    exposition = app[EXPOSITION]
    reload_status = app[RUNTIME].reload_status
    reference = build_registry(stores, with_process_metrics=True, reload=reload_status)
    out["generate_latest_ms"] = median_time(lambda: generate_latest(reference), 3) * 1000
    out["fast_render_ms"] = median_time(exposition.render, 10) * 1000
    fast_text = exposition.render().decode()
    out["identical_to_prometheus_client"] = samples_of(fast_text) == samples_of(
        generate_latest(reference).decode()
    )
    out["rss_mb_end"] = out["rss_mb_after_scrapes"]

    # -- naive paced poller: a task per request at the same rate, parse, keep the numbers ---
    base = fake.base
    async with aiohttp.ClientSession() as naive:
        paced: dict[str, Any] = {}

        async def one(account_id: str) -> None:
            async with naive.get(f"{base}/unlimited/v1/accounts/{account_id}/metrics") as r:
                paced[account_id] = json.loads(await r.read())["data"]["follower_count"]

        count = int(rate * min(args.seconds, 5))
        tasks = []
        cpu0, next_at = time.process_time(), time.perf_counter()
        for i in range(count):
            next_at += 1.0 / rate
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(f"sa_instagram_{i % n}")))
        await asyncio.gather(*tasks)
        out["naive_paced_cpu_per_poll_ms"] = (time.process_time() - cpu0) / count * 1000

    # -- naive sequential poller: one request at a time, parse, keep the numbers ------------
    values: dict[str, Any] = {}
    count = min(2000, max(200, n))
    base = fake.base
    async with aiohttp.ClientSession() as naive:
        cpu0 = time.process_time()
        for i in range(count):
            account_id = f"sa_instagram_{i}"
            async with naive.get(f"{base}/unlimited/v1/accounts/{account_id}/metrics") as r:
                values[account_id] = json.loads(await r.read())["data"]["follower_count"]
        out["naive_cpu_per_poll_ms"] = (time.process_time() - cpu0) / count * 1000

    await fake.stop()
    return out


def table(r: dict[str, Any]) -> str:
    rows = [
        ("/metrics p50, uncompressed", f"{r['metrics_plain_p50_ms']:.1f} ms",
         f"generate_latest() {r['generate_latest_ms']:.0f} ms",
         f"{r['generate_latest_ms'] / r['metrics_plain_p50_ms']:.0f}x faster", ">= 10x"),
        ("/metrics p99, uncompressed", f"{r['metrics_plain_p99_ms']:.1f} ms", "", "", ""),
        ("/metrics p50 / p99, gzip",
         f"{r['metrics_gzip_p50_ms']:.1f} / {r['metrics_gzip_p99_ms']:.1f} ms",
         "", f"{r['metrics_plain_bytes'] / 1e6:.1f} MB -> {r['metrics_gzip_bytes'] / 1e6:.1f} MB",
         ""),
        ("render in-process", f"{r['fast_render_ms']:.1f} ms",
         f"generate_latest() {r['generate_latest_ms']:.0f} ms",
         f"{r['generate_latest_ms'] / r['fast_render_ms']:.0f}x faster", ""),
        ("output vs prometheus_client", "identical" if r["identical_to_prometheus_client"]
         else "DIFFERENT", "", "", "identical"),
        ("loop stall during scrapes, max",
         f"{r['stall_scrape_plain_max_ms']:.1f} ms plain, {r['stall_scrape_gzip_max_ms']:.1f} "
         "ms gzip", f"no scrape: {r['stall_no_scrape_max_ms']:.1f} ms", "", "<= 20 ms"),
        ("loop stall during scrapes, p99",
         f"{r['stall_scrape_plain_p99_ms']:.1f} ms plain, {r['stall_scrape_gzip_p99_ms']:.1f} "
         "ms gzip", f"no scrape: {r['stall_no_scrape_p99_ms']:.1f} ms", "", ""),
        ("state file (--storage.path)",
         f"{r['state_bytes'] / 1e6:.1f} MB, {r['state_bytes'] / r['accounts']:.0f} B/account",
         f"saved in {r['state_save_ms']:.0f} ms", "", ""),
        ("loop stall while saving, max", f"{r['stall_save_max_ms']:.1f} ms", "", "", "<= 20 ms"),
        ("CPU per poll", f"{r['cpu_per_poll_ms']:.3f} ms",
         f"naive sequential {r['naive_cpu_per_poll_ms']:.3f} ms",
         f"{r['cpu_per_poll_ms'] / r['naive_cpu_per_poll_ms']:.2f}x", "<= 0.3 ms"),
        ("CPU per poll, same pace", "",
         f"naive paced {r['naive_paced_cpu_per_poll_ms']:.3f} ms",
         f"{r['cpu_per_poll_ms'] / r['naive_paced_cpu_per_poll_ms']:.2f}x", ""),
        ("polls/s (budget)", f"{r['polls_per_s']:.0f} ({r['rate']})", "", "", ""),
        ("budget use", f"{r['budget_use']:.1%}", "", "", ">= 95%"),
        ("429 from own pacing", str(r["refused_429"]), "", "", "0"),
        ("polls per account, min..max",
         f"{r['polls_per_account_min']}..{r['polls_per_account_max']}", "", "", "within 2"),
        ("first round", f"{r['first_round_s']:.1f} s",
         f"{r['accounts']} / budget = {r['accounts'] / r['rate']:.1f} s", "", ""),
        ("start-up, max requests in any 1 s", f"{r['startup_max_per_1s']}",
         f"budget {r['rate']}", "", "no burst above budget"),
        ("start-up, max requests in any 50 ms", f"{r['startup_max_per_50ms']}",
         f"budget {r['rate'] * 0.05:.0f}", "", "(arrival jitter included)"),
        ("resident memory", f"{r['rss_mb_after_first_round']:.0f} MB after first round, "
         f"{r['rss_mb_after_scrapes']:.0f} MB after scrapes", "", "", "<= 100 MB at 10k"),
    ]  # fmt: skip
    return format_table(
        f"unipost-exporter benchmark: {r['accounts']} accounts, budget {r['rate']} requests/s",
        rows,
    )


def format_table(title: str, rows: Sequence[tuple[str, str, str, str, str]]) -> str:
    """A titled table of figures, each with its baseline, ratio and goal, and the machine."""
    header = ("figure", "exporter", "baseline", "ratio", "goal")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    lines = [
        f"{title}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}",
        " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    for row in rows:
        lines.append(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="budget, requests per second")
    parser.add_argument("--seconds", type=float, default=15, help="steady-state window")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes per mode")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    return report(table(result), result, args.json)


def report(text: str, result: dict[str, Any], json_path: Path | None) -> int:
    """Print the table; with --json, also write the figures."""
    print(text)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
