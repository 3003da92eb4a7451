"""A fake UniPost written by the tests: a real aiohttp server on loopback, scripted per account."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

API_KEY = "up_test_k3y_SECRET_do_not_leak"
REAL_FIXTURES = Path(__file__).parent / "fixtures" / "real"


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    # Seconds the server takes before answering (UniPost waits on the platform).
    delay: float = 0.0


def snapshot(
    account_id: str,
    platform: str = "twitter",
    followers: int = 100,
    following: int = 10,
    posts: int = 5,
    specific: dict[str, Any] | None = None,
    fetched_at: str = "2026-04-28T18:30:00Z",
) -> Reply:
    """A good 200 snapshot."""
    data: dict[str, Any] = {
        "social_account_id": account_id,
        "platform": platform,
        "follower_count": followers,
        "following_count": following,
        "post_count": posts,
        "fetched_at": fetched_at,
    }
    if specific is not None:
        data["platform_specific"] = specific
    return Reply(body={"data": data, "request_id": "req_1"})


def zero_filled(account_id: str, platform: str = "twitter", upstream_status: int = 429) -> Reply:
    """The 200 answer UniPost gives when the platform call failed."""
    return Reply(
        body={
            "data": {
                "social_account_id": account_id,
                "platform": platform,
                "follower_count": 0,
                "following_count": 0,
                "post_count": 0,
                "platform_specific": {
                    "upstream_status": upstream_status,
                    "upstream_error": '{"title":"Too Many Requests"}',
                },
                "fetched_at": "2026-04-28T18:30:00Z",
            }
        }
    )


def error(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None
) -> Reply:
    """An error envelope."""
    return Reply(
        status=status,
        body={
            "error": {"code": code, "normalized_code": code.lower(), "message": message},
            "request_id": "req_1",
        },
        headers=headers or {},
    )


def recorded(name: str, account_id: str, **changes: Any) -> Reply:
    """A real server's answer from tests/fixtures/real/, for `account_id`."""
    answer = json.loads((REAL_FIXTURES / name).read_text(encoding="utf-8"))
    body = answer["body"]
    if isinstance(body, str):  # not JSON: a plain-text answer from the hosting edge
        return Reply(
            answer["status"], raw=body.encode(), headers={"Content-Type": answer["content_type"]}
        )
    if "data" in body:
        body["data"]["social_account_id"] = account_id
    return Reply(answer["status"], body=body, **changes)


Handler = Callable[[str], Reply]


class FakeUniPost:
    """Answers /v1/accounts/{id}/metrics from a per-account handler and records every request."""

    def __init__(self, handler: Handler, api_key: str = API_KEY) -> None:
        self.handler = handler
        self.api_key = api_key
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._arrived: list[float] = []  # loop time of each request, beside self.requests
        app = web.Application()
        app.router.add_get("/v1/accounts/{account_id}/metrics", self._metrics)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> FakeUniPost:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def requested(self, account_id: str) -> int:
        return sum(1 for path, _ in self.requests if f"/accounts/{account_id}/" in path)

    def request_times(self, account_id: str) -> list[float]:
        """When each request for the account arrived (event-loop seconds)."""
        return [
            when
            for (path, _), when in zip(self.requests, self._arrived, strict=True)
            if f"/accounts/{account_id}/" in path
        ]

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        self._arrived.append(asyncio.get_running_loop().time())
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            # Echoes what it was sent, as careless servers do: the exporter must scrub it.
            presented = request.headers.get("Authorization", "")
            reply = error(401, "UNAUTHORIZED", f"invalid API key in {presented!r}")
        else:
            reply = self.handler(request.match_info["account_id"])
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        return web.Response(
            status=reply.status,
            body=body,
            headers={"Content-Type": "application/json", **reply.headers},
        )
