"""What the simulator simulates: a workspace's accounts, their curves and behaviours, and
the limiter; the demo's workspace; and scenario files, validated like the config (every
problem, each with its key).

    >>> scenario_from_dict({"seed": 3}).seed
    3
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from exporter.durations import DURATION_HINT, parse_duration
from exporter.validation import ConfigError, Problems, load_yaml, read_text

DEFAULT_SIM_KEY = "up_test_simulator"
TRENDS = ("growth", "plateau", "decline")
PLANS = ("free", "api", "basic", "growth", "team", "enterprise")
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
    # The workspace's plan (GET /v1/usage): free (no analytics: 402), api, basic, growth,
    # team or enterprise (unlimited posts).
    plan: str = "basic"
    # Delivery jobs that failed for good (GET /v1/post-delivery-jobs/summary's dead_count).
    dead_delivery_jobs: int = 0


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
    """The built-in workspace: on a paid plan, with one delivery job dead in its queue."""
    return Scenario(accounts=DEMO_ACCOUNTS, dead_delivery_jobs=1)


class ScenarioError(ConfigError):
    """A scenario that cannot be used: every problem, each naming its key."""


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML file (keys as in Scenario and SimAccount)."""
    try:
        raw = load_yaml(read_text(path, "scenario"))
    except ConfigError as exc:
        raise ScenarioError(exc.problems) from None
    return scenario_from_dict(raw if raw is not None else {})


def scenario_from_dict(raw: Any) -> Scenario:
    """Build a Scenario from parsed YAML; ScenarioError names every unknown key and bad value."""
    v = ScenarioValidator()
    scenario = v.scenario(raw)
    if v.problems or scenario is None:
        raise ScenarioError(v.problems or ["scenario must be a mapping"])
    return scenario


_SCENARIO_KEYS = frozenset(f.name for f in fields(Scenario))
_ACCOUNT_KEYS = frozenset(f.name for f in fields(SimAccount))
# Per-account keys and what each must be (the rest: numbers).
_CHOICES = {"trend": TRENDS, "behaviour": BEHAVIOURS, "health": ("ok", "degraded")}
_DAYS = ("token_expires_in_days", "last_post_days_ago")
_TEXTS = ("last_error", "last_error_message", "name", "external_user_id")


class ScenarioValidator(Problems):
    """A scenario file, key by key."""

    def scenario(self, raw: Any) -> Scenario | None:
        top = self.mapping(raw, "", set(_SCENARIO_KEYS))
        if top is None:
            return None
        defaults = Scenario(accounts=())
        values: dict[str, Any] = {}
        for key, value in top.items():
            if key != "accounts":
                values[key] = self._value(key, value, getattr(defaults, key))
        node = top.get("accounts")
        if node is None:
            accounts = demo_scenario().accounts
        elif not isinstance(node, list):
            self.err("accounts", "must be a list")
            accounts = ()
        else:
            found = [self._account(item, f"accounts[{i}]") for i, item in enumerate(node)]
            accounts = tuple(a for a in found if a is not None)
        return replace(defaults, accounts=accounts, **values)

    def _value(self, key: str, value: Any, default: Any) -> Any:
        if key == "x_window" and isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError:
                self.err(key, f'"{value}" is not a duration ({DURATION_HINT})')
                return default
        if key == "plan" and value not in PLANS:
            self.err(key, f"must be one of {', '.join(PLANS)}")
            return default
        if isinstance(default, str):
            if not isinstance(value, str):
                self.err(key, "must be a string")
                return default
            return value
        if isinstance(default, bool):
            if not isinstance(value, bool):
                self.err(key, "must be true or false")
                return default
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.err(key, "must be a non-negative number")
            return default
        return type(default)(value)

    def _account(self, raw: Any, where: str) -> SimAccount | None:
        m = self.mapping(raw, where, set(_ACCOUNT_KEYS))
        if m is None:
            return None
        ok = True
        for key in ("id", "platform"):
            if not isinstance(m.get(key), str) or not m[key]:
                self.err(f"{where}.{key}", "is required")
                ok = False
        for key, choices in _CHOICES.items():
            if key in m and m[key] not in choices:
                said = " or ".join(choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
                self.err(f"{where}.{key}", f"must be {said}")
                ok = False
        if not isinstance(m.get("hidden_subscribers", False), bool):
            self.err(f"{where}.hidden_subscribers", "must be true or false")
            ok = False
        for key in _DAYS:
            value = m.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                self.err(f"{where}.{key}", "must be a number of days, or null")
                ok = False
        for key in _TEXTS:
            if m.get(key) is not None and not isinstance(m[key], str):
                self.err(f"{where}.{key}", "must be a string")
                ok = False
        return SimAccount(**m) if ok else None
