"""The simulated workspace: its accounts' curves, the platforms' failures, the limiter and
the bodies UniPost's real server answers with (bugfreev587/unipost, api/).

    >>> from exporter.simulator import demo_scenario
    >>> workspace = SimulatedWorkspace(demo_scenario(), clock=lambda: 1_777_000_000.0)
    >>> workspace.metrics("sa_instagram_studio")["platform"]
    'instagram'
"""

from __future__ import annotations

import itertools
import math
import random
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter import platforms
from exporter.simulator import workspace as answers
from exporter.simulator.scenario import Scenario, SimAccount


@dataclass
class _AccountState:
    last_platform_lookup: float | None = None


@dataclass
class SimulatorState:
    """What the simulator remembers between requests."""

    accounts: dict[str, _AccountState] = field(default_factory=dict)
    requests: int = 0


class SimulatedWorkspace:
    """A UniPost workspace as its server answers it: the data of each endpoint's answer, or
    ApiFailure / EdgeFailure. Deterministic for a given seed and request order."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = time.time) -> None:
        self.scenario = scenario
        self.clock = clock
        self.started = clock()
        self.state = SimulatorState()
        self.limiter = TokenBucket(
            scenario.rate_limit_refill_per_second, scenario.rate_limit_capacity, clock
        )
        # The workspace's accounts; tests may connect and disconnect some while it runs.
        self.accounts = {a.id: a for a in scenario.accounts}
        # When set, GET /v1/accounts answers 500 INTERNAL_ERROR (a failing refresh).
        self.fail_listing = False
        # The key the workspace accepts; tests revoke or rotate it while the simulator runs.
        self.api_key = scenario.api_key
        # The workspace's plan; tests change it while the simulator runs.
        self.plan = scenario.plan
        self._rng = random.Random(scenario.seed)
        self._request_ids = itertools.count(1)

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
        fetched_at = rfc3339nano(self.clock())
        counts = (followers, following, posts)
        return metrics_data(account.id, account.platform, counts, specific, fetched_at)

    def _zero_filled(self, account: SimAccount, status: int, body: str) -> dict[str, Any]:
        return self._data(account, 0, 0, 0, {"upstream_status": status, "upstream_error": body})

    def take_token(self) -> tuple[bool, dict[str, str]]:
        """A request against the workspace limiter: allowed or not, and its headers."""
        allowed = self.limiter.take()
        return allowed, self.limiter.headers(self.clock(), refused=not allowed)

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

    def metrics(self, account_id: str) -> dict[str, Any]:
        """GET /v1/accounts/{id}/metrics: the answer's data, or ApiFailure/EdgeFailure."""
        # In the order of the real handler (social_account_metrics.go) and its adapters.
        account = self.accounts.get(account_id)
        if account is None:
            raise ApiFailure(404, "NOT_FOUND", "Account not found")
        if account.behaviour == "disconnected":
            raise ApiFailure(
                409,
                "ACCOUNT_DISCONNECTED",
                "Account is disconnected — reconnect before fetching metrics",
            )
        if account.behaviour == "not_supported" or account.platform not in platforms.WITH_METRICS:
            raise ApiFailure(
                501,
                "NOT_SUPPORTED",
                f"Account metrics are not available for {account.platform} yet",
            )
        if account.behaviour == "edge_error":
            raise EdgeFailure(502)
        name = platforms.display_name(account.platform)
        if account.behaviour == "needs_reconnect" or (
            account.behaviour == "missing_scope" and account.platform == "tiktok"
        ):
            details = (
                {"reason": "analytics_scope_required"} if account.platform == "tiktok" else None
            )
            raise ApiFailure(
                409, "NEEDS_RECONNECT", f"Reconnect {name} to enable analytics.", details
            )
        if account.behaviour == "throttled":
            raise ApiFailure(
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
                return zero_filled
        return self.snapshot(account)

    def health(self, account_id: str) -> dict[str, Any]:
        """GET /v1/accounts/{id}/health: the answer's data."""
        # From UniPost's database (social_account_health.go): no platform call, no quota.
        account = self.accounts.get(account_id)
        if account is None:
            raise ApiFailure(404, "NOT_FOUND", "Account not found")
        return _health_data(account, self.clock(), self.started)

    def listing(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """GET /v1/accounts: its rows, filtered as the query asks."""
        if self.fail_listing:
            raise ApiFailure(500, "INTERNAL_ERROR", "Failed to list accounts")
        rows = [
            _listed(a)
            for a in list(self.accounts.values())
            # Listed with an API key, disconnected accounts are left out.
            if a.behaviour != "disconnected"
            and query.get("platform", a.platform) == a.platform
            and query.get("external_user_id", a.external_user_id) == a.external_user_id
            and query.get("profile_id", SIM_PROFILE_ID) == SIM_PROFILE_ID
        ]
        return rows

    # -- the workspace's own reads (UniPost's database; no platform call) ----------------------

    def workspace_read(self, path: str) -> Any:
        """The data of one of WORKSPACE_READ_PATHS, or ApiFailure."""
        if path == "/v1/usage":
            return self.usage()
        if path == "/v1/post-delivery-jobs/summary":
            return self.delivery_summary()
        return self.analytics(path.removeprefix("/v1/analytics/"))

    def usage(self) -> dict[str, Any]:
        """GET /v1/usage: the answer's data."""
        return answers.usage_data(self.plan, self.clock(), self.simulated_days())

    def delivery_summary(self) -> dict[str, Any]:
        """GET /v1/post-delivery-jobs/summary: the answer's data."""
        return answers.delivery_summary_data(
            self.simulated_days(), self.scenario.dead_delivery_jobs
        )

    def analytics(self, report: str) -> Any:
        """GET /v1/analytics/{report} (by-platform, summary, platforms): the answer's data,
        or the plan gate's 402, which runs before the handler."""
        if self.plan in answers.PLANS_WITHOUT_ANALYTICS:
            raise ApiFailure(402, "PLAN_FEATURE_NOT_AVAILABLE", answers.ANALYTICS_NOT_IN_PLAN)
        accounts, days, now = list(self.accounts.values()), self.simulated_days(), self.clock()
        if report == "by-platform":
            return answers.by_platform_data(accounts, days)
        if report == "summary":
            return answers.summary_data(accounts, days, now)
        order = random.Random(f"{self.scenario.seed}:{self.state.requests}")
        return answers.platforms_data(accounts, now, order)


SIM_PROFILE_ID = "pr_sim_default"
# The workspace's own reads the simulator answers (SimulatedWorkspace.workspace_read).
WORKSPACE_READ_PATHS = (
    "/v1/usage",
    "/v1/post-delivery-jobs/summary",
    "/v1/analytics/by-platform",
    "/v1/analytics/summary",
    "/v1/analytics/platforms",
)


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


def _platform_error(account: SimAccount) -> ApiFailure:
    """A 502 as the platform's adapter reports it."""
    if account.platform == "tiktok":
        return ApiFailure(
            502,
            "TIKTOK_TEMPORARY_ERROR",
            "TikTok is temporarily unavailable; try again later",
            {"reason": "provider_temporary_error"},
        )
    return ApiFailure(
        502, "UPSTREAM_ERROR", f"Failed to fetch account metrics from {account.platform}"
    )


class ApiFailure(Exception):
    """An answer in UniPost's error envelope: its status, code, message and details."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class EdgeFailure(Exception):
    """A plain-text 5xx from the hosting edge in front of UniPost, not the envelope."""

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


# -- what every simulated answer is made of (the simulator's, and the tests' fake's) --------


class TokenBucket:
    """UniPost's workspace limiter: `rate` tokens a second refill it up to `burst`, and each
    request takes one or is refused."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float]) -> None:
        self.rate, self.burst, self.now = rate, burst, now
        self.tokens = float(burst)
        self.updated = now()
        self.refused = 0

    def room(self) -> float:
        """How many tokens the bucket holds at most."""
        return self.burst

    def take(self) -> bool:
        """Take a token for a request; False (refused) when none is left."""
        now = self.now()
        self.tokens = min(self.room(), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            self.refused += 1
            return False
        self.tokens -= 1
        return True

    def headers(self, wall: float, refused: bool) -> dict[str, str]:
        """The X-UniPost-RateLimit-* headers now (`wall`: Unix time), and Retry-After on a
        refusal."""
        headers = {
            "X-UniPost-RateLimit-Limit": f"{self.burst:g}",
            "X-UniPost-RateLimit-Remaining": str(math.floor(self.tokens)),
            "X-UniPost-RateLimit-Reset": str(
                math.ceil(wall + (self.burst - self.tokens) / self.rate)
            ),
        }
        if refused:
            headers["Retry-After"] = str(max(1, math.ceil((1 - self.tokens) / self.rate)))
        return headers


def error_body(
    code: str, message: str, request_id: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """UniPost's error envelope (the handlers' writeError)."""
    error: dict[str, Any] = {"code": code, "normalized_code": code.lower(), "message": message}
    if details:
        error["details"] = details
    return {"error": error, "request_id": request_id}


def metrics_data(
    account_id: str,
    platform: str,
    counts: tuple[Any, Any, Any],
    specific: dict[str, Any] | None,
    fetched_at: str,
) -> dict[str, Any]:
    """The `data` of GET /v1/accounts/{id}/metrics: followers, following, posts as given;
    `platform_specific` left out when None (omitempty)."""
    followers, following, posts = counts
    data: dict[str, Any] = {
        "social_account_id": account_id,
        "platform": platform,
        "follower_count": followers,
        "following_count": following,
        "post_count": posts,
    }
    if specific is not None:
        data["platform_specific"] = specific
    data["fetched_at"] = fetched_at
    return data
