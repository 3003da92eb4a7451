"""The tests' one fake UniPost: scripted per account, able to misbehave, shaped like the real
server (tests/fixtures/real/): its bodies, envelope and limiter are the simulator's
(exporter/simulator/model.py), with faults and scripts on top.

- `FakeUniPost(script)` answers `GET /v1/accounts/{id}/metrics` with `script(account_id)`
  (a Reply) and `GET /v1/accounts` with `listing`; `faults[account_id]` overrides an
  account with a misbehaviour on the wire (hang, reset, a 50 MB body, ...).
- Over HTTP on loopback (`async with fake`, or `up()`/`down()`, which keep the port), or in
  memory (`fake.client(clock)`) for tests that drive time with an injected clock.
- It records every request. A token bucket (`limit`) can refuse with 429 RATE_LIMITED, and
  `python -m tests.fake_unipost --port P --rate R` serves it alone, with /stats, for the
  benchmarks (which measure the exporter, not the fake, in another process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import socket
import statistics
import time
import zlib
from array import array
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from exporter import platforms
from exporter.client import WORKSPACE_PATHS, RawResponse
from exporter.clock import Clock
from exporter.simulator import demo_scenario
from exporter.simulator import model as simulated
from exporter.simulator.model import error_body, metrics_data

API_KEY = "up_test_k3y_SECRET_do_not_leak"
REAL_FIXTURES = Path(__file__).parent / "fixtures" / "real"
FIFTY_MB = 50 * 1024 * 1024
LISTING_PIECE = 256 * 1024


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- answers: the one body builder -----------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is, instead of `body` as JSON
    # Seconds the server takes before answering (UniPost waits on the platform).
    delay: float = 0.0
    # No answer at all: in memory, the client's error code (TIMEOUT, CONNECTION_ERROR);
    # over HTTP the connection is dropped.
    no_answer: str | None = None

    def payload(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.body).encode()

    def as_raw_response(self) -> RawResponse:
        """What the exporter's HTTP client would return for this answer."""
        if self.no_answer is not None:
            return RawResponse(status=None, transport_error=self.no_answer)
        headers = CIMultiDictProxy(CIMultiDict(self.headers))
        return RawResponse(status=self.status, headers=headers, body=self.payload())


def snapshot(
    account_id: str,
    platform: str | None = None,
    followers: Any = 100,
    following: int = 10,
    posts: int = 5,
    specific: dict[str, Any] | None = None,
    fetched_at: str = "2026-04-28T18:30:00Z",
    **changes: Any,
) -> Reply:
    """A good 200 snapshot; the platform defaults to the one the ID names. `changes`
    replace fields of `data` as they are (wrong types included)."""
    platform = platform or platforms.from_id(account_id)
    data = metrics_data(account_id, platform, (followers, following, posts), specific, fetched_at)
    data.update(changes)
    return Reply(body={"data": data, "request_id": "req_1"})


def zero_filled(account_id: str, platform: str = "twitter", upstream_status: int = 429) -> Reply:
    """The 200 answer UniPost gives when the platform call failed."""
    failure = {
        "upstream_status": upstream_status,
        "upstream_error": '{"title":"Too Many Requests"}',
    }
    data = metrics_data(account_id, platform, (0, 0, 0), failure, "2026-04-28T18:30:00Z")
    return Reply(body={"data": data})


def error(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None
) -> Reply:
    """An error envelope."""
    return Reply(status=status, body=error_body(code, message, "req_1"), headers=headers or {})


def no_answer(code: str = "TIMEOUT") -> Reply:
    """A request that gets no answer."""
    return Reply(no_answer=code)


def recorded_answer(name: str) -> dict[str, Any]:
    """A recording of the real server's answer (tests/fixtures/real/): `follows` (the
    upstream file), `status`, `content_type` and `body` (text for a non-JSON answer)."""
    answer: dict[str, Any] = json.loads((REAL_FIXTURES / name).read_text(encoding="utf-8"))
    return answer


