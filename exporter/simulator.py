"""A UniPost simulator: the API contract, realistic accounts and realistic failures, on aiohttp.

It answers as UniPost's real server does (bugfreev587/unipost, api/): the five platforms
with a metrics adapter fill what their adapter fills and nothing more (YouTube's following
and Threads' following and posts are 0), every other platform answers 501, GETs carry no
X-UniPost-RateLimit-* headers unless the scenario asks for them, and times are Go's
RFC3339Nano. Deterministic for a given seed and request order: follower curves are pure
functions of (seed, account, time), and the occasional 502 comes from a seeded generator.
Run it alone with `unipost-exporter simulate` or `python -m exporter.simulator`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import signal
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from exporter import platforms
from exporter.durations import DURATION_HINT, parse_duration
from exporter.process import parse_listen_address
from exporter.validation import unknown_key

DEFAULT_SIM_KEY = "up_test_simulator"
# Set by the middleware for the request being handled (each request runs in its own task).
_request_id: ContextVar[str] = ContextVar("request_id", default="req_sim_000000")
TRENDS = ("growth", "plateau", "decline")
# ok; missing_scope (X: zero-filled 403; TikTok: 409 NEEDS_RECONNECT); token_expired (X:
# zero-filled 401 on every call); disconnected; needs_reconnect; not_supported; throttled
# (TikTok: 429 UPSTREAM_RATE_LIMITED); platform_error (a 502 with the platform's code);
# edge_error (a plain-text 502 from the hosting edge).
BEHAVIOURS = (
    "ok", "missing_scope", "token_expired", "disconnected", "needs_reconnect", "not_supported",
    "throttled", "platform_error", "edge_error",
)  # fmt: skip


@dataclass(frozen=True)
class SimAccount:
    """One connected account of the simulated workspace."""

    id: str
    platform: str
    name: str | None = None
    followers: int = 1000
    following: int = 100
    posts: int = 100
    trend: str = "growth"
    # Fraction per (simulated) day: growth or decline rate; for a plateau, the early growth.
    rate: float = 0.02
    posts_per_day: float = 2.0
    behaviour: str = "ok"
    external_user_id: str | None = None
    # YouTube: the channel hides its subscriber count (UniPost then sends follower_count 0).
    hidden_subscribers: bool = False
    # GET /v1/accounts/{id}/health: publishing health (ok or degraded; a disconnected
    # account is disconnected), when the token expires (days from the simulator's start)
    # and the last post was (days ago), in real days (negative: in the past; None: unknown,
    # omitted), and the last failure's
    # category (token_expired, rate_limited, ...) with the platform's text.
    health: str = "ok"
    token_expires_in_days: float | None = 30.0
    last_post_days_ago: float | None = 0.5
    last_error: str | None = None
    last_error_message: str = ""


@dataclass(frozen=True)
class Scenario:
    """Everything the simulator does, so tests can set each behaviour."""

    accounts: tuple[SimAccount, ...]
    api_key: str = DEFAULT_SIM_KEY
    seed: int = 1
    # Simulated seconds per real second: 3600 makes a day's growth visible in 24 seconds.
    time_scale: float = 1.0
    # Probability of a 502 UPSTREAM_ERROR on any metrics lookup.
    upstream_error_rate: float = 0.02
    # X-like per-account window (real seconds): a second lookup inside it is zero-filled 429.
    x_window: float = 900.0
    # The workspace limiter, a token bucket. The real server (at commit 762bf79) applies it
    # only to post-creating routes: GETs are not limited and carry no X-UniPost-RateLimit-*
    # headers. True applies it to every request, with its headers, as a later server may.
    rate_limit_headers: bool = False
    rate_limit_capacity: int = 120
    rate_limit_refill_per_second: float = 2.0
    # Simulated start of every account's curve (Unix seconds).
    epoch: float = 1_777_000_000.0


# The built-in workspace: growth, plateau, decline, a real zero, and every failure.
DEMO_ACCOUNTS = (
    SimAccount("sa_twitter_acme", "twitter", "acme", 12480, 327, 2841, "growth", 0.03),
    SimAccount(
        "sa_twitter_legacy",
        "twitter",
        "acme_legacy",
        5300,
        80,
        12011,
        "decline",
        0.01,
        token_expires_in_days=-2.0,  # expired two days ago
    ),
    SimAccount("sa_instagram_studio", "instagram", "studio.alex", 8800, 410, 530, "plateau", 0.02),
    SimAccount(
        "sa_youtube_channel",
        "youtube",
        "Acme TV",
        98000,
        0,
        312,
        "growth",
        0.015,
        0.3,
        token_expires_in_days=3.0,  # expires in three days: time to reconnect
    ),
    SimAccount(
        "sa_youtube_hidden",
        "youtube",
        "Acme Labs",
        4200,
        0,
        57,
        posts_per_day=0.1,
        hidden_subscribers=True,
    ),
    SimAccount(
        "sa_tiktok_brand",
        "tiktok",
        "acme.brand",
        45000,
        12,
        640,
        "growth",
        0.05,
        health="degraded",  # its recent posts failed
        last_error="rate_limited",
        last_error_message='TikTok: "spam_risk_too_many_posts" (daily post cap reached)',
    ),
    SimAccount("sa_tiktok_shop", "tiktok", "acme.shop", 2000, behaviour="throttled"),
    SimAccount("sa_threads_studio", "threads", "studio.threads", 3100, rate=0.01),
    SimAccount(
        "sa_instagram_new",
        "instagram",
        "acme.new",
        0,
        3,
        0,
        "plateau",
        0.0,
        0.0,
        token_expires_in_days=None,
        last_post_days_ago=None,  # nothing known yet
    ),
    SimAccount("sa_twitter_noscope", "twitter", "acme_jobs", 900, behaviour="missing_scope"),
    SimAccount("sa_threads_old", "threads", "acme.threads", 700, behaviour="disconnected"),
    SimAccount("sa_instagram_shop", "instagram", None, 1500, behaviour="needs_reconnect"),
    SimAccount("sa_linkedin_company", "linkedin", "Acme Inc.", 3100),
)


def demo_scenario() -> Scenario:
    """The built-in workspace."""
    return Scenario(accounts=DEMO_ACCOUNTS)


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message names the key."""


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML file (keys as in Scenario and SimAccount)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    return scenario_from_dict(raw if raw is not None else {})


