"""The exporter at scale, started as a user starts it, against baselines in the same run.

    python -m bench.run --accounts 1000,10000,100000   # make bench
    python -m bench.run --accounts 10000 --starts yaml # one size, one start
    python -m bench.run --accounts 300 --seconds 2 --scrapes 2   # a smoke run

Every size is started twice, as a user starts the exporter: the `unipost-exporter` process
with a config file and --storage.path, once with the accounts listed in the YAML (`yaml`)
and once with `discovery: {enabled: true}` over a fake listing that returns every account
in one answer, as the real server does (`discovery`). Nothing of the exporter runs in this
process: memory is read from /proc, CPU from the kernel's per-thread accounting, stalls
from /-/healthy answered while the exporter works (bench.probe).

The tests' fake UniPost runs in its own process, enforcing a workspace limit equal to the
budget. Each baseline runs in a process of its own: the naive paced poller (bench.naive),
the same body served static by a bare aiohttp app (bench.static) and generate_latest() in
a fresh process holding only the scraped samples (bench.reference). On two cores the
exporter and the baselines run on core 0, the fake, the scraper (curl) and the prober on
core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    API_KEY,
    FAKE_BURST,
    ROOT,
    FakeServer,
    format_rows,
    free_port,
    max_in_window,
    percentile,
    pin,
    realtime,
    report,
)
from tests.fake_unipost import TokenBucket

# The command a user runs, from the environment this benchmark runs in.
EXPORTER = Path(sys.executable).with_name("unipost-exporter")
STARTS = ("yaml", "discovery")
# The naive pollers run in this many fresh processes per start, between as many windows
# of the exporter: the same code varies by up to a third from one process to the next on
# a shared VM, so one process's luck would decide the ratio. The baseline is their median.
NAIVE_RUNS = 3
# Discovery's refreshes, once reloaded to a short refresh_interval (--refresh-interval):
# three listings of every account.
REFRESHES = 3
# An hour in, sooner: metrics every 100 s and health every 60 s, within a budget that
# has room for both, until every account's health has been read once.
HOUR_INTERVAL = 100.0
HOUR_HEALTH_INTERVAL = 60.0
HOUR_RATE = 4000


def config_text(
    start: str, base: str, accounts: int, rate: float, interval: float, **polling: str
) -> str:
    """The config file a user would write for this start."""
    lines = [
        "unipost:",
        f"  base_url: {base}",
        "  api_key: ${UNIPOST_API_KEY}",
        "  timeout: 10s",
        f"  requests_per_minute: {rate * 60:g}",
        "polling:",
        f"  interval: {interval:g}s",
        "  max_backoff: 1m",
        *(f"  {key}: {value}" for key, value in polling.items()),
    ]
    if start == "discovery":
        lines.append("discovery:")
        lines.append("  enabled: true")
        if "refresh_interval" in polling:
            raise ValueError("refresh_interval belongs to discovery")
    else:
        lines.append("accounts:")
        lines.extend(f"  - id: sa_instagram_{i}" for i in range(accounts))
    return "\n".join(lines) + "\n"


def proc_mb(pid: int, field: str) -> float:
    """A /proc/PID/status figure (VmRSS, VmHWM) in MB (KiB / 1024)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """The CPU the process's threads have used, from the kernel's scheduler accounting."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total / 1e9


class Exporter:
    """The `unipost-exporter` process, started as a user starts it."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, storage: Path) -> None:
        self.process = process
        self.pid = process.pid
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.storage = storage
        self.log_lines = 0
        self.notable: list[str] = []  # warnings, errors, listings
        self._reader = asyncio.create_task(self._read_logs())

    @classmethod
    async def start(cls, config: Path, storage: Path) -> Exporter:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            str(EXPORTER), "--config.file", str(config), "--web.listen-address",
            f"127.0.0.1:{port}", "--storage.path", str(storage), cwd=config.parent,
            env={**os.environ, "UNIPOST_API_KEY": API_KEY}, stdout=subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=pin(0),
        )  # fmt: skip
        return cls(process, port, storage)

    async def _read_logs(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log_lines += 1
            text = line.decode(errors="replace").rstrip()
            notable = "level=info" not in text or "listing" in text or "listed" in text
            if notable and len(self.notable) < 200:
                self.notable.append(text)

    def rss_mb(self) -> float:
        return proc_mb(self.pid, "VmRSS")

    def peak_mb(self) -> float:
        return proc_mb(self.pid, "VmHWM")

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def reload(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its last save runs before it exits."""
        if self.process.returncode is None:
            self.process.terminate()
        try:
            code = await asyncio.wait_for(self.process.wait(), 120)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code


def overlaps(spans: Sequence[tuple[float, float]], start: float, end: float) -> bool:
    """Whether [start, end] overlaps any of the (began, ended) spans."""
    return any(began < end and start < ended for began, ended in spans)


class Saves:
    """When the exporter saved its state, seen from outside: state.json.tmp exists while a
    save writes it (persistence.StateFile)."""

    def __init__(self, storage: Path) -> None:
        self.temporary = storage / "state.json.tmp"
        self.spans: list[tuple[float, float]] = []
        self._began: float | None = None
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            exists = self.temporary.exists()
            now = time.monotonic()
            if exists and self._began is None:
                self._began = now
            elif not exists and self._began is not None:
                self.spans.append((self._began, now))
                self._began = None
            await asyncio.sleep(0.005)

    def overlaps(self, start: float, end: float) -> bool:
        spans = [*self.spans, *([(self._began, time.monotonic())] if self._began else [])]
        return overlaps(spans, start, end)

    async def next(self, within: float) -> tuple[float, float] | None:
        """The next save from now: (began, ended), or None if none came `within` seconds."""
        seen, deadline = len(self.spans), time.monotonic() + within
        while time.monotonic() < deadline:
            if len(self.spans) > seen and self.spans[-1][0] > 0:
                return self.spans[-1]
            await asyncio.sleep(0.01)
        return None

    def stop(self) -> None:
        self._task.cancel()


class Probe:
    """bench.probe against the exporter's /-/healthy, on core 1."""

    def __init__(self, process: asyncio.subprocess.Process, fake: FakeServer) -> None:
        self.process = process
        self.fake = fake
        self.left_out = 0  # probes answered while the fake (and so the prober) was held

    @classmethod
    async def start(cls, exporter: Exporter, fake: FakeServer) -> Probe:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.probe", "--url", f"{exporter.url}/-/healthy", cwd=ROOT,
            # It measures the exporter's delay, not its own wait for the core.
            stdout=asyncio.subprocess.PIPE, preexec_fn=realtime(1, priority=10),
        )  # fmt: skip
        await asyncio.sleep(0.3)
        return cls(process, fake)

    async def stop(self) -> list[tuple[float, float]]:
        """(send time, seconds to answer) of each probe, but for those that overlap a time
        the fake on the same core was held from running (TokenBucket.held): the prober,
        below it in priority, was held too, and timed its own wait, not the exporter."""
        self.process.terminate()
        stdout, _ = await self.process.communicate()
        result = json.loads(stdout)
        held = (await self.fake.stats(full=True))["held_at"]
        spans = list(zip(held[::2], held[1::2], strict=True))
        probes = []
        for sent, took in zip(result["sent"], result["took"], strict=True):
            if overlaps(spans, sent, sent + took):
                self.left_out += 1
            else:
                probes.append((sent, took))
        return probes


def worst_ms(probes: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """The longest a probe sent within [start, end] waited for its answer, in ms."""
    return max((took for sent, took in probes if start <= sent <= end), default=0.0) * 1000


async def scrape(url: str, count: int, gzip: bool = False) -> dict[str, Any]:
    """bench.scrape (curl) in its own process on core 1: latencies and the body's size."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scrape", "--url", url, "--count", str(count),
        *(["--gzip"] if gzip else []), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        preexec_fn=pin(1),
    )  # fmt: skip
    stdout, _ = await process.communicate()
    result: dict[str, Any] = json.loads(stdout)
    return result


async def save_body(url: str, path: Path) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.read()
    path.write_bytes(body)  # noqa: ASYNC240 (the benchmark's own loop, between phases)


def gauge(body: bytes, name: str) -> float | None:
    """The value of an unlabelled sample in an exposition."""
    prefix = name.encode() + b" "
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def answered(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int]:
    """The metrics polls the fake answered (refusals not counted) and the health reads it
    served between two readings of its /stats."""
    polls = (after["requests"] - after["refused"]) - (before["requests"] - before["refused"])
    return polls, after["health_reads"] - before["health_reads"]


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


class Started(Exception):
    """The exporter did not get through its first round; the reason is the message."""


async def first_round(
    out: dict[str, Any], fake: FakeServer, exporter: Exporter, n: int, rate: float, key: str
) -> None:
    """Wait until the fake has seen every account once (metrics, or health with `key`), at
    `rate` requests/s at the least."""
    began = time.monotonic()
    deadline = began + 60 + 4 * n / rate
    while True:
        stats = await fake.stats()
        if stats[key] >= n:
            break
        if exporter.process.returncode is not None or time.monotonic() > deadline:
            why = next((line for line in exporter.notable if "level=info" not in line), "")
            raise Started(f"{stats[key]:,} of {n:,} accounts after "
                          f"{time.monotonic() - began:.0f} s; {why[:200]}")  # fmt: skip
        await asyncio.sleep(0.2)
    out["first_round_s"] = time.monotonic() - began
    out["refused_first_round"] = stats["refused"]


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


async def cpu_in_turns(
    out: dict[str, Any], args: argparse.Namespace, fake: FakeServer, exporter: Exporter,
    saves: Saves,
) -> None:  # fmt: skip
    """The exporter's CPU per request (metrics polls and health reads) and the naive paced
    poller's, in turns on core 0: NAIVE_RUNS windows of the exporter polling without
    scrapes, args.seconds in all, each followed by a naive poller in a fresh process for as
    long while the exporter is stopped (SIGSTOP: its budget paces it again from when it
    resumes, with no burst). In turns, because consecutive windows of one unchanged process
    differ by up to a third on a shared VM. A window in which the state was saved is
    measured again: a save every 30 s is not a request's cost."""
    seconds = args.seconds / NAIVE_RUNS
    cpu = requests = 0.0
    runs: list[dict[str, Any]] = []
    for _ in range(4 * NAIVE_RUNS):
        if len(runs) == NAIVE_RUNS:
            break
        await asyncio.sleep(0.5)  # back to its pace
        before, cpu0, began = await fake.stats(), exporter.cpu(), time.monotonic()
        await asyncio.sleep(seconds)
        after, cpu1, ended = await fake.stats(), exporter.cpu(), time.monotonic()
        if saves.overlaps(began, ended):
            continue
        cpu, requests = cpu + cpu1 - cpu0, requests + sum(answered(before, after))
        exporter.pause()
        try:
            await asyncio.sleep(0.2)  # the polls in flight land
            runs.append(await naive_process(args, fake.base, seconds))
        finally:
            exporter.resume()
    out["cpu_per_poll_ms"] = cpu / max(requests, 1) * 1000
    for key in ("naive_paced_cpu_per_poll_ms", "naive_cpu_per_poll_ms"):
        out[key] = statistics.median(run[key] for run in runs) if runs else float("nan")
    out["naive_paced_runs_ms"] = [run["naive_paced_cpu_per_poll_ms"] for run in runs]


async def steady(
    out: dict[str, Any], args: argparse.Namespace, fake: FakeServer, seconds: float
) -> None:
    """Polling without scrapes: budget use and the fake's own load."""
    before, wall0 = await fake.stats(), time.monotonic()
    await asyncio.sleep(seconds)
    after, wall1 = await fake.stats(), time.monotonic()
    wall = wall1 - wall0
    polls, health = answered(before, after)
    out["polls_per_s"] = polls / wall
    out["health_per_s"] = health / wall
    out["budget_use"] = (polls + health) / wall / args.rate
    fake_cpu = after["cpu_seconds"] - before["cpu_seconds"]
    out["fake_cpu_share"] = fake_cpu / wall
    out["fake_realtime"] = after.get("realtime", False)
    out["fake_cpu_per_request_ms"] = fake_cpu / max(polls + health, 1) * 1000


async def scrapes(
    out: dict[str, Any], args: argparse.Namespace, exporter: Exporter, body: Path,
    fake: FakeServer,
) -> None:  # fmt: skip
    """Scrapes while polling, plain and gzip: latency and the stall /-/healthy saw."""
    probe = await Probe.start(exporter, fake)
    windows = {}
    for mode in ("plain", "gzip"):
        began = time.monotonic()
        result = await scrape(f"{exporter.url}/metrics", args.scrapes, gzip=mode == "gzip")
        windows[mode] = (began, time.monotonic())
        out[f"metrics_{mode}_p50_ms"] = percentile(result["latencies"], 0.5) * 1000
        out[f"metrics_{mode}_p99_ms"] = percentile(result["latencies"], 0.99) * 1000
        out[f"metrics_{mode}_bytes"] = result["bytes"]
    probes = await probe.stop()
    out["probes_left_out"] = out.get("probes_left_out", 0) + probe.left_out
    for mode, (began, ended) in windows.items():
        out[f"stall_scrape_{mode}_max_ms"] = worst_ms(probes, began, ended)
    await save_body(f"{exporter.url}/metrics", body)


async def quiet_and_save(
    out: dict[str, Any], exporter: Exporter, saves: Saves, seconds: float, fake: FakeServer
) -> None:
    """The stall /-/healthy sees while the exporter only polls, then while it saves."""
    probe = await Probe.start(exporter, fake)
    began = time.monotonic()
    await asyncio.sleep(seconds)
    quiet = (began, time.monotonic())
    save = await saves.next(within=60)
    probes = await probe.stop()
    out["probes_left_out"] = out.get("probes_left_out", 0) + probe.left_out
    out["stall_no_scrape_max_ms"] = worst_ms(probes, *quiet)
    if save is None:
        out["stall_save_max_ms"] = out["state_save_s"] = float("nan")
    else:
        out["stall_save_max_ms"] = worst_ms(probes, *save)
        out["state_save_s"] = save[1] - save[0]
    state = exporter.storage / "state.json"
    out["state_bytes"] = state.stat().st_size if state.exists() else 0


async def refreshes(
    out: dict[str, Any], config: Path, text: str, fake: FakeServer, exporter: Exporter,
    every: float,
) -> None:  # fmt: skip
    """Discovery's refreshes of the listing of every account: the config reloaded (SIGHUP)
    with refresh_interval `every`, which lists at once and then every `every` seconds.
    Resident memory after each and at its highest, and the stall /-/healthy saw meanwhile."""
    refresh = f"  enabled: true\n  refresh_interval: {every:g}s\n"
    config.write_text(text.replace("  enabled: true\n", refresh))  # noqa: ASYNC240
    listed = (await fake.stats())["listings"]
    probe = await Probe.start(exporter, fake)
    reloaded = time.monotonic()
    exporter.reload()
    # The reload itself re-applies every account's config; the refreshes begin with the
    # listing it asks for.
    while (stats := await fake.stats())["listings"] == listed:
        if time.monotonic() > reloaded + 60:
            break
        await asyncio.sleep(0.01)
    began = stats["last_listing"] or time.monotonic()
    after: list[float] = []
    peak = 0.0
    deadline = began + every * (REFRESHES + 2) + 30
    while len(after) < REFRESHES and time.monotonic() < deadline:
        # Each refresh's memory, read just before the next listing is asked for.
        next_listing = began + every * (len(after) + 1) - min(0.5, every / 4)
        while time.monotonic() < next_listing:
            peak = max(peak, exporter.rss_mb())
            await asyncio.sleep(0.05)
        if (await fake.stats())["listings"] - listed > len(after):
            after.append(exporter.rss_mb())
    probes = await probe.stop()
    out["probes_left_out"] = out.get("probes_left_out", 0) + probe.left_out
    out["refreshes"] = len(after)
    out["rss_mb_refreshes"] = after
    out["rss_mb_refresh_peak"] = peak
    out["stall_reload_max_ms"] = worst_ms(probes, reloaded, began)
    out["stall_refresh_max_ms"] = worst_ms(probes, began, time.monotonic())


async def baselines(out: dict[str, Any], args: argparse.Namespace, body: Path) -> None:
    """The body served static by a bare aiohttp app, and generate_latest() on its samples,
    each in a fresh process on core 0 (the exporter has stopped)."""
    port = free_port()
    static = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.static", "--body", str(body), "--port", str(port),
        cwd=ROOT, preexec_fn=pin(0),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(300):
            try:
                await save_body(url, body.with_suffix(".static"))
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        for mode in ("plain", "gzip"):
            result = await scrape(url, args.scrapes, gzip=mode == "gzip")
            out[f"static_{mode}_p50_ms"] = percentile(result["latencies"], 0.5) * 1000
    finally:
        static.terminate()
        await static.wait()
    reference = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.reference", "--body", str(body), "--repeat",
        "1" if args.accounts >= 50_000 else "3", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        preexec_fn=pin(0),
    )  # fmt: skip
    stdout, _ = await reference.communicate()
    result = json.loads(stdout)
    out["generate_latest_ms"] = result["generate_latest_s"] * 1000
    out["samples"] = result["samples"]
    out["identical_to_prometheus_client"] = result["identical"]
    out["first_difference"] = result["first_difference"]


async def run_start(args: argparse.Namespace, start: str, directory: Path) -> dict[str, Any]:
    """One start of one size: first round, polling, scrapes, a save, CPU in turns, discovery's
    refreshes; then the baselines on the body it served."""
    n, rate = args.accounts, args.rate
    interval = max(1.0, n / (2 * rate))  # demand is twice the budget: intervals stretch
    out: dict[str, Any] = {"accounts": n, "rate": rate, "start": start, "interval": interval}
    fake = await FakeServer.start(free_port(), rate, FAKE_BURST, n if start == "discovery" else 0)
    config = directory / f"{start}.yaml"
    text = config_text(start, fake.base, n, rate, interval)
    config.write_text(text)
    storage = directory / f"{start}-data"
    body = directory / f"{start}-metrics.txt"
    phases: list[tuple[str, float]] = [("first round", time.monotonic())]
    exporter = await Exporter.start(config, storage)
    saves = Saves(storage)

    def phase(name: str) -> None:
        phases.append((name, time.monotonic()))

    try:
        await first_round(out, fake, exporter, n, rate, "accounts")
        out["rss_mb_after_first_round"] = exporter.rss_mb()
        out["arrivals"] = await fake.arrivals()
        phase("steady")
        await steady(out, args, fake, args.seconds)
        phase("scrapes")
        await scrapes(out, args, exporter, body, fake)
        phase("save")
        await quiet_and_save(out, exporter, saves, min(args.seconds, 5), fake)
        out["rss_mb_after_scrapes"] = exporter.rss_mb()
        phase("cpu in turns")
        await cpu_in_turns(out, args, fake, exporter, saves)
        if start == "discovery":
            phase("refreshes")
            await refreshes(out, config, text, fake, exporter, args.refresh_interval)
        out["rss_mb_peak"] = exporter.peak_mb()
        final = await fake.stats(full=True)
    except Started as exc:
        out["failed"] = str(exc)
        return out
    finally:
        out["exit_code"] = await exporter.stop()
        out["log_lines"] = exporter.log_lines
        out["notable_logs"] = exporter.notable[:20]
        saves.stop()
        await fake.stop()
    out["refused_429"] = final["refused"]
    out["fake_held"], out["fake_held_max_ms"] = final["held"], final["held_max"] * 1000
    out["polls_per_account_min"] = final["min_polls"]
    # Which phase each refusal fell in.
    out["refused_in"] = {}
    for when in final["refused_at"]:
        name = [name for name, began in phases if began <= when][-1:] or ["before"]
        out["refused_in"][name[0]] = out["refused_in"].get(name[0], 0) + 1
    out["gap_median_s"] = final["gap_median"] or 0.0
    out["gaps"] = final["gaps"]
    served = body.read_bytes()
    stretch = gauge(served, "unipost_exporter_interval_stretch_factor") or 1.0
    out["gap_plan_s"] = interval * stretch
    arrivals = out.pop("arrivals")
    out["refused_replay_arrivals"] = replay(arrivals, rate, FAKE_BURST)
    out["arrivals_max_per_50ms"] = max_in_window(arrivals, 0.05)
    await baselines(out, args, body)
    return out


async def run_hour(args: argparse.Namespace, start: str, directory: Path) -> dict[str, Any]:
    """An hour in, sooner: every account's health read, scrapes and a save on top."""
    n = args.accounts
    out: dict[str, Any] = {}
    fake = await FakeServer.start(
        free_port(), HOUR_RATE, FAKE_BURST, n if start == "discovery" else 0
    )
    config = directory / f"{start}-hour.yaml"
    health = f"{HOUR_HEALTH_INTERVAL:g}s"
    text = config_text(start, fake.base, n, HOUR_RATE, HOUR_INTERVAL, health_interval=health)
    config.write_text(text)
    storage = directory / f"{start}-hour-data"
    exporter = await Exporter.start(config, storage)
    saves = Saves(storage)
    try:
        # Both reads of every account, at a quarter of what one core sends at the least.
        await first_round(out, fake, exporter, n, 1000, "health_accounts")
        out["metrics_polls"] = (await fake.stats())["requests"]
        await asyncio.sleep(2)  # the last answers' lines are rendered
        out["rss_mb_hour_health"] = exporter.rss_mb()
        for mode in ("plain", "gzip"):
            await scrape(f"{exporter.url}/metrics", args.scrapes, gzip=mode == "gzip")
        await saves.next(within=60)
        out["rss_mb_hour"] = exporter.rss_mb()
    except Started as exc:
        out["hour_failed"] = str(exc)
    finally:
        await exporter.stop()
        saves.stop()
        await fake.stop()
    return {f"hour_{key}" if not key.startswith(("rss", "hour")) else key: value
            for key, value in out.items()}  # fmt: skip


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    pin_self = pin(1)
    if pin_self:
        pin_self()
    results = []
    with tempfile.TemporaryDirectory(prefix="unipost-bench-") as name:
        directory = Path(name)
        for start in args.starts:
            if args.hour_only:
                results.append({"accounts": args.accounts, "start": start,
                                **await run_hour(args, start, directory)})  # fmt: skip
                continue
            result = await run_start(args, start, directory)
            if "failed" not in result and not args.no_hour:
                result.update(await run_hour(args, start, directory))
            results.append(result)
    return results


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _spread(values: Sequence[float]) -> str:
    """The range of one figure measured in several processes, and how far apart its ends are."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.3f}-{high:.3f} ms ({high / low:.2f}x)"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def _refreshes(r: dict[str, Any]) -> str:
    if r["start"] != "discovery":
        return ""
    after = r.get("rss_mb_refreshes", [])
    return f"{' / '.join(f'{v:.0f}' for v in after)} MB ({r.get('refreshes', 0)} refreshes)"


# The sweep's rows: (figure, how to show it from one start's figures, goal).
SWEEP_ROWS: list[tuple[str, Callable[[dict[str, Any]], str], str]] = [
    ("resident memory after first round", lambda r: _mb(r["rss_mb_after_first_round"]),
     "<= 200 MB at 100k"),
    ("resident memory after scrapes", lambda r: _mb(r["rss_mb_after_scrapes"]), "<= 200 MB"),
    ("  an hour in (health read, scrapes, a save)", lambda r: _mb(r.get("rss_mb_hour")),
     "<= 200 MB"),
    # The hour-in figure rises with this time from run to run (docs/performance.md), so
    # the two are read together.
    ("    its round of both reads: time, polls", lambda r: f"{r['hour_first_round_s']:.0f} s, "
     f"{r['hour_metrics_polls'] / r['accounts']:.2f} per account" if "hour_metrics_polls" in r
     else "-", ""),
    ("  after each discovery refresh", _refreshes, "no growth"),
    ("  highest during the refreshes",
     lambda r: _mb(r.get("rss_mb_refresh_peak")) if r["start"] == "discovery" else "",
     "<= 200 MB"),
    ("  highest since start (VmHWM)", lambda r: _mb(r["rss_mb_peak"]), ""),
    ("/metrics p50, uncompressed", lambda r: _ms(r["metrics_plain_p50_ms"]), ""),
    ("static floor (same body, bare aiohttp)", lambda r: _ms(r["static_plain_p50_ms"]), ""),
    ("  /metrics vs static floor",
     lambda r: f"{r['metrics_plain_p50_ms'] / r['static_plain_p50_ms']:.1f}x", "<= 3x"),
    ("generate_latest(), fresh process", lambda r: _ms(r["generate_latest_ms"]), ""),
    ("  /metrics vs generate_latest()",
     lambda r: f"{r['generate_latest_ms'] / r['metrics_plain_p50_ms']:.1f}x faster", ">= 10x"),
    ("/metrics p50, gzip (static gzip)", lambda r: f"{_ms(r['metrics_gzip_p50_ms'])} "
     f"({_ms(r['static_gzip_p50_ms'])})", ""),
    ("body, plain -> gzip; samples", lambda r: f"{r['metrics_plain_bytes'] / 1e6:.1f} -> "
     f"{r['metrics_gzip_bytes'] / 1e6:.1f} MB; {r['samples']:,}", ""),
    ("output vs prometheus_client", lambda r: "identical" if r["identical_to_prometheus_client"]
     else "DIFFERENT", "identical"),
    ("loop stall during scrapes, max", lambda r: _ms(max(r["stall_scrape_plain_max_ms"],
                                                         r["stall_scrape_gzip_max_ms"])),
     "<= 20 ms"),
    ("loop stall while saving state, max", lambda r: _ms(r["stall_save_max_ms"]), "<= 20 ms"),
    ("loop stall during discovery refreshes",
     lambda r: _ms(r["stall_refresh_max_ms"]) if "stall_refresh_max_ms" in r else "",
     "<= 20 ms"),
    ("  while reloading (SIGHUP) before them",
     lambda r: _ms(r["stall_reload_max_ms"]) if "stall_reload_max_ms" in r else "", ""),
    ("loop stall polling only, max", lambda r: _ms(r["stall_no_scrape_max_ms"]), ""),
    ("  probes left out: the prober's core held", lambda r: str(r.get("probes_left_out", 0)),
     ""),
    ("state file, saved in", lambda r: f"{r['state_bytes'] / 1e6:.1f} MB, "
     f"{r['state_save_s']:.1f} s", ""),
    ("CPU per request", lambda r: f"{r['cpu_per_poll_ms']:.3f} ms", ""),
    ("naive paced poller, in turns", lambda r: f"{r['naive_paced_cpu_per_poll_ms']:.3f} ms", ""),
    (f"  its {NAIVE_RUNS} processes, min-max", lambda r: _spread(r["naive_paced_runs_ms"]), ""),
    ("  exporter vs naive paced",
     lambda r: f"{r['cpu_per_poll_ms'] / r['naive_paced_cpu_per_poll_ms']:.2f}x", "<= 1.3x"),
    ("first round", lambda r: f"{r['first_round_s']:.1f} s (plan {r['accounts'] / r['rate']:.0f})",
     ""),
    ("refused, first round / whole run", lambda r: f"{r['refused_first_round']} / "
     f"{r['refused_429']}" + "".join(f", {k}: {v}" for k, v in r["refused_in"].items()), "0"),
    ("  the fake held from reading, times / max", lambda r: f"{r['fake_held']} / "
     f"{r['fake_held_max_ms']:.1f} ms", ""),
    ("  replaying its arrivals, not forgiving that", lambda r: str(r["refused_replay_arrivals"]),
     ""),
    ("  most arrivals in any 50 ms", lambda r: str(r["arrivals_max_per_50ms"]),
     "budget 50 + burst 10"),
    ("budget use (metrics + health)", lambda r: f"{r['budget_use']:.1%}", ">= 95%"),
    ("each account's poll gap, median", lambda r: f"{r['gap_median_s']:.2f} s, "
     f"{r['gap_median_s'] / r['gap_plan_s']:.3f}x plan", "within 2%"),
    ("fake UniPost: CPU of its core", lambda r: f"{r['fake_cpu_share']:.0%}"
     + ("" if r.get("fake_realtime") else ", not real-time"), "< 100%"),
]  # fmt: skip


def sweep_table(results: Sequence[dict[str, Any]], rate: float) -> str:
    """One column per size and start: how each figure grows with the work."""
    header = ("figure", *(f"{r['accounts']:,} {r['start']}" for r in results), "goal")
    rows = []
    for name, show, goal in SWEEP_ROWS:
        cells = []
        for r in results:
            try:
                cells.append("failed" if "failed" in r else show(r))
            except (KeyError, TypeError, ZeroDivisionError, ValueError):
                cells.append("-")
        rows.append((name, *cells, goal))
    failures = [f"{r['accounts']:,} {r['start']}: {r['failed']}" for r in results if "failed" in r]
    table = format_rows(
        f"unipost-exporter benchmark, budget {rate} requests/s (fake UniPost limit = budget)",
        [header, *rows],
    )
    return table + "".join(f"\nfailed to start: {line}" for line in failures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--accounts",
        default="10000",
        help="accounts, or a comma-separated sweep (1000,10000,100000)",
    )
    parser.add_argument("--starts", default=",".join(STARTS), help="yaml, discovery or both")
    parser.add_argument("--rate", type=int, default=1000, help="budget, requests per second")
    parser.add_argument("--seconds", type=float, default=15, help="steady-state window")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes per mode")
    parser.add_argument(
        "--refresh-interval", type=float, default=10.0, help="discovery's, while refreshing"
    )
    parser.add_argument("--no-hour", action="store_true", help="skip the hour-in run")
    parser.add_argument("--hour-only", action="store_true", help="only the hour-in run")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    args.starts = [s for s in args.starts.split(",") if s]
    if unknown := set(args.starts) - set(STARTS):
        parser.error(f"unknown start {sorted(unknown)}")
    results: list[dict[str, Any]] = []
    for size in (int(size) for size in str(args.accounts).split(",")):
        args.accounts = size
        results.extend(asyncio.run(run(args)))
    if args.json:  # first: the table cannot lose them
        args.json.write_text(json.dumps(results, indent=2))
    return report(sweep_table(results, args.rate), results, None)


if __name__ == "__main__":
    raise SystemExit(main())