def recorded(name: str, account_id: str, **changes: Any) -> Reply:
    """A real server's answer from tests/fixtures/real/, for `account_id`."""
    answer = recorded_answer(name)
    body = answer["body"]
    if isinstance(body, str):  # not JSON: a plain-text answer from the hosting edge
        return Reply(
            answer["status"], raw=body.encode(), headers={"Content-Type": answer["content_type"]}
        )
    if "data" in body:
        body["data"]["social_account_id"] = account_id
    return Reply(answer["status"], body=body, **changes)


def health(
    status: str = "ok",
    token_expires_at: str | None = "2026-12-27T10:00:00Z",
    last_successful_post_at: str | None = "2026-11-26T09:00:00Z",
    last_error: dict[str, Any] | None = None,
    account_id: str = "sa_x",
) -> Reply:
    """An answer of GET /v1/accounts/{id}/health; a None field is omitted, as UniPost does."""
    data: dict[str, Any] = {"social_account_id": account_id, "platform": "x", "status": status}
    for name, value in (
        ("last_successful_post_at", last_successful_post_at),
        ("last_error", last_error),
        ("token_expires_at", token_expires_at),
    ):
        if value is not None:
            data[name] = value
    return Reply(body={"data": data, "request_id": "req_1"})


def steady(account_id: str) -> Reply:
    """The default script: a good Instagram snapshot whose count is fixed per account."""
    return snapshot(
        account_id,
        platform="instagram",
        followers=steady_followers(account_id),
        specific={"media_count": 5},
        fetched_at="2026-11-27T10:00:00Z",
    )


def live(account_id: str) -> Reply:
    """`steady`, fetched now, as the real server stamps every answer (time.Now(), RFC 3339
    with fractions): the benchmarks' script, so every poll brings a new snapshot to store
    and render, as in production."""
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return snapshot(
        account_id,
        platform="instagram",
        followers=steady_followers(account_id),
        specific={"media_count": 5},
        fetched_at=now,
    )


def steady_followers(account_id: str) -> int:
    return 1000 + len(account_id)


# -- misbehaviour on the wire ------------------------------------------------------------------

Fault = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
FAKE: web.AppKey[FakeUniPost] = web.AppKey("fake")


def send(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.payload(),
        headers={"Content-Type": "application/json", **reply.headers},
    )


def answer(reply: Reply | Callable[[str], Reply]) -> Fault:
    """A fault that is a plain answer (the same for every account, or made per account)."""

    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        return send(reply(account_id) if callable(reply) else reply)

    return handler


async def hang(request: web.Request, account_id: str) -> web.StreamResponse:
    await asyncio.sleep(3600)  # accepts, never answers
    raise AssertionError("unreachable")


