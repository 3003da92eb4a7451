"""A fault-injecting fake UniPost: a real aiohttp server on loopback whose answer for each
account can be switched at run time to any misbehaviour a real server or network shows,
and which can go down and come back on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.helpers import free_port

API_KEY = "up_test_F4ULT_key_never_leaks"
FIFTY_MB = 50 * 1024 * 1024


def snapshot_body(account_id: str, followers: Any = 1000, **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "social_account_id": account_id,
        "platform": "instagram",
        "follower_count": followers,
        "following_count": 10,
        "post_count": 5,
        "platform_specific": {"media_count": 5},
        "fetched_at": "2026-11-27T10:00:00Z",
    }
    data.update(changes)
    return json.dumps({"data": data, "request_id": "req_f"}).encode()


def _json(body: bytes, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=body, status=status, headers={"Content-Type": "application/json", **headers}
    )


Fault = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
FAKE: web.AppKey[FaultyUniPost] = web.AppKey("fake")


async def good(request: web.Request, account_id: str) -> web.StreamResponse:
    return _json(snapshot_body(account_id, followers=FaultyUniPost.followers(account_id)))


async def hang(request: web.Request, account_id: str) -> web.StreamResponse:
    await asyncio.sleep(3600)  # accepts, never answers
    raise AssertionError("unreachable")


async def reset_mid_body(request: web.Request, account_id: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 4096
    await response.prepare(request)
    await response.write(snapshot_body(account_id)[:40])
    assert request.transport is not None
    request.transport.abort()  # the connection is reset with most of the body unsent
    return response


def huge(declared: bool) -> Fault:
    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declared:
            response.content_length = FIFTY_MB
        await response.prepare(request)
        chunk = b" " * 65536
        sent = 0
        with contextlib.suppress(ConnectionError, RuntimeError):
            for _ in range(FIFTY_MB // len(chunk)):
                await response.write(chunk)
                sent += len(chunk)
        request.app[FAKE].huge_sends.append(sent)
        return response

    return handler


def raw(body: bytes, status: int = 200, content_type: str = "application/json") -> Fault:
    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        return web.Response(body=body, status=status, headers={"Content-Type": content_type})

    return handler


def snapshot_with(**changes: Any) -> Fault:
    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        return _json(snapshot_body(account_id, **changes))

    return handler


def nan_followers() -> Fault:
    body = snapshot_body("x").replace(b'"follower_count": 1000', b'"follower_count": NaN')
    return raw(body)


def rate_limited(retry_after: str) -> Fault:
    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        error = {"error": {"code": "RATE_LIMITED", "message": "slow down"}, "request_id": "r"}
        return _json(json.dumps(error).encode(), 429, **{"Retry-After": retry_after})

    return handler


def retry_after_date(seconds: float) -> Fault:
    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        # An HTTP date `seconds` after the server's own Date header (aiohttp sets it to now).
        when = formatdate(time.time() + seconds, usegmt=True)
        return await rate_limited(when)(request, account_id)

    return handler


def echo_headers() -> Fault:
    """A 502 whose message repeats the request's headers, the key among them."""

    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        message = f"upstream failed for request with headers {dict(request.headers)}"
        error = {"error": {"code": "UPSTREAM_ERROR", "message": message}, "request_id": "r"}
        return _json(json.dumps(error).encode(), 502)

    return handler


def low_bucket(limit: int, remaining: int, full_in: float) -> Fault:
    """Good answers from a workspace bucket that is nearly empty and full again soon."""

    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        response = await good(request, account_id)
        response.headers.update(
            {
                "X-UniPost-RateLimit-Limit": str(limit),
                "X-UniPost-RateLimit-Remaining": str(remaining),
                "X-UniPost-RateLimit-Reset": str(int(time.time() + full_in) + 1),
            }
        )
        return response

    return handler


class FaultyUniPost:
    """Per-account behaviour, switchable while the exporter polls; `down()`/`up()` stop and
    restart the listener on the same port."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.behaviour: dict[str, Fault] = {}
        self.requests: list[tuple[float, str]] = []
        # Bytes each 50 MB answer got out before the client hung up.
        self.huge_sends: list[int] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @staticmethod
    def followers(account_id: str) -> int:
        return 1000 + len(account_id)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requested(self, account_id: str) -> int:
        return sum(1 for _, a in self.requests if a == account_id)

    async def up(self) -> None:
        app = web.Application()
        app[FAKE] = self
        app.router.add_get("/v1/accounts/{account_id}/metrics", self._metrics)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        account_id = request.match_info["account_id"]
        self.requests.append((asyncio.get_running_loop().time(), account_id))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            # Echoes what it got, as careless servers do.
            body = {"error": {"code": "UNAUTHORIZED", "message": repr(dict(request.headers))}}
            return _json(json.dumps(body).encode(), 401)
        return await self.behaviour.get(account_id, good)(request, account_id)
