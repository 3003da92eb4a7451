"""Load: many concurrent scrapers against the exporter while it polls, compared with a
baseline window without scrapers in the same run.

    python -m bench.load                    # 50 scrapers, 30 s, 1,000 accounts (make bench-load)
    python -m bench.load --accounts 100 --scrapers 5 --seconds 2     # a smoke run

The fake UniPost and the scrapers run in their own processes (on the second core when there
is one); the exporter runs in this one. Goals: no failed scrape, and polling within 5% of
its plan while scraped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    API_KEY,
    ROOT,
    FakeServer,
    StallMonitor,
    forget_spawn,
    format_table,
    free_port,
    percentile,
    pin,
    report,
)
from exporter.outcomes import JITTER
from exporter.schema import AccountConfig, Config, PollingConfig, UniPostConfig, WorkspaceConfig
from exporter.server import create_app


def bench_config(base: str, accounts: int, rate: float, interval: float) -> Config:
    """`accounts` instagram accounts at `interval`, with a budget of `rate` requests/s."""
    workspace = WorkspaceConfig(
        unipost=UniPostConfig(
            api_key=API_KEY, base_url=base, timeout=10.0, requests_per_minute=rate * 60
        ),
        accounts=tuple(AccountConfig(id=f"sa_instagram_{i}") for i in range(accounts)),
    )
    return Config(
        polling=PollingConfig(interval=interval, max_backoff=60.0), workspaces=(workspace,)
    )


async def scrapers(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` scrapers in a loop for `seconds`, like Prometheus servers (gzip)."""
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url, headers={"Accept-Encoding": "gzip"}) as r:
                        body = await r.read()
                        if r.status != 200 or b"unipost_exporter_build_info" not in body:
                            failures.append(f"status {r.status}")
                            continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures.append(type(exc).__name__)
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return {"latencies": latencies, "failures": failures}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pin_self = pin(0)
    if pin_self:
        pin_self()
    n, interval = args.accounts, args.interval
    # The plan: every account once per interval, lengthened by the jitter (uniform, up to
    # JITTER), so on average interval * (1 + JITTER / 2).
    period = interval * (1 + JITTER / 2)
    plan = n / period
    # Windows of whole periods: every account falls in one the same number of times whatever
    # its phase (the first round leaves phases bunched, and jitter only slowly evens them).
    window = max(1, round(args.seconds / period)) * period
    rate = plan * 1.5  # the budget has room: the cadence, not the budget, sets the pace
    server_port, exporter_port = free_port(), free_port()
    fake = await FakeServer.start(server_port, rate * 2, burst=50)
    stats = fake.stats
    config = bench_config(fake.base, n, rate, interval)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", exporter_port).start()
    out: dict[str, Any] = {
        "accounts": n,
        "interval": interval,
        "plan_polls_per_s": plan,
        "scrapers": args.scrapers,
        "seconds": window,
    }
    monitor = StallMonitor()
    try:
        # Settle: the first round, then two intervals so the schedule is in its rhythm.
        while (await stats())["accounts"] < n:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(2 * interval)

        async def polls_per_s(window: float) -> float:
            before, t0 = await stats(), time.perf_counter()
            await asyncio.sleep(window)
            after, t1 = await stats(), time.perf_counter()
            return (after["requests"] - before["requests"]) / (t1 - t0)

        monitor.start()
        out["baseline_polls_per_s"] = await polls_per_s(window)
        out["baseline_stall_max_ms"] = max(monitor.take() or [0.0]) * 1000
        scraper = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load", "--scrape-only",
            f"http://127.0.0.1:{exporter_port}/metrics",
            "--scrapers", str(args.scrapers), "--seconds", str(window),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, preexec_fn=pin(1),
        )  # fmt: skip
        loaded = asyncio.create_task(polls_per_s(window))
        await forget_spawn(monitor)
        stdout, _ = await scraper.communicate()
        out["loaded_polls_per_s"] = await loaded
        stalls = monitor.take() or [0.0]
        out["loaded_stall_max_ms"] = max(stalls) * 1000
        out["loaded_stall_p99_ms"] = percentile(stalls, 0.99) * 1000
        result = json.loads(stdout)
        latencies = result["latencies"] or [0.0]
        out["scrapes"] = len(result["latencies"])
        out["failed_scrapes"] = len(result["failures"])
        out["failure_kinds"] = sorted(set(result["failures"]))
        out["scrape_p50_ms"] = percentile(latencies, 0.5) * 1000
        out["scrape_p99_ms"] = percentile(latencies, 0.99) * 1000
        out["refused_429"] = (await stats())["refused"]
    finally:
        await monitor.stop()
        await runner.cleanup()
        await fake.stop()
    return out


def table(r: dict[str, Any]) -> str:
    vs_plan = r["loaded_polls_per_s"] / r["plan_polls_per_s"]
    vs_base = r["loaded_polls_per_s"] / r["baseline_polls_per_s"]
    rows = [
        ("failed scrapes", f"{r['failed_scrapes']} of {r['scrapes'] + r['failed_scrapes']}"
         + (f" ({', '.join(r['failure_kinds'])})" if r["failure_kinds"] else ""), "", "", "0"),
        ("scrapes per second", f"{r['scrapes'] / r['seconds']:.1f}", "", "", ""),
        ("scrape latency p50 / p99", f"{r['scrape_p50_ms']:.0f} / {r['scrape_p99_ms']:.0f} ms",
         "", "", ""),
        ("polls/s while scraped", f"{r['loaded_polls_per_s']:.1f}",
         f"no scrapers {r['baseline_polls_per_s']:.1f}", f"{vs_base:.3f}", ""),
        ("polls/s vs plan", f"{r['loaded_polls_per_s']:.1f}", f"plan {r['plan_polls_per_s']:.1f}",
         f"{vs_plan:.3f}", "within 5% (0.95-1.05)"),
        ("loop stall max", f"{r['loaded_stall_max_ms']:.1f} ms",
         f"no scrapers {r['baseline_stall_max_ms']:.1f} ms", "", ""),
        ("429 from UniPost", str(r["refused_429"]), "", "", "0"),
    ]  # fmt: skip
    return format_table(
        f"unipost-exporter load: {r['scrapers']} concurrent scrapers for {r['seconds']:.1f} s, "
        f"{r['accounts']} accounts every {r['interval']:g} s",
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds per account")
    parser.add_argument("--scrapers", type=int, default=50)
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="window, rounded to whole polling periods"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--scrape-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrape_only:
        print(json.dumps(asyncio.run(scrapers(args.scrape_only, args.scrapers, args.seconds))))
        return 0
    result = asyncio.run(run(args))
    return report(table(result), result, args.json)


if __name__ == "__main__":
    sys.exit(main())
