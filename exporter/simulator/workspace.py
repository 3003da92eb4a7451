"""The simulated workspace's own reads, as UniPost's server answers them from its database:
plan usage (GET /v1/usage), the publishing queue (GET /v1/post-delivery-jobs/summary) and
analytics over the default window (GET /v1/analytics/by-platform, /summary, /platforms).

Every figure is a pure function of the accounts, the plan and the simulated time, and grows
with it: posts accumulate over the month, engagement over the window.

    >>> usage_data("team", 1_777_000_000.0, days=2.0)["post_limit"]
    -1
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter import platforms
from exporter.simulator.scenario import SimAccount

# The plans and their monthly post limits (-1: unlimited), as UniPost's migrations seed them.
PLAN_LIMITS = {"free": 100, "api": 1000, "basic": 2500, "growth": 7500, "team": -1,
               "enterprise": -1}  # fmt: skip
# Only these plans have the scheduling quota policy (warning, scheduling_allowed=false).
_QUOTA_POLICY_PLANS = ("api", "basic", "growth")
# Analytics is in every plan but free: free gets 402 PLAN_FEATURE_NOT_AVAILABLE.
PLANS_WITHOUT_ANALYTICS = ("free",)
ANALYTICS_NOT_IN_PLAN = (
    "Analytics requires any paid plan ($10/mo and up) — upgrade at unipost.dev/pricing"
)
# The analytics capability map's platforms (its `supported_metrics` list is UniPost's own
# hard-coded one, which does not match what the adapters fill; the simulator answers with
# a list of the same kind).
_SUPPORTED_METRICS = {
    "twitter": ["likes", "comments", "shares", "engagement_rate"],
    "instagram": ["impressions", "reach", "likes", "comments", "shares", "saves",
                  "engagement_rate"],
    "threads": ["views", "likes", "comments", "shares"],
    "tiktok": ["views", "likes", "comments", "shares"],
    "youtube": ["views", "likes", "comments", "shares"],
    "linkedin": ["likes", "comments", "shares"],
    "bluesky": ["likes", "comments", "shares"],
    "pinterest": ["impressions", "likes", "comments", "saves", "clicks"],
    "facebook": ["impressions", "likes", "comments", "shares", "clicks", "video_views",
                 "engagement_rate"],
}  # fmt: skip
# Each counter per post, before growth (the adapters leave the others at 0).
_PER_POST = {"impressions": 900, "reach": 650, "likes": 42, "comments": 6, "shares": 4,
             "saves": 3, "clicks": 5, "video_views": 1400}  # fmt: skip
_WINDOW_DAYS = 30
# Posts of the window that are drafts, still scheduled, or failed (the rest published).
_DRAFTS, _SCHEDULED, _FAILED = 2, 5, 1


def _month(now: float) -> tuple[str, datetime]:
    day = datetime.fromtimestamp(now, UTC)
    start = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), following


def usage_data(plan: str, now: float, days: float) -> dict[str, Any]:
    """GET /v1/usage's data (billing.go usageResponse): this UTC month's posts."""
    limit = PLAN_LIMITS[plan]
    base = 0.3 * limit if limit > 0 else 300
    posts = math.floor(base + days * 6)
    if limit > 0:
        posts = min(posts, limit)
    scheduled = 12 + math.floor(days) % 5
    effective = posts + scheduled
    period, resets = _month(now)
    data: dict[str, Any] = {
        "period": period,
        "post_count": posts,
        "scheduled_count": scheduled,
        "quota_hold_count": 0,
        "effective_usage": effective,
        "post_limit": limit,
        "plan": plan,
        "percentage": round(posts / limit * 100, 2) if limit > 0 else 0.0,
        "effective_percentage": round(effective / limit * 100, 2) if limit > 0 else 0.0,
        "scheduling_allowed": True,
        "resets_at": resets.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if plan in _QUOTA_POLICY_PLANS:
        if effective >= limit:
            data["warning"] = "scheduled_quota_reached"
            data["scheduling_allowed"] = False
        elif effective >= 0.8 * limit:
            data["warning"] = "approaching_limit"
    return data


def delivery_summary_data(days: float, dead: int) -> dict[str, Any]:
    """GET /v1/post-delivery-jobs/summary's data: the queue changes by the simulated hour."""
    hour = math.floor(days * 24)
    return {
        "pending_count": 2 + hour % 4,
        "running_count": hour % 2,
        "retrying_count": math.floor(days) % 3,
        "dead_count": dead,
        "recovered_today_count": hour % 24 // 3,
    }


def _window_posts(account: SimAccount) -> int:
    return max(0, round(account.posts_per_day * _WINDOW_DAYS))