async def reset_mid_body(request: web.Request, account_id: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 4096
    await response.prepare(request)
    await response.write(steady(account_id).payload()[:40])
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


def rate_limited(retry_after: str) -> Reply:
    return error(429, "RATE_LIMITED", "slow down", {"Retry-After": retry_after})


def retry_after_date(seconds: float) -> Fault:
    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        # An HTTP date `seconds` after the server's own Date header (aiohttp sets it to now).
        return send(rate_limited(formatdate(time.time() + seconds, usegmt=True)))

    return handler


async def echo_headers(request: web.Request, account_id: str) -> web.StreamResponse:
    """A 502 whose message repeats the request's headers, the key among them."""
    message = f"upstream failed for request with headers {dict(request.headers)}"
    return send(error(502, "UPSTREAM_ERROR", message))


def low_bucket(limit: int, remaining: int, full_in: float) -> Fault:
    """Good answers from a workspace bucket that is nearly empty and full again soon."""

    async def handler(request: web.Request, account_id: str) -> web.StreamResponse:
        reply = steady(account_id)
        reply.headers = {
            "X-UniPost-RateLimit-Limit": str(limit),
            "X-UniPost-RateLimit-Remaining": str(remaining),
            "X-UniPost-RateLimit-Reset": str(int(time.time() + full_in) + 1),
        }
        return send(reply)

    return handler


# -- the fake ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    time: float  # event-loop (or injected clock) seconds
    account_id: str  # "" for the listing
    path: str
    headers: Mapping[str, str]


class TokenBucket(simulated.TokenBucket):
    """The simulator's workspace limiter, which forgives what the fake read late (held())."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float]) -> None:
        super().__init__(rate, burst, now)
        self._slack = 0.0  # room beyond `burst` while requests read late are taken
        self.held_count = 0
        self.held_max = 0.0
        self.held_at = array("d")  # (began, ended) of each time it was held, flat

    def held(self, seconds: float) -> None:
        """The limiter's own process could not read for `seconds` (its core was taken: on a
        VM, by the hypervisor too). The requests it reads next arrived at any time in those
        seconds, and are judged as if taken when they arrived: the bucket keeps what it
        refilled meanwhile, beyond `burst`."""
        self._slack = max(self._slack, seconds * self.rate)
        now = self.now()
        self.held_at.extend((now - seconds, now))
        self.held_count += 1
        self.held_max = max(self.held_max, seconds)

    def on_time(self) -> None:
        """The requests read late are taken: back to `burst`."""
        self._slack = 0.0

    def room(self) -> float:
        return self.burst + self._slack


class FakeUniPost:
    """One scripted, fault-injecting UniPost; see the module's docstring."""

    def __init__(
        self,
        script: Callable[[str], Reply] = steady,
        api_key: str = API_KEY,
        health_script: Callable[[str], Reply] = lambda account_id: health(account_id=account_id),
        limit: TokenBucket | None = None,
        keep_requests: bool = True,
    ) -> None:
        self.script = script
        self.health_script = health_script  # GET /v1/accounts/{id}/health
        # Off for the benchmarks: a record per request would grow the heap (and its GC
        # pauses) over hundreds of thousands of requests.
        self.keep_requests = keep_requests
        self.api_key = api_key
        self.limit = limit
        self.faults: dict[str, Fault] = {}
        # GET /v1/accounts: these rows, or (None) a 502; `listing_body`, when set, is sent
        # instead, as is (the benchmarks' 100,000 rows, encoded once).
        self.listing: list[dict[str, Any]] | None = []
        self.listing_body: bytes | None = None
        self.listings = 0  # listings served
        self.last_listing = 0.0  # when the last one was asked for (event-loop seconds)
        self.requests: list[Seen] = []  # in order of arrival
        # When each metrics request arrived: an array, so /arrivals sends it as raw bytes in
        # a millisecond (JSON for 100,000 floats would hold the fake's loop ~75 ms, and the
        # requests queued meanwhile would reach its limiter as a burst).
        self.arrivals = array("d")
        self.health_reads = 0
        self.refused_at = array("d")  # when the limiter refused a metrics request
        self._health_read: set[str] = set()  # accounts whose health was read at least once
        # Each account's time between two polls it answered: the cadence the exporter keeps.
        self.gaps = array("d")
        # Each account's polls and the time of its last, by its index in `_index`: one dict,
        # whose table doubling at ~87,000 accounts holds the loop ~3 ms (two dicts took ~6).
        self._index: dict[str, int] = {}
        self._polls = array("l")
        self._last_poll = array("d")
        self.huge_sends: list[int] = []  # bytes each 50 MB answer got out before a hang-up
        # The workspace reads (usage, the delivery queue, analytics): the simulator's answers
        # for the demo's accounts (set `workspace.plan` to change the plan), or, for an
        # endpoint label of client.WORKSPACE_PATHS in `workspace_replies`, that Reply.
        self.workspace = simulated.SimulatedWorkspace(demo_scenario())
        self.workspace_replies: dict[str, Reply] = {}
        self.workspace_reads: list[tuple[float, str]] = []  # (time, endpoint label)
        self.unexpected: list[str] = []  # "METHOD /path" of requests no route expects
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    # -- what it saw

    def requested(self, account_id: str, endpoint: str = "metrics") -> int:
        """Requests for the account's metrics (or "health")."""
        return len(self.request_times(account_id, endpoint))

    def request_times(self, account_id: str, endpoint: str = "metrics") -> list[float]:
        return [
            seen.time
            for seen in self.requests
            if seen.account_id == account_id and seen.path.endswith("/" + endpoint)
        ]

    # -- over HTTP

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeUniPost:
        await self.up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.down()

    async def up(self) -> None:
        """Listen (again) on the fake's port."""
        app = web.Application()
        app[FAKE] = self
        app.router.add_get("/v1/accounts", self._list_http)
        app.router.add_get("/v1/accounts/{account_id}/metrics", self._metrics_http)
        app.router.add_get("/v1/accounts/{account_id}/health", self._health_http)
        for endpoint, path in WORKSPACE_PATHS.items():
            app.router.add_get(path, self._workspace_http(endpoint))
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/arrivals", self._arrivals)
        # The benchmarks' naive baseline: the same answer, outside the key check, the limiter
        # and the records.
        app.router.add_get("/unlimited/v1/accounts/{account_id}/metrics", self._unlimited)
        # Anything else: a path the exporter must never call (e.g. GET /v1/posts/{id}/analytics
        # or POST /v1/analytics/refresh, which make UniPost spend platform quota).
        app.router.add_route("*", "/{path:.*}", self._unexpected)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        """Stop listening: connections are refused until up()."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics_http(self, request: web.Request) -> web.StreamResponse:
        account_id = request.match_info["account_id"]
        seen = Seen(loop_time(), account_id, request.path, request.headers)
        reply = self._answer(seen)
        fault = self.faults.get(account_id)
        if fault is not None and reply is None:
            return await fault(request, account_id)
        reply = reply or self.script(account_id)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.no_answer is not None:
            assert request.transport is not None
            request.transport.abort()
        return send(reply)

    async def _health_http(self, request: web.Request) -> web.StreamResponse:
        account_id = request.match_info["account_id"]
        seen = Seen(loop_time(), account_id, request.path, request.headers)
        return send(self._answer(seen, limited=False) or self.health_script(account_id))

    def _workspace_http(self, endpoint: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            reply = self.workspace_reply(endpoint, request.headers, loop_time())
            if reply.no_answer is not None:
                assert request.transport is not None
                request.transport.abort()
            return send(reply)

        return handler

    def workspace_reply(self, endpoint: str, headers: Mapping[str, str], now: float) -> Reply:
        """The answer to a workspace read, by its endpoint label (client.WORKSPACE_PATHS)."""
        self.workspace_reads.append((now, endpoint))
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return error(401, "UNAUTHORIZED", "Invalid or missing API key")
        if endpoint in self.workspace_replies:
            return self.workspace_replies[endpoint]
        try:
            data = self.workspace.workspace_read(WORKSPACE_PATHS[endpoint])
        except simulated.ApiFailure as exc:
            return error(exc.status, exc.code, exc.message)
        return Reply(body={"data": data, "request_id": "req_1"})

    def workspace_requests(self, endpoint: str) -> int:
        """How many reads of this endpoint label the fake answered."""
        return sum(1 for _, seen in self.workspace_reads if seen == endpoint)

    async def _unexpected(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path}")
        return send(error(404, "NOT_FOUND", "Not found"))

    async def _unlimited(self, request: web.Request) -> web.StreamResponse:
        return send(self.script(request.match_info["account_id"]))

    async def _list_http(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(loop_time(), "", request.path, request.headers)
        if self.keep_requests:
            self.requests.append(seen)
        self.listings += 1
        self.last_listing = seen.time
        if self.listing_body is not None and len(self.listing_body) > LISTING_PIECE:
            return await self._stream_listing(request, self.listing_body)
        return send(self._listing())

    async def _stream_listing(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """A large listing sent in pieces, the loop turning between them: written at once,
        40 MB held the fake's loop for tens of milliseconds, and the metrics requests that
        queued meanwhile reached its limiter as a burst (the real server answers each
        request on its own goroutine). Chunked, with no Content-Length, as Go's net/http
        sends a body its handler encodes straight to the response past its 4 KB buffer."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        view = memoryview(body)
        for start in range(0, len(body), LISTING_PIECE):
            await response.write(view[start : start + LISTING_PIECE])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    async def _stats(self, request: web.Request) -> web.Response:
        """Counters, cheap to answer: the benchmarks ask every 0.2 s during a first round, and
        the fake must never be the bottleneck. With ?full=1 also the per-account figures,
        which scan every account (~4 ms at 100,000: its limiter would see the requests that
        queued meanwhile as a burst)."""
        stats: dict[str, Any] = {
            "requests": len(self.arrivals),
            "health_reads": self.health_reads,
            "refused": self.limit.refused if self.limit else 0,
            # How often, and at most how long, the fake could not read (TokenBucket.held).
            "held": self.limit.held_count if self.limit else 0,
            "held_max": self.limit.held_max if self.limit else 0.0,
            # The fake's own CPU, so a benchmark can show it is not the bottleneck.
            "cpu_seconds": time.process_time(),
            # Whether it runs at real-time priority (the benchmarks ask for it).
            "realtime": hasattr(os, "sched_getscheduler")
            and os.sched_getscheduler(0) == os.SCHED_FIFO,
            "accounts": len(self._index),
            "health_accounts": len(self._health_read),
            "gaps": len(self.gaps),
            "listings": self.listings,
            "last_listing": self.last_listing,
        }
        if request.query.get("full"):
            stats["min_polls"] = min(self._polls, default=0)
            stats["max_polls"] = max(self._polls, default=0)
            stats["gap_median"] = statistics.median(self.gaps) if self.gaps else None
            stats["refused_at"] = list(self.refused_at)
            stats["held_at"] = list(self.limit.held_at) if self.limit else []
        return web.json_response(stats)

    async def _arrivals(self, request: web.Request) -> web.Response:
        """Every metrics request's arrival time, as native doubles."""
        return web.Response(body=self.arrivals.tobytes(), content_type="application/octet-stream")

    # -- in memory

    def client(self, clock: Clock, latency: float = 0.0) -> InMemoryClient:
        """A stand-in for the exporter's UniPostClient that asks this fake without HTTP."""
        return InMemoryClient(self, clock, latency)

    # -- shared

    def _answer(self, seen: Seen, limited: bool = True) -> Reply | None:
        """Record the request; the answer it gets before the script is asked, if any."""
        if self.keep_requests:
            self.requests.append(seen)
        if limited:  # metrics requests: what the benchmarks count
            self.arrivals.append(seen.time)
        else:
            self.health_reads += 1
            self._health_read.add(seen.account_id)
        account_id = seen.account_id
        if seen.headers.get("Authorization") != f"Bearer {self.api_key}":
            # Echoes what it was sent, as careless servers do: the exporter must scrub it.
            presented = seen.headers.get("Authorization", "")
            return error(401, "UNAUTHORIZED", f"invalid API key in {presented!r}")
        if limited and self.limit is not None and not self.limit.take():
            self.refused_at.append(seen.time)
            return rate_limited("1")
        if limited:
            index = self._index.setdefault(account_id, len(self._index))
            if index == len(self._polls):  # its first poll
                self._polls.append(1)
                self._last_poll.append(seen.time)
            else:
                self._polls[index] += 1
                self.gaps.append(seen.time - self._last_poll[index])
                self._last_poll[index] = seen.time
        return None

    def _listing(self) -> Reply:
        if self.listing_body is not None:
            return Reply(raw=self.listing_body)
        if self.listing is None:
            return error(502, "UPSTREAM_ERROR", "listing failed")
        rows = self.listing
        return Reply(body={"data": rows, "meta": {"total": len(rows), "limit": len(rows)}})


