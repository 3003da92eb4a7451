"""The workspace reads' facts as metric families, built from each store at scrape time.

    unipost_plan_info{plan="basic"} 1.0
    unipost_delivery_jobs{state="dead"} 2.0
    unipost_analytics_engagement{metric="impressions",platform="twitter"} 18400.0

A family with no sample is left out; a value UniPost does not provide (a plan without a
limit, a counter the platform's adapter never fills) has no series, never a 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.store import Store, StoreSource
from exporter.workspace_answers import (
    DELIVERY_STATES,
    HEALTH_STATES,
    READS,
    Analytics,
    DeliveryJobs,
    Usage,
)

_FROM_READS = "Read from the last background read of UniPost, not fetched at scrape time."
_WINDOW = "In UniPost's analytics window: posts created in the last 30 UTC days, today included."

# name -> (type, help), in exposition order.
FAMILIES: dict[str, tuple[str, str]] = {
    "unipost_plan_info": ("gauge", "Always 1; the workspace's UniPost plan as a label."),
    "unipost_plan_post_limit": (
        "gauge", "Posts a month the plan allows; absent when unlimited.",
    ),
    "unipost_usage_posts": (
        "gauge", "This UTC month's posts by state: published (post_count), scheduled and "
        "quota_hold.",
    ),
    "unipost_usage_period_end_timestamp_seconds": (
        "gauge", "Unix time at which the month's usage resets (resets_at).",
    ),
    "unipost_usage_scheduling_allowed": (
        "gauge", "1 if the plan lets the workspace schedule more posts this month, else 0.",
    ),
    "unipost_delivery_jobs": (
        "gauge", "Delivery jobs in UniPost's publishing queue by state: pending, running, "
        "retrying, dead (failed for good, not dismissed).",
    ),
    "unipost_delivery_jobs_recovered_today": (
        "gauge", "Delivery jobs that failed and then succeeded on retry today.",
    ),
    "unipost_analytics_available": (
        "gauge", "1 if the workspace's plan includes analytics; 0 on 402 "
        "PLAN_FEATURE_NOT_AVAILABLE (then no other analytics series exists).",
    ),
    "unipost_analytics_posts": ("gauge", f"Posts by platform. {_WINDOW}"),
    "unipost_analytics_accounts": ("gauge", f"Accounts with posts, by platform. {_WINDOW}"),
    "unipost_analytics_engagement": (
        "gauge", "Latest lifetime engagement counters of the window's posts, by platform and "
        "metric; only the counters the platform provides (never 0 for one it does not). "
        f"{_WINDOW} Not a counter: posts age out of the window.",
    ),
    "unipost_analytics_window_posts": (
        "gauge", f"Posts by current status: all, published, scheduled, failed. {_WINDOW}",
    ),
    "unipost_analytics_platform_health": (
        "gauge", "1 for each platform's analytics health in UniPost, 0 for the others: "
        f"{', '.join(HEALTH_STATES)}.",
    ),
    "unipost_analytics_last_fetch_timestamp_seconds": (
        "gauge", "Unix time of UniPost's last successful analytics fetch from the platform "
        "(last_successful_fetch_at); absent when unknown.",
    ),
    "unipost_workspace_read_errors": (
        "counter", "Failed workspace reads (usage, delivery_jobs, analytics) by UniPost "
        "error.code, TIMEOUT, CONNECTION_ERROR or INVALID_RESPONSE; INVALID_VALUE counts "
        "values skipped inside a good answer (an unsafe name, a negative count).",
    ),
    "unipost_workspace_read_last_success_timestamp_seconds": (
        "gauge", "Unix time at which the workspace read last succeeded.",
    ),
    "unipost_workspace_read_interval_seconds": (
        "gauge", "Seconds between two workspace reads now (analytics: 6h while the plan has "
        "none); absent when the read is off.",
    ),
}  # fmt: skip


class WorkspaceCollector(Collector):
    """Plan usage, the publishing queue, analytics, and how each read goes, per workspace."""

    def __init__(self, stores: StoreSource) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        families = {
            name: Metric(name, f"{help_text} {_FROM_READS}", kind)
            for name, (kind, help_text) in FAMILIES.items()
        }
        for store in self.stores():
            _store_samples(store, families)
        yield from (family for family in families.values() if family.samples)


def _store_samples(store: Store, families: dict[str, Metric]) -> None:
    ws = store.workspace_labels

    def add(name: str, value: float, **labels: str) -> None:
        suffix = "_total" if families[name].type == "counter" else ""
        families[name].add_sample(name + suffix, {**labels, **ws}, value)

    facts = store.facts
    if facts.usage is not None:
        _usage(facts.usage, add)
    if facts.delivery_jobs is not None:
        _delivery(facts.delivery_jobs, add)
    if facts.analytics is not None:
        _analytics(facts.analytics, add)
    for read in READS:
        record = facts.records.get(read)
        if record is None or record.interval <= 0:
            continue
        for code, count in sorted(record.errors.items()):
            add("unipost_workspace_read_errors", float(count), read=read, code=code)
        if record.last_success is not None:
            add("unipost_workspace_read_last_success_timestamp_seconds", record.last_success,
                read=read)  # fmt: skip
        add("unipost_workspace_read_interval_seconds", record.interval, read=read)


class _Add(Protocol):
    def __call__(self, name: str, value: float, **labels: str) -> None: ...


def _usage(usage: Usage, add: _Add) -> None:
    if usage.plan is not None:
        add("unipost_plan_info", 1.0, plan=usage.plan)
    if usage.post_limit is not None:
        add("unipost_plan_post_limit", usage.post_limit)
    for state, count in usage.posts:
        add("unipost_usage_posts", count, state=state)
    add("unipost_usage_period_end_timestamp_seconds", usage.resets_at)
    add("unipost_usage_scheduling_allowed", float(usage.scheduling_allowed))


def _delivery(jobs: DeliveryJobs, add: _Add) -> None:
    for state, count in zip(DELIVERY_STATES, jobs, strict=False):
        if count is not None:
            add("unipost_delivery_jobs", count, state=state)
    if jobs.recovered_today is not None:
        add("unipost_delivery_jobs_recovered_today", jobs.recovered_today)


def _analytics(analytics: Analytics, add: _Add) -> None:
    add("unipost_analytics_available", float(analytics.available))
    if not analytics.available:
        return
    for row in analytics.by_platform:
        if row.posts is not None:
            add("unipost_analytics_posts", row.posts, platform=row.platform)
        if row.accounts is not None:
            add("unipost_analytics_accounts", row.accounts, platform=row.platform)
        for metric, count in row.engagement:
            add("unipost_analytics_engagement", count, platform=row.platform, metric=metric)
    for status, count in analytics.window_posts:
        add("unipost_analytics_window_posts", count, status=status)
    for entry in analytics.platforms:
        for health in HEALTH_STATES:
            add("unipost_analytics_platform_health", float(entry.health == health),
                platform=entry.platform, health=health)  # fmt: skip
        if entry.last_fetch is not None:
            add("unipost_analytics_last_fetch_timestamp_seconds", entry.last_fetch,
                platform=entry.platform)  # fmt: skip
