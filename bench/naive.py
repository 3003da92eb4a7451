"""The baselines for CPU per poll: naive aiohttp pollers, in a fresh process of their own.

    python -m bench.naive --base URL --rate R --seconds S --accounts N

Prints JSON: the CPU per request of a paced poller (a task per request at `rate`, as the
exporter sends them) and of a sequential one (one request at a time). Each parses the JSON
and keeps the follower count, as the least an exporter must do. In its own process so its
figures do not depend on the benchmarked exporter's heap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp


async def paced(base: str, rate: float, seconds: float, accounts: int) -> float:
    kept: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:

        async def one(account_id: str) -> None:
            async with session.get(f"{base}/unlimited/v1/accounts/{account_id}/metrics") as r:
                kept[account_id] = json.loads(await r.read())["data"]["follower_count"]

        count = int(rate * seconds)
        tasks = []
        cpu, next_at = time.process_time(), time.perf_counter()
        for i in range(count):
            next_at += 1.0 / rate
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(f"sa_instagram_{i % accounts}")))
        await asyncio.gather(*tasks)
        return (time.process_time() - cpu) / count


async def sequential(base: str, count: int) -> float:
    kept: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        cpu = time.process_time()
        for i in range(count):
            account_id = f"sa_instagram_{i}"
            async with session.get(f"{base}/unlimited/v1/accounts/{account_id}/metrics") as r:
                kept[account_id] = json.loads(await r.read())["data"]["follower_count"]
        return (time.process_time() - cpu) / count


async def run(args: argparse.Namespace) -> dict[str, float]:
    return {
        "naive_paced_cpu_per_poll_ms": await paced(
            args.base, args.rate, args.seconds, args.accounts
        )
        * 1000,
        "naive_cpu_per_poll_ms": await sequential(args.base, 2000) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.naive")
    parser.add_argument("--base", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