class InMemoryClient:
    """Implements the client's calls on the fake, in the injected clock's time."""

    def __init__(self, fake: FakeUniPost, clock: Clock, latency: float) -> None:
        self.fake = fake
        self.clock = clock
        self.latency = latency
        self.calls: list[tuple[float, str]] = []  # metrics and listing requests
        self.health_calls: list[tuple[float, str]] = []

    async def get_account_metrics(self, account_id: str) -> RawResponse:
        self.calls.append((self.clock.monotonic(), account_id))
        refused = self._seen(account_id, "metrics", limited=True)
        if self.latency:
            await self.clock.sleep(self.latency)
        reply = refused or self.fake.script(account_id)
        if reply.delay:
            await self.clock.sleep(reply.delay)
        return reply.as_raw_response()

    async def get_account_health(self, account_id: str) -> RawResponse:
        self.health_calls.append((self.clock.monotonic(), account_id))
        refused = self._seen(account_id, "health", limited=False)
        return (refused or self.fake.health_script(account_id)).as_raw_response()

    def _seen(self, account_id: str, endpoint: str, limited: bool) -> Reply | None:
        """The request as the fake's HTTP side would see it, with the key the fake expects."""
        headers = {"Authorization": f"Bearer {self.fake.api_key}"}
        path = f"/v1/accounts/{account_id}/{endpoint}"
        return self.fake._answer(Seen(self.clock.monotonic(), account_id, path, headers), limited)

    async def get_workspace(self, endpoint: str) -> RawResponse:
        headers = {"Authorization": f"Bearer {self.fake.api_key}"}
        reply = self.fake.workspace_reply(endpoint, headers, self.clock.monotonic())
        if reply.delay:
            await self.clock.sleep(reply.delay)
        return reply.as_raw_response()

    async def list_accounts(self, platform: str | None = None) -> RawResponse:
        self.calls.append((self.clock.monotonic(), f"list {platform}"))
        return self.fake._listing().as_raw_response()

    def times(self, account_id: str) -> list[float]:
        return [t for t, a in self.calls if a == account_id]


