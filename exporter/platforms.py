"""What the exporter knows about each platform UniPost connects.

    >>> from exporter import platforms
    >>> platforms.display_name("youtube")
    'YouTube'
    >>> platforms.from_id("sa_twitter_1")
    'twitter'

Config takes its default floors from here, parse the counts a platform never fills and the
analytics counters it fills, and the simulator and the demo which platforms answer metrics
and how they are named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    """One platform as UniPost's adapters treat it."""

    name: str  # UniPost's platform name, as in account IDs (`sa_<name>_...`)
    # As UniPost's messages write it ("Reconnect TikTok to enable analytics."): its server
    # spells out four platforms and names every other one as it is.
    display: str
    # Whether UniPost's adapter implements account metrics (others answer 501).
    has_metrics: bool = False
    # The counts the adapter never fills: they come back as 0, which is not data.
    never_filled: tuple[str, ...] = ()
    # The default shortest polling interval (seconds), from the platform's own rate limit;
    # 0: none.
    floor: float = 0.0
    # The team the demo's accounts on it are labelled with (`social`, `video`, `other`).
    kind: str = "other"
    # The post counters its analytics adapter fills (GetAnalytics); UniPost sends 0 for
    # every other one, which means "not provided", not "no engagement".
    engagement: tuple[str, ...] = ()


# X's free tier allows about one user lookup per account per 15 minutes.
_X_WINDOW = 900.0

PLATFORMS: Mapping[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            "twitter",
            "twitter",
            has_metrics=True,
            floor=_X_WINDOW,
            kind="social",
            engagement=("impressions", "likes", "comments", "shares", "saves"),
        ),
        Platform(
            "instagram",
            "Instagram",
            has_metrics=True,
            kind="social",
            engagement=("reach", "likes", "comments", "shares", "saves"),
        ),
        Platform(
            "threads",
            "Threads",
            has_metrics=True,
            never_filled=("following_count", "post_count"),
            kind="social",
            engagement=("impressions", "likes", "comments", "shares"),
        ),
        Platform(
            "tiktok",
            "TikTok",
            has_metrics=True,
            kind="video",
            engagement=("likes", "comments", "shares", "video_views"),
        ),
        Platform(
            "youtube",
            "YouTube",
            has_metrics=True,
            never_filled=("following_count",),
            kind="video",
            engagement=("likes", "comments", "video_views"),
        ),
        Platform("linkedin", "linkedin", engagement=("likes", "comments")),
        Platform("bluesky", "bluesky", engagement=("likes", "comments", "shares")),
        Platform(
            "pinterest",
            "pinterest",
            engagement=("impressions", "likes", "comments", "saves", "clicks"),
        ),
        Platform(
            "facebook",
            "facebook",
            engagement=("likes", "comments", "shares", "clicks", "video_views"),
        ),
    )
}
NAMES = frozenset(PLATFORMS)
WITH_METRICS = frozenset(p.name for p in PLATFORMS.values() if p.has_metrics)
# Platform -> the counts its adapter never fills, for the platforms that have some.
NEVER_FILLED: Mapping[str, tuple[str, ...]] = {
    p.name: p.never_filled for p in PLATFORMS.values() if p.never_filled
}
# The floors polling starts from (polling.platform_intervals adds to and overrides them).
FLOORS: Mapping[str, float] = {p.name: p.floor for p in PLATFORMS.values() if p.floor}
# The post counters UniPost's analytics aggregate, in its order (analytics by-platform).
ENGAGEMENT_METRICS = (
    "impressions", "reach", "likes", "comments", "shares", "saves", "clicks", "video_views",
)  # fmt: skip


def engagement_filled(platform: str) -> tuple[str, ...]:
    """The counters the platform's analytics adapter fills; none known for another platform."""
    known = PLATFORMS.get(platform)
    return known.engagement if known else ()


def display_name(platform: str) -> str:
    """How UniPost's messages write the platform's name."""
    known = PLATFORMS.get(platform)
    return known.display if known else platform


def from_id(account_id: str) -> str:
    """The platform named in an ID like `sa_twitter_1`, or `unknown`."""
    parts = account_id.split("_")
    if len(parts) >= 3 and parts[0] == "sa" and parts[1] in PLATFORMS:
        return parts[1]
    return "unknown"