def scenario_from_dict(raw: Any) -> Scenario:
    """Build a Scenario from parsed YAML, refusing unknown keys and bad values."""
    if not isinstance(raw, dict):
        raise ScenarioError("scenario must be a mapping")
    defaults = Scenario(accounts=())
    fields = {
        "seed", "api_key", "time_scale", "upstream_error_rate", "x_window", "rate_limit_headers",
        "rate_limit_capacity", "rate_limit_refill_per_second", "epoch", "accounts",
    }  # fmt: skip
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ScenarioError(f"{unknown[0]}: {unknown_key(unknown[0], fields)}")
    values: dict[str, Any] = {}
    for key in fields - {"accounts"}:
        if key in raw:
            values[key] = _scenario_value(key, raw[key], getattr(defaults, key))
    accounts_raw = raw.get("accounts")
    if accounts_raw is None:
        accounts = demo_scenario().accounts
    elif not isinstance(accounts_raw, list):
        raise ScenarioError("accounts: must be a list")
    else:
        accounts = tuple(
            _sim_account(item, f"accounts[{i}]") for i, item in enumerate(accounts_raw)
        )
    return replace(defaults, accounts=accounts, **values)


def _scenario_value(key: str, value: Any, default: Any) -> Any:
    if key == "x_window" and isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            raise ScenarioError(
                f'x_window: "{value}" is not a duration ({DURATION_HINT})'
            ) from None
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ScenarioError(f"{key}: must be a string")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ScenarioError(f"{key}: must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ScenarioError(f"{key}: must be a non-negative number")
    return type(default)(value)


def _sim_account(raw: Any, where: str) -> SimAccount:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a mapping")
    known = set(SimAccount.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ScenarioError(f"{where}.{unknown[0]}: {unknown_key(unknown[0], known)}")
    for key in ("id", "platform"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ScenarioError(f"{where}.{key}: is required")
    if raw.get("trend", "growth") not in TRENDS:
        raise ScenarioError(f"{where}.trend: must be one of {', '.join(TRENDS)}")
    if raw.get("behaviour", "ok") not in BEHAVIOURS:
        raise ScenarioError(f"{where}.behaviour: must be one of {', '.join(BEHAVIOURS)}")
    if not isinstance(raw.get("hidden_subscribers", False), bool):
        raise ScenarioError(f"{where}.hidden_subscribers: must be true or false")
    if raw.get("health", "ok") not in ("ok", "degraded"):
        raise ScenarioError(f"{where}.health: must be ok or degraded")
    for key in ("token_expires_in_days", "last_post_days_ago"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ScenarioError(f"{where}.{key}: must be a number of days, or null")
    for key in ("last_error", "last_error_message"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ScenarioError(f"{where}.{key}: must be a string")
    return SimAccount(**raw)


@dataclass
class _AccountState:
    last_platform_lookup: float | None = None


@dataclass
class SimulatorState:
    """What the simulator remembers between requests."""

    tokens: float
    updated: float
    accounts: dict[str, _AccountState] = field(default_factory=dict)
    requests: int = 0


class Simulator:
    """The simulated UniPost API as an aiohttp application."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = time.time) -> None:
        self.scenario = scenario
        self.clock = clock
        self.started = clock()
        self.state = SimulatorState(tokens=scenario.rate_limit_capacity, updated=self.started)
        # The workspace's accounts; tests may connect and disconnect some while it runs.
        self.accounts = {a.id: a for a in scenario.accounts}
        # When set, GET /v1/accounts answers 500 INTERNAL_ERROR (a failing refresh).
        self.fail_listing = False
        # The key the workspace accepts; tests revoke or rotate it while the simulator runs.
        self.api_key = scenario.api_key
        self._rng = random.Random(scenario.seed)
        self._request_ids = itertools.count(1)

    def app(self) -> web.Application:
        """The routes of the API contract."""
        app = web.Application(middlewares=[self._envelope])
        app.router.add_get("/v1/accounts", self._list_accounts)
        app.router.add_get("/v1/accounts/{account_id}/metrics", self._metrics)
        app.router.add_get("/v1/accounts/{account_id}/health", self._health)
        app.router.add_get("/v1/profiles/{profile_id}/accounts/{account_id}/metrics", self._metrics)
        return app

    # -- the model --------------------------------------------------------------------------

    def simulated_days(self) -> float:
        """Days of simulated time since the scenario's epoch."""
        return (self.clock() - self.started) * self.scenario.time_scale / 86400.0

    def snapshot(self, account: SimAccount) -> dict[str, Any]:
        """A good snapshot of the account now, filled as the platform's real adapter fills it."""
        days = self.simulated_days()
        followers = self._followers(account, days)
        following = max(
            0, round(account.following + 3 * math.sin(days / 7 * 2 * math.pi) + days * 0.2)
        )
        posts = account.posts + math.floor(days * account.posts_per_day)
        specific: dict[str, Any] = {}
        if account.platform == "twitter":
            specific = {"tweet_count": posts, "listed_count": 10 + followers // 300}
        elif account.platform == "instagram":
            specific = {"media_count": posts}
        elif account.platform == "tiktok":
            specific = {"likes_count": posts * 850 + followers * 3, "video_count": posts}
        elif account.platform == "youtube":
            specific = {
                "view_count": followers * 190 + posts * 1200,
                "hidden_subscriber_count": account.hidden_subscribers,
                "following_count_supported": False,
                "subscriber_count_rounded": True,
                "post_count_public_only": True,
            }
            # YouTube rounds subscribers to three significant figures, or hides them.
            followers = 0 if account.hidden_subscribers else _three_figures(followers)
        elif account.platform == "threads":
            views = followers * 40 + math.floor(days * 900)
            specific = {
                "views": views,
                "likes": views // 25,
                "replies": views // 400,
                "reposts": views // 900,
                "quotes": views // 3000,
            }
        never_filled = platforms.NEVER_FILLED.get(account.platform, ())
        if "following_count" in never_filled:
            following = 0
        if "post_count" in never_filled:
            posts = 0
        return self._data(account, followers, following, posts, specific)

    def _followers(self, account: SimAccount, days: float) -> int:
        base, rate = float(account.followers), account.rate
        level: float
        if account.trend == "growth":
            level = base * (1 + rate) ** days
        elif account.trend == "decline":
            level = base * (1 - rate) ** days
        else:
            level = base * (1 + rate * 20 * (1 - math.exp(-days / 20)))
        # Daily rhythm plus a little deterministic noise.
        bucket = math.floor(days * 1440)
        noise = random.Random(zlib.crc32(f"{self.scenario.seed}:{account.id}:{bucket}".encode()))
        level *= 1 + 0.001 * math.sin(days * 2 * math.pi) + noise.uniform(-0.0003, 0.0003)
        return max(0, round(level))

    def _data(
        self,
        account: SimAccount,
        followers: int,
        following: int,
        posts: int,
        specific: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "social_account_id": account.id,
            "platform": account.platform,
            "follower_count": followers,
            "following_count": following,
            "post_count": posts,
            "platform_specific": specific,
            "fetched_at": rfc3339nano(self.clock()),
        }

    def _zero_filled(self, account: SimAccount, status: int, body: str) -> dict[str, Any]:
        return self._data(account, 0, 0, 0, {"upstream_status": status, "upstream_error": body})

    # -- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _envelope(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.state.requests += 1
        request_id = f"req_sim_{next(self._request_ids):06d}"
        _request_id.set(request_id)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            # The auth middleware's own envelope: code and message only, no request_id.
            body = {"error": {"code": "UNAUTHORIZED", "message": "Invalid or missing API key"}}
            return web.json_response(body, status=401)
        headers: dict[str, str] = {}
        if self.scenario.rate_limit_headers:
            allowed, headers = self._take_token()
            if not allowed:
                return _error(
                    429, "RATE_LIMITED", "workspace request limit exceeded", request_id, headers
                )
        try:
            response = await handler(request)
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message, request_id, headers, exc.details)
        except _EdgeError as exc:
            # A 5xx from the hosting edge in front of UniPost: plain text, not the envelope.
            return web.Response(status=exc.status, text=f"error code: {exc.status}")
        response.headers.update(headers)
        return response

    def _take_token(self) -> tuple[bool, dict[str, str]]:
        scenario, state = self.scenario, self.state
        now = self.clock()
        capacity, refill = scenario.rate_limit_capacity, scenario.rate_limit_refill_per_second
        state.tokens = min(capacity, state.tokens + (now - state.updated) * refill)
        state.updated = now
        allowed = state.tokens >= 1
        if allowed:
            state.tokens -= 1
        headers = {
            "X-UniPost-RateLimit-Limit": str(capacity),
            "X-UniPost-RateLimit-Remaining": str(math.floor(state.tokens)),
            "X-UniPost-RateLimit-Reset": str(math.ceil(now + (capacity - state.tokens) / refill)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil((1 - state.tokens) / refill)))
        return allowed, headers

    async def _metrics(self, request: web.Request) -> web.Response:
        # In the order of the real handler (social_account_metrics.go) and its adapters.
        account = self.accounts.get(request.match_info["account_id"])
        if account is None:
            raise _ApiError(404, "NOT_FOUND", "Account not found")
        if account.behaviour == "disconnected":
            raise _ApiError(
                409,
                "ACCOUNT_DISCONNECTED",
                "Account is disconnected — reconnect before fetching metrics",
            )
        if account.behaviour == "not_supported" or account.platform not in platforms.WITH_METRICS:
            raise _ApiError(
                501,
                "NOT_SUPPORTED",
                f"Account metrics are not available for {account.platform} yet",
            )
        if account.behaviour == "edge_error":
            raise _EdgeError(502)
        name = platforms.display_name(account.platform)
        if account.behaviour == "needs_reconnect" or (
            account.behaviour == "missing_scope" and account.platform == "tiktok"
        ):
            details = (
                {"reason": "analytics_scope_required"} if account.platform == "tiktok" else None
            )
            raise _ApiError(
                409, "NEEDS_RECONNECT", f"Reconnect {name} to enable analytics.", details
            )
        if account.behaviour == "throttled":
            raise _ApiError(
                429,
                "UPSTREAM_RATE_LIMITED",
                f"{name} is rate limiting this account; try again later",
                {"reason": "provider_rate_limited"},
            )
        if account.behaviour == "platform_error" or (
            self._rng.random() < self.scenario.upstream_error_rate
        ):
            raise _platform_error(account)
        if account.platform == "twitter":
            zero_filled = self._x_failure(account)
            if zero_filled is not None:
                return _ok(request, {"data": zero_filled})
        return _ok(request, {"data": self.snapshot(account)})

    def _x_failure(self, account: SimAccount) -> dict[str, Any] | None:
        """X's zero-filled snapshots: an expired token, a tier without access, the window."""
        if account.behaviour == "token_expired":
            return self._zero_filled(account, 401, '{"title":"Unauthorized","status":401}')
        if account.behaviour == "missing_scope":
            body = '{"title":"Client Forbidden","reason":"client-not-enrolled","status":403}'
            return self._zero_filled(account, 403, body)
        if self._inside_x_window(account):
            return self._zero_filled(account, 429, '{"title":"Too Many Requests","status":429}')
        return None

    def _inside_x_window(self, account: SimAccount) -> bool:
        state = self.state.accounts.setdefault(account.id, _AccountState())
        now = self.clock()
        last = state.last_platform_lookup
        if last is not None and now - last < self.scenario.x_window:
            return True
        state.last_platform_lookup = now
        return False

    async def _health(self, request: web.Request) -> web.Response:
        # From UniPost's database (social_account_health.go): no platform call, no quota.
        account = self.accounts.get(request.match_info["account_id"])
        if account is None:
            raise _ApiError(404, "NOT_FOUND", "Account not found")
        return _ok(request, {"data": _health_data(account, self.clock(), self.started)})

    async def _list_accounts(self, request: web.Request) -> web.Response:
        if self.fail_listing:
            raise _ApiError(500, "INTERNAL_ERROR", "Failed to list accounts")
        query = request.query
        rows = [
            _listed(a)
            for a in list(self.accounts.values())
            # Listed with an API key, disconnected accounts are left out.
            if a.behaviour != "disconnected"
            and query.get("platform", a.platform) == a.platform
            and query.get("external_user_id", a.external_user_id) == a.external_user_id
            and query.get("profile_id", SIM_PROFILE_ID) == SIM_PROFILE_ID
        ]
        return _ok(request, {"data": rows, "meta": {"total": len(rows), "limit": len(rows)}})


SIM_PROFILE_ID = "pr_sim_default"


def _listed(account: SimAccount) -> dict[str, Any]:
    """One row of GET /v1/accounts, with the fields the real server sends."""
    row: dict[str, Any] = {
        "id": account.id,
        "platform": account.platform,
        "account_name": account.name,
        "username": account.name,
        "display_name": account.name,
        "external_account_id": f"ext_{zlib.crc32(account.id.encode()):08x}",
        "profile_id": SIM_PROFILE_ID,
        "profile_name": "Default",
        "status": "reconnect_required" if account.behaviour == "needs_reconnect" else "active",
        "connection_type": "byo",
        "scope": [],
        "identity_refresh_required": False,
        "connected_at": "2026-04-02T10:00:00Z",
        "last_connected_at": "2026-04-02T10:00:00Z",
    }
    if account.external_user_id is not None:  # omitted when null
        row["external_user_id"] = account.external_user_id
    return row


def _health_data(account: SimAccount, now: float, started: float) -> dict[str, Any]:
    """The account's health as GET /v1/accounts/{id}/health answers it."""
    days = 86400.0  # real days: a token's expiry is a date, whatever the time scale
    data: dict[str, Any] = {
        "social_account_id": account.id,
        "platform": account.platform,
        "status": "disconnected" if account.behaviour == "disconnected" else account.health,
    }
    if account.last_post_days_ago is not None:
        data["last_successful_post_at"] = rfc3339nano(now - account.last_post_days_ago * days)
    if account.last_error is not None:
        data["last_error"] = {
            "code": account.last_error,
            "message": account.last_error_message,
            "occurred_at": rfc3339nano(now - days / 24),
        }
    if account.token_expires_in_days is not None:
        # Fixed from the simulator's start, not from each answer: a date, not a countdown.
        data["token_expires_at"] = rfc3339nano(started + account.token_expires_in_days * days)
    return data


def _platform_error(account: SimAccount) -> _ApiError:
    """A 502 as the platform's adapter reports it."""
    if account.platform == "tiktok":
        return _ApiError(
            502,
            "TIKTOK_TEMPORARY_ERROR",
            "TikTok is temporarily unavailable; try again later",
            {"reason": "provider_temporary_error"},
        )
    return _ApiError(
        502, "UPSTREAM_ERROR", f"Failed to fetch account metrics from {account.platform}"
    )


class _ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class _EdgeError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def rfc3339nano(seconds: float) -> str:
    """Go's time.RFC3339Nano in UTC: up to nine fractional digits, trailing zeros trimmed."""
    whole, nanos = divmod(round(seconds * 1e9), 10**9)
    text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _three_figures(count: int) -> int:
    if count < 1000:
        return count
    step: int = 10 ** (len(str(count)) - 3)
    return count // step * step


def _ok(request: web.Request, payload: dict[str, Any]) -> web.Response:
    return web.json_response({**payload, "request_id": _request_id.get()})


def _error(
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str],
    details: dict[str, Any] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "normalized_code": code.lower(), "message": message}
    if details:
        error["details"] = details
    body = {"error": error, "request_id": request_id}
    return web.json_response(body, status=status, headers=dict(headers))


async def start_simulator(
    scenario: Scenario, host: str | None, port: int
) -> tuple[web.AppRunner, str]:
    """Start the simulator; returns its runner and base URL (port 0 picks a free port)."""
    runner = web.AppRunner(Simulator(scenario).app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{host or bound_host}:{bound_port}"


def main(argv: Sequence[str] | None = None) -> int:
    """`unipost-exporter simulate` / `python -m exporter.simulator`."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen_address(args.listen_address)
        scenario = load_scenario(args.scenario_file) if args.scenario_file else demo_scenario()
    except (ValueError, ScenarioError) as exc:
        print(f"unipost-exporter simulate: {exc}", file=sys.stderr)
        return 1
    if args.seed is not None:
        scenario = replace(scenario, seed=args.seed)
    if args.time_scale is not None:
        scenario = replace(scenario, time_scale=args.time_scale)

    async def serve() -> int:
        try:
            runner, url = await start_simulator(scenario, host, port)
        except OSError as exc:
            # One clear line, as the exporter gives: not a trace.
            reason = exc.strerror or str(exc)
            print(
                f"unipost-exporter simulate: cannot listen on {args.listen_address}: {reason}",
                file=sys.stderr,
            )
            return 1
        print(
            f"UniPost simulator on {url} (API key: {scenario.api_key}; "
            f"{len(scenario.accounts)} accounts; seed {scenario.seed})",
            file=sys.stderr,
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
        return 0

    return asyncio.run(serve())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unipost-exporter simulate", description="Serve a simulated UniPost workspace."
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=":8080",
        metavar="HOST:PORT",
        help="where to serve the simulated API (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario.file",
        dest="scenario_file",
        default=None,
        metavar="PATH",
        help="a YAML scenario: accounts, their behaviours, the limiter (default: the demo "
        "workspace of 13 accounts, key up_test_simulator)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the follower curves and of the occasional 502 (default: the scenario's, 1)",
    )
    parser.add_argument(
        "--time-scale",
        dest="time_scale",
        type=float,
        default=None,
        metavar="FACTOR",
        help="simulated seconds per real second; 3600 shows a day's growth in 24 s "
        "(default: the scenario's, 1)",
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