def listing_row(account_id: str, platform: str, name: str) -> dict[str, Any]:
    """One row of GET /v1/accounts with every field the real server sends (listing.json)."""
    return {
        "id": account_id,
        "platform": platform,
        "account_name": name,
        "username": name,
        "display_name": name.title(),
        "external_account_id": str(zlib.crc32(account_id.encode())),
        "profile_id": "pr_1",
        "profile_name": "Default",
        "status": "active",
        "connection_type": "byo",
        "scope": [],
        "identity_refresh_required": False,
        "connected_at": "2026-04-02T10:00:00Z",
        "last_connected_at": "2026-04-02T10:00:00Z",
    }


def benchmark_listing(accounts: int) -> bytes:
    """GET /v1/accounts listing `accounts` instagram accounts in one answer, as the real
    server does (no pagination: meta.total == meta.limit == the rows)."""
    rows = [listing_row(f"sa_instagram_{i}", "instagram", f"acct_{i}") for i in range(accounts)]
    meta = {"total": accounts, "limit": accounts}
    return json.dumps({"data": rows, "meta": meta, "request_id": "req_bench"}).encode()


# How often the fake's own lateness is checked, and what lateness counts as held.
LATENESS_TICK = 0.005
LATENESS_HELD = 0.002


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def main() -> None:
    """Serve the fake alone: steady answers behind a token bucket, with /stats."""
    parser = argparse.ArgumentParser(prog="python -m tests.fake_unipost")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--burst", type=float, default=3.0)
    parser.add_argument("--api-key", dest="api_key", default=API_KEY)
    parser.add_argument(
        "--listing", type=int, default=0, help="GET /v1/accounts lists this many accounts"
    )
    args = parser.parse_args()

    async def serve() -> None:
        limit = TokenBucket(args.rate, args.burst, time.monotonic)
        fake = FakeUniPost(live, api_key=args.api_key, limit=limit, keep_requests=False)
        fake.port = args.port
        if args.listing:
            fake.listing_body = benchmark_listing(args.listing)
        await fake.up()
        # Its modules and server out of the garbage collector's full scans: a pause of its
        # loop reaches its limiter as a burst of the requests that queued meanwhile.
        gc.freeze()
        await watch_lateness(limit)

    asyncio.run(serve())


async def watch_lateness(limit: TokenBucket) -> None:
    """Tell the limiter when this process could not read: its loop woke late. Run at the
    real time priority the benchmarks give it, the fake is still held when the hypervisor
    takes its core (steal time): 19 ms at a time, seen during make bench's scrapes, made
    11 requests the exporter had sent at its pace arrive within 1 ms."""
    while True:
        began = time.monotonic()
        await asyncio.sleep(LATENESS_TICK)
        late = time.monotonic() - began - LATENESS_TICK
        # Requests that arrived meanwhile are read before this runs (I/O callbacks come
        # before timers in a turn of the loop), and their handlers run after it.
        if late > LATENESS_HELD:
            limit.held(late)
        else:
            limit.on_time()


if __name__ == "__main__":
    main()
