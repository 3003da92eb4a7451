"""A fast fake UniPost for benchmarks, run as its own process so its CPU is not counted.

It enforces a workspace limit (a token bucket at --rate requests/s, capacity --burst) and
records what it saw: arrival times, 429s, and polls per account, served on /stats.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from aiohttp import web

BODY = (
    '{{"data": {{"social_account_id": "{id}", "platform": "instagram", '
    '"follower_count": {followers}, "following_count": 120, "post_count": 45, '
    '"platform_specific": {{"media_count": 45}}, "fetched_at": "2026-04-28T18:30:00Z"}}, '
    '"request_id": "req_1"}}'
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--burst", type=float, default=3.0)
    args = parser.parse_args()
    polls: Counter[str] = Counter()
    arrivals: list[float] = []
    state = {"tokens": args.burst, "updated": time.monotonic(), "refused": 0}

    async def metrics(request: web.Request) -> web.Response:
        now = time.monotonic()
        state["tokens"] = min(args.burst, state["tokens"] + (now - state["updated"]) * args.rate)
        state["updated"] = now
        arrivals.append(now)
        if state["tokens"] < 1:
            state["refused"] += 1
            return web.Response(
                status=429,
                text='{"error": {"code": "RATE_LIMITED", "message": "slow down"}}',
                headers={"Retry-After": "1", "Content-Type": "application/json"},
            )
        state["tokens"] -= 1
        account_id = request.match_info["account_id"]
        polls[account_id] += 1
        body = BODY.format(id=account_id, followers=1000 + polls[account_id])
        return web.Response(text=body, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        counts = list(polls.values())
        return web.json_response(
            {
                "requests": len(arrivals),
                "refused": state["refused"],
                "accounts": len(polls),
                "min_polls": min(counts, default=0),
                "max_polls": max(counts, default=0),
                "arrivals": arrivals if request.query.get("arrivals") else [],
            },
            dumps=json.dumps,
        )

    async def unlimited(request: web.Request) -> web.Response:
        # For the naive baseline poller: the same answer, outside the limiter and the stats.
        account_id = request.match_info["account_id"]
        return web.Response(
            text=BODY.format(id=account_id, followers=1000), content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/v1/accounts/{account_id}/metrics", metrics)
    app.router.add_get("/unlimited/v1/accounts/{account_id}/metrics", unlimited)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
