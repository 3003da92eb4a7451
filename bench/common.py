"""What the benchmarks share: the fake UniPost in its own process, core pinning, ports,
percentiles and tables."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import platform
import socket
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).parent.parent
# The key the benchmark's exporter sends and its fake UniPost expects.
API_KEY = "up_test_bench"
# The fake UniPost's limiter: the budget's rate, and room for 10 ms of arrival jitter.
FAKE_BURST = 10
# The fake's real-time priority, above the prober's: its limiter counts a request when its
# loop reads it, so any wait of the fake for its core reached the limiter as a burst. A
# helper starting on that core (a Python start, ~70 ms at the prober's real-time priority)
# held it, and the limiter refused ~55 requests the exporter had sent at its pace.
FAKE_PRIORITY = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def max_in_window(times: Sequence[float], window: float) -> int:
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, t + window - 1e-9) - i for i, t in enumerate(ordered)),
        default=0,
    )


def pin(cpu: int) -> Callable[[], None] | None:
    """On a machine with two or more cores, keep the exporter on core 0 and the helpers
    (fake UniPost, scraper, prober) on core 1, so the figures are the exporter's, not
    contention's."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def realtime(cpu: int, priority: int) -> Callable[[], None]:
    """Pinned to `cpu` at real-time priority (SCHED_FIFO), where the machine allows it: a
    helper that shares its core with curl answers on time even while curl reads a large
    body. The helpers sleep most of the time, so curl keeps most of the core."""

    def apply() -> None:
        pinned = pin(cpu)
        if pinned:
            pinned()
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))

    return apply


async def forget_spawn(monitor: StallMonitor) -> None:
    """Drop the stall the benchmark itself just caused: forking a helper process (with a
    preexec_fn, so a real fork of this whole process) blocks the loop for 10-30 ms."""
    await asyncio.sleep(0.005)  # let the monitor record that late tick first
    monitor.take()


class StallMonitor:
    """How late this process's event loop runs a 1 ms timer (bench.load, in-process)."""

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


class FakeServer:
    """The tests' fake UniPost in its own process (on core 1), and a client for its /stats."""

    def __init__(self, process: asyncio.subprocess.Process, base: str) -> None:
        self.process = process
        self.base = base
        self.session = aiohttp.ClientSession()

    @classmethod
    async def start(cls, port: int, rate: float, burst: int, listing: int = 0) -> FakeServer:
        """`listing`: GET /v1/accounts lists that many accounts (sa_instagram_0...)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fake_unipost", "--port", str(port), "--rate", str(rate),
            "--burst", str(burst), "--api-key", API_KEY, "--listing", str(listing), cwd=ROOT,
            preexec_fn=realtime(1, priority=FAKE_PRIORITY),
        )  # fmt: skip
        fake = cls(process, f"http://127.0.0.1:{port}")
        for _ in range(600):  # a 100,000-account listing takes a few seconds to encode
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

    async def arrivals(self) -> list[float]:
        """When the fake saw each metrics request (the system's monotonic clock)."""
        async with self.session.get(f"{self.base}/arrivals") as response:
            return list(array("d", await response.read()))

    async def stop(self) -> None:
        await self.session.close()
        self.process.terminate()
        await self.process.wait()


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


def report(text: str, results: Any, json_path: Path | None) -> int:
    """Print the table; with --json, also write the figures."""
    print(text)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    return 0