def _by_platform(accounts: Iterable[SimAccount]) -> dict[str, list[SimAccount]]:
    out: dict[str, list[SimAccount]] = {}
    for account in accounts:
        out.setdefault(account.platform, []).append(account)
    return out


def by_platform_data(accounts: Iterable[SimAccount], days: float) -> list[dict[str, Any]]:
    """GET /v1/analytics/by-platform's data: one row per platform with posts in the window,
    sorted by platform; the counters its adapter does not fill are 0."""
    rows = []
    for platform, members in sorted(_by_platform(accounts).items()):
        posts = sum(_window_posts(a) for a in members)
        if posts == 0:
            continue
        filled = platforms.engagement_filled(platform)
        scale = sum(a.followers for a in members) / 10_000 + 1
        growth = 1 + 0.03 * days
        counters = {
            metric: round(posts * _PER_POST[metric] * scale * growth) if metric in filled else 0
            for metric in platforms.ENGAGEMENT_METRICS
        }
        rows.append({"platform": platform, "posts": posts,
                     "accounts": sum(1 for a in members if _window_posts(a)), **counters,
                     "engagement_rate": _engagement_rate(counters)})  # fmt: skip
    return rows


def _engagement_rate(counters: dict[str, int]) -> float:
    impressions = counters["impressions"]
    if impressions <= 0:
        return 0.0
    interactions = sum(counters[m] for m in ("likes", "comments", "shares", "saves", "clicks"))
    return round(interactions / impressions, 4)


def summary_data(accounts: Iterable[SimAccount], days: float, now: float) -> dict[str, Any]:
    """GET /v1/analytics/summary's data over the default window (30 UTC days to today)."""
    rows = by_platform_data(accounts, days)
    total = sum(row["posts"] for row in rows) + _DRAFTS
    failed = _FAILED if total > _DRAFTS else 0
    scheduled = _SCHEDULED if total > _DRAFTS + failed + _SCHEDULED else 0
    published = max(0, total - _DRAFTS - failed - scheduled)
    engagement = {m: sum(row[m] for row in rows) for m in platforms.ENGAGEMENT_METRICS}
    today = datetime.fromtimestamp(now, UTC).date()
    return {
        "period": {
            "start": (today - timedelta(days=_WINDOW_DAYS - 1)).isoformat(),
            "end": today.isoformat(),
        },
        "posts": {
            "total": total,
            "published": published,
            "scheduled": scheduled,
            "failed": failed,
            "failed_rate": round(failed / (published + failed), 4) if published + failed else 0,
        },
        "engagement": {**engagement, "engagement_rate": _engagement_rate(engagement)},
        "vs_previous_period": {
            "impressions_change": 0.12,
            "likes_change": 0.08,
            "engagement_change": -0.03,
        },
    }


def platforms_data(
    accounts: Iterable[SimAccount], now: float, order: random.Random
) -> list[dict[str, Any]]:
    """GET /v1/analytics/platforms' data: all nine platforms of the capability map, in the
    random order of a Go map's iteration; disconnected accounts are left out."""
    grouped = _by_platform(a for a in accounts if a.behaviour != "disconnected")
    fetched = datetime.fromtimestamp(math.floor(now / 3600) * 3600 - 600, UTC)
    out = []
    for platform, supported in _SUPPORTED_METRICS.items():
        members = grouped.get(platform, [])
        reconnect = sum(1 for a in members if a.behaviour == "needs_reconnect")
        rows = sum(_window_posts(a) for a in members)
        failing = any(a.behaviour == "throttled" for a in members)
        entry: dict[str, Any] = {
            "platform": platform,
            "supported_metrics": supported,
            "refresh_supported": True,
            "account_count": len(members),
            "active_account_count": len(members) - reconnect,
            "needs_reconnect_count": reconnect,
            "analytics_row_count": rows,
        }
        if rows:
            entry["last_successful_fetch_at"] = fetched.strftime("%Y-%m-%dT%H:%M:%SZ")
        if failing:
            entry["last_failure_reason"] = "provider_rate_limited"
        entry["health"] = _health(len(members), reconnect, rows, failing)
        out.append(entry)
    order.shuffle(out)
    return out


def _health(accounts: int, reconnect: int, rows: int, failing: bool) -> str:
    """analyticsPlatformHealth, in its order."""
    if accounts == 0:
        return "not_connected"
    if reconnect and reconnect == accounts:
        return "needs_reconnect"
    if reconnect:
        return "partial_reconnect_required"
    if rows == 0:
        return "pending"
    return "degraded" if failing else "ready"
