"""Resident memory once every account's health was read, as in a process an hour in.

    python -m bench.health_memory --accounts 100000

`make bench` reads memory a few minutes in, when health reads (one per account per hour
by default) have reached a few percent of the accounts. Each account's last health answer
and its lines then add to what it holds. This runs the same exporter and fake UniPost,
with the health interval shortened so that every account is read within minutes: metrics
every 100 s and health every 60 s, within a budget that has room for both. It prints the
resident memory after the first round, once every account has a health answer, and after
`make bench`'s scrapes and a save of the state on top.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json

from bench.run import (
    FAKE_BURST,
    FakeServer,
    FirstRound,
    GcWatch,
    StallMonitor,
    bench_config,
    first_round,
    free_port,
    rss_mb,
    save_state,
    scrapes,
)
from exporter.server import RUNTIME

# Metrics every INTERVAL s and health every HEALTH_INTERVAL s, at most: at 100,000 accounts
# that is 1,000 + 1,667 requests a second, within RATE.
INTERVAL = 100.0
HEALTH_INTERVAL = 60.0
RATE = 4000


async def run(accounts: int, scrape_count: int) -> dict[str, float]:
    fake = await FakeServer.start(free_port(), RATE, burst=FAKE_BURST)
    port = free_port()
    config = bench_config(fake.base, accounts, RATE, INTERVAL)
    polling = dataclasses.replace(config.polling, health_interval=HEALTH_INTERVAL)
    config = dataclasses.replace(config, polling=polling)
    out: dict[str, float] = {"accounts": accounts}
    app, runner = await first_round(out, config, accounts, fake, port, FirstRound())
    try:
        stores = app[RUNTIME].stores
        # Looked at every 2 s (a scan of the store; the exporter signals nothing for it).
        while any(a.health_kept is None for s in stores() for a in s.accounts.values()):  # noqa: ASYNC110
            await asyncio.sleep(2)
        await asyncio.sleep(2)  # the last answers' lines are rendered
        out["rss_mb_with_health"] = rss_mb()
        if scrape_count:
            figures: dict[str, float] = {}
            monitor, gcw = StallMonitor(), GcWatch()
            monitor.start()
            args = argparse.Namespace(scrapes=scrape_count)
            await scrapes(figures, args, port, monitor, gcw)
            await save_state(figures, app, fake.base, monitor)
            await monitor.stop()
            gcw.stop()
            out["rss_mb_with_health_after_scrapes"] = rss_mb()
    finally:
        await runner.cleanup()
        await fake.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.health_memory")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes per mode, then a save")
    args = parser.parse_args()
    out = asyncio.run(run(args.accounts, args.scrapes))
    n = out["accounts"]
    first, health = out["rss_mb_after_first_round"], out["rss_mb_with_health"]
    print(json.dumps({key: round(value, 1) for key, value in out.items()}))
    print(
        f"{n:,} accounts: {first:.0f} MB after the first round, {health:.0f} MB once every "
        f"account's health was read ({(health - first) * 1024 * 1024 / n:.0f} bytes an "
        f"account more; {health * 1024 / n:.2f} KB an account in all)"
    )
    if "rss_mb_with_health_after_scrapes" in out:
        after = out["rss_mb_with_health_after_scrapes"]
        print(
            f"  and {after:.0f} MB after {args.scrapes} scrapes per format and a save "
            f"({after * 1024 / n:.2f} KB an account)"
        )


if __name__ == "__main__":
    main()
