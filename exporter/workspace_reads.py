"""The reads of the workspace: plan usage, the publishing queue and analytics, each on its
own interval (`polling.usage_interval`, `delivery_interval`, `analytics_interval`; 0s: off).

UniPost answers all of them from its own database, with no platform call and no platform
quota; they take slots of the workspace's budget like every other request. Only shard 0 of
a sharded exporter reads them, so no series or request is doubled.

    $ curl -H "Authorization: Bearer $UNIPOST_API_KEY" https://api.unipost.dev/v1/usage
    unipost_plan_info{plan="basic"} 1.0
    unipost_usage_posts{state="published"} 412.0
"""

from __future__ import annotations

from exporter.parse import ApiError
from exporter.pollqueue import LoopSleep
from exporter.reads import ReadContext, WorkspaceRead
from exporter.workspace_answers import (
    ANALYTICS,
    DELIVERY_JOBS,
    PLAN_FEATURE_NOT_AVAILABLE,
    USAGE,
    Analytics,
    DeliveryJobs,
    Parsed,
    Usage,
    parse_by_platform,
    parse_delivery_jobs,
    parse_platforms,
    parse_summary,
    parse_usage,
)

# While the plan has no analytics (402), it is asked again this often, and at once when the
# plan changes.
UNAVAILABLE_RECHECK = 6 * 3600.0


class UsageRead(WorkspaceRead[Parsed[Usage]]):
    """GET /v1/usage: the plan, its post limit and this month's use."""

    name = USAGE

    def __init__(self, context: ReadContext, sleep: LoopSleep) -> None:
        super().__init__(context, sleep)
        # Told when a plan is seen that differs from the last one (AnalyticsRead.plan_changed).
        self.plan_listeners: list[AnalyticsRead] = []

    def interval(self) -> float:
        return self.context.polling.usage_interval

    async def fetch(self) -> Parsed[Usage] | ApiError:
        return await self.request("usage", parse_usage, first=True)

    def apply(self, value: Parsed[Usage]) -> None:
        facts = self.context.store.facts
        before = facts.usage.plan if facts.usage is not None else None
        facts.usage = value.value
        if before is not None and value.value.plan != before:
            self.context.log.info("the workspace's plan changed", plan=value.value.plan)
            for listener in self.plan_listeners:
                listener.plan_changed()

    def forget(self) -> None:
        self.context.store.facts.usage = None


class DeliveryJobsRead(WorkspaceRead[Parsed[DeliveryJobs]]):
    """GET /v1/post-delivery-jobs/summary: the publishing queue."""

    name = DELIVERY_JOBS

    def interval(self) -> float:
        return self.context.polling.delivery_interval

    async def fetch(self) -> Parsed[DeliveryJobs] | ApiError:
        return await self.request("delivery_jobs", parse_delivery_jobs, first=True)

    def apply(self, value: Parsed[DeliveryJobs]) -> None:
        self.context.store.facts.delivery_jobs = value.value

    def forget(self) -> None:
        self.context.store.facts.delivery_jobs = None


class AnalyticsRead(WorkspaceRead[Analytics]):
    """Analytics over UniPost's default window (posts created in the last 30 UTC days):
    GET /v1/analytics/by-platform, then /summary and /platforms. A 402 (a plan without
    analytics) means `available=False`, asked again every 6h or when the plan changes."""

    name = ANALYTICS

    def interval(self) -> float:
        interval = self.context.polling.analytics_interval
        analytics = self.context.store.facts.analytics
        if interval > 0 and analytics is not None and not analytics.available:
            return max(interval, UNAVAILABLE_RECHECK)
        return interval

    def requests_per_read(self) -> int:
        analytics = self.context.store.facts.analytics
        return 1 if analytics is not None and not analytics.available else 3

    def expected(self, error: ApiError) -> bool:
        return _not_in_plan(error)

    async def fetch(self) -> Analytics | ApiError:
        by_platform = await self.request("analytics_by_platform", parse_by_platform, first=True)
        if isinstance(by_platform, ApiError):
            if _not_in_plan(by_platform):
                return Analytics(available=False)
            return by_platform
        summary = await self.request("analytics_summary", parse_summary)
        if isinstance(summary, ApiError):
            return summary
        health = await self.request("analytics_platforms", parse_platforms)
        if isinstance(health, ApiError):
            return health
        return Analytics(True, by_platform.value, summary.value, health.value)

    def apply(self, value: Analytics) -> None:
        facts = self.context.store.facts
        if not value.available and (facts.analytics is None or facts.analytics.available):
            self.context.log.info("analytics is not in the workspace's plan; asking again in 6h")
        facts.analytics = value

    def forget(self) -> None:
        self.context.store.facts.analytics = None

    def plan_changed(self) -> None:
        """A new plan may allow analytics: ask now, when UniPost said it does not."""
        analytics = self.context.store.facts.analytics
        if analytics is not None and not analytics.available and self.inflight is None:
            self.plan_at(self.context.clock.monotonic())


def _not_in_plan(error: ApiError) -> bool:
    return error.code == PLAN_FEATURE_NOT_AVAILABLE or error.http_status == 402


def workspace_reads(context: ReadContext, sleep: LoopSleep) -> list[WorkspaceRead[object]]:
    """Every read of the workspace, in the order a due one takes a slot, wired together."""
    usage, delivery, analytics = (
        UsageRead(context, sleep),
        DeliveryJobsRead(context, sleep),
        AnalyticsRead(context, sleep),
    )
    usage.plan_listeners.append(analytics)
    return [delivery, usage, analytics]  # type: ignore[list-item]
