"""The config file's schema: every section as a frozen dataclass, with its defaults.

    >>> PollingConfig().interval
    300.0

Defaults live here and nowhere else; config.py fills these from the file, and
docs/configuration.md and config.example.yaml show them (a test holds them to this).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter import platforms

DEFAULT_BASE_URL = "https://api.unipost.dev"
# UniPost's own server write timeout: giving up sooner does not stop its platform call,
# which still spends the platform's quota (for X, the account's 15-minute window).
DEFAULT_TIMEOUT = 120.0
DEFAULT_REQUESTS_PER_MINUTE = 60.0
DEFAULT_INTERVAL = 300.0
# The platforms' own rate limits: X's free tier allows about one lookup per 15 minutes.
DEFAULT_PLATFORM_INTERVALS: Mapping[str, float] = platforms.FLOORS
DEFAULT_MAX_BACKOFF = 6 * 3600.0
# GET /v1/accounts/{id}/health reads UniPost's database only: no platform quota is spent.
DEFAULT_HEALTH_INTERVAL = 3600.0
DEFAULT_REFRESH_INTERVAL = 3600.0
# The reads of the workspace (UniPost's database only). Analytics: UniPost refreshes hourly.
DEFAULT_USAGE_INTERVAL = 300.0
DEFAULT_DELIVERY_INTERVAL = 60.0
DEFAULT_ANALYTICS_INTERVAL = 1800.0

# Labels the exporter itself puts on per-account series; static labels may not reuse them.
RESERVED_LABELS = frozenset(
    {"account_id", "platform", "field", "status", "account_name", "upstream_status", "code"}
)
# The label naming the workspace, in the several-workspaces form.
WORKSPACE_LABEL = "workspace"


@dataclass(frozen=True)
class UniPostConfig:
    """How to reach UniPost and how much of its budget this exporter may spend."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE


@dataclass(frozen=True)
class PollingConfig:
    """How often accounts are polled, and the floors and caps around that."""

    interval: float = DEFAULT_INTERVAL
    platform_intervals: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_PLATFORM_INTERVALS)
    )
    max_backoff: float = DEFAULT_MAX_BACKOFF
    # How often each account's health is read; 0: never.
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    # How often the workspace's plan usage, publishing queue and analytics are read; 0: never.
    usage_interval: float = DEFAULT_USAGE_INTERVAL
    delivery_interval: float = DEFAULT_DELIVERY_INTERVAL
    analytics_interval: float = DEFAULT_ANALYTICS_INTERVAL

    def floor_for(self, platform: str) -> float:
        """The shortest interval allowed for a platform (0 when it has none)."""
        return self.platform_intervals.get(platform, 0.0)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One account to poll."""

    id: str
    interval: float | None = None
    labels: tuple[tuple[str, str], ...] = ()
    health_interval: float | None = None


@dataclass(frozen=True)
class DiscoveryConfig:
    """Whether and how to find accounts with GET /v1/accounts."""

    enabled: bool = False
    platforms: tuple[str, ...] = ()  # empty: all platforms
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WorkspaceConfig:
    """One UniPost workspace: its key and budget, and the accounts polled with them."""

    unipost: UniPostConfig
    accounts: tuple[AccountConfig, ...]
    discovery: DiscoveryConfig = DiscoveryConfig()
    # None in the single-workspace form, whose series carry no `workspace` label.
    name: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole validated configuration: one or more workspaces, one polling policy."""

    polling: PollingConfig
    workspaces: tuple[WorkspaceConfig, ...]

    @property
    def account_count(self) -> int:
        """Accounts listed in the config, over every workspace."""
        return sum(len(ws.accounts) for ws in self.workspaces)
