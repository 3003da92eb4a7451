"""Store to Prometheus: metric families built fresh from the store at every scrape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.store import DURATION_BUCKETS, AccountState, Store

_FROM_POLLS = "Read from the last background poll of UniPost, not fetched at scrape time."


def _gauge(name: str, help_text: str) -> Metric:
    return Metric(name, f"{help_text} {_FROM_POLLS}", "gauge")


class StoreCollector(Collector):
    """Renders the store: one family per metric, series only for what the store holds."""

    def __init__(self, store: Store, version: str = __version__) -> None:
        self.store = store
        self.version = version

    def collect(self) -> Iterator[Metric]:
        accounts = list(self.store.accounts.values())
        yield from self._account_families(accounts)
        yield from self._api_families()
        build = Metric(
            "unipost_exporter_build_info", "Always 1; the exporter's version as a label.", "gauge"
        )
        build.add_sample("unipost_exporter_build_info", {"version": self.version}, 1.0)
        yield build

    def _account_families(self, accounts: Iterable[AccountState]) -> Iterator[Metric]:
        followers = _gauge("unipost_account_followers", "Followers in the last good snapshot.")
        following = _gauge(
            "unipost_account_following", "Accounts followed, in the last good snapshot."
        )
        posts = _gauge("unipost_account_posts", "Lifetime posts in the last good snapshot.")
        platform_value = _gauge(
            "unipost_account_platform_value",
            "Each numeric platform_specific field of the last good snapshot, by field.",
        )
        last_success = _gauge(
            "unipost_account_last_success_timestamp_seconds",
            "Unix time at which UniPost fetched the last good snapshot (its fetched_at).",
        )
        status = _gauge(
            "unipost_account_status",
            "1 for the account's current status: pending, ok, upstream_failing, disconnected, "
            "needs_reconnect, not_supported, not_found, unauthorized or error.",
        )
        info = _gauge("unipost_account_info", "Always 1; the account's name as a label.")
        interval = _gauge(
            "unipost_account_poll_interval_seconds",
            "The account's polling interval after platform floors, before backoff and stretch.",
        )
        failing = _gauge(
            "unipost_account_consecutive_failures",
            "Polls in a row that brought no good snapshot (zero-filled, timeouts, 5xx, invalid "
            "bodies); 0 after a success.",
        )
        upstream = Metric(
            "unipost_upstream_failures",
            "Zero-filled snapshots received (the platform call failed), by the platform's "
            f"HTTP status; none of them became data. {_FROM_POLLS}",
            "counter",
        )
        errors = Metric(
            "unipost_api_errors",
            "Failed requests for this account, by UniPost error.code, or TIMEOUT, "
            f"CONNECTION_ERROR, INVALID_RESPONSE. {_FROM_POLLS}",
            "counter",
        )
        for account in accounts:
            labels = {"account_id": account.id, "platform": account.platform}
            labels.update(account.labels)
            snap = account.snapshot
            if snap is not None:
                followers.add_sample(followers.name, labels, snap.followers)
                following.add_sample(following.name, labels, snap.following)
                posts.add_sample(posts.name, labels, snap.posts)
                for field, value in snap.platform_values:
                    platform_value.add_sample(
                        platform_value.name, {**labels, "field": field}, value
                    )
                last_success.add_sample(last_success.name, labels, snap.fetched_at)
            status.add_sample(status.name, {**labels, "status": account.status}, 1.0)
            info.add_sample(info.name, {**labels, "account_name": account.account_name}, 1.0)
            interval.add_sample(interval.name, labels, account.interval)
            failing.add_sample(failing.name, labels, float(account.consecutive_failures))
            for upstream_status, count in sorted(account.upstream_failures.items()):
                upstream.add_sample(
                    "unipost_upstream_failures_total",
                    {**labels, "upstream_status": upstream_status},
                    float(count),
                )
            for code, count in sorted(account.api_errors.items()):
                errors.add_sample(
                    "unipost_api_errors_total", {**labels, "code": code}, float(count)
                )
        yield from (
            followers,
            following,
            posts,
            platform_value,
            last_success,
            status,
            info,
            interval,
            failing,
            upstream,
            errors,
        )

    def _api_families(self) -> Iterator[Metric]:
        api = self.store.api
        requests = Metric(
            "unipost_api_requests",
            "Requests the background poller sent to UniPost, by endpoint and HTTP status "
            "(`error`: no answer).",
            "counter",
        )
        for (endpoint, status_code), count in sorted(api.requests.items()):
            requests.add_sample(
                "unipost_api_requests_total",
                {"endpoint": endpoint, "status_code": status_code},
                float(count),
            )
        yield requests

        duration = Metric(
            "unipost_api_request_duration_seconds",
            "Latency of the background poller's requests to UniPost, by endpoint.",
            "histogram",
        )
        for endpoint, hist in sorted(api.durations.items()):
            cumulative = 0
            for bound, count in zip(DURATION_BUCKETS, hist.bucket_counts, strict=True):
                cumulative += count
                duration.add_sample(
                    "unipost_api_request_duration_seconds_bucket",
                    {"endpoint": endpoint, "le": _float_label(bound)},
                    float(cumulative),
                )
            duration.add_sample(
                "unipost_api_request_duration_seconds_bucket",
                {"endpoint": endpoint, "le": "+Inf"},
                float(hist.count),
            )
            duration.add_sample(
                "unipost_api_request_duration_seconds_count",
                {"endpoint": endpoint},
                float(hist.count),
            )
            duration.add_sample(
                "unipost_api_request_duration_seconds_sum", {"endpoint": endpoint}, hist.total
            )
        yield duration

        for name, value, help_text in (
            (
                "unipost_api_ratelimit_limit",
                api.ratelimit_limit,
                "X-UniPost-RateLimit-Limit in the last background poll that carried it.",
            ),
            (
                "unipost_api_ratelimit_remaining",
                api.ratelimit_remaining,
                "X-UniPost-RateLimit-Remaining in the last background poll that carried it.",
            ),
            (
                "unipost_api_ratelimit_reset_timestamp_seconds",
                api.ratelimit_reset,
                "X-UniPost-RateLimit-Reset (Unix seconds) in the last background poll "
                "that carried it.",
            ),
        ):
            family = Metric(name, help_text, "gauge")
            if value is not None:
                family.add_sample(name, {}, value)
            yield family

        pace = Metric(
            "unipost_exporter_budget_requests_per_minute",
            "The pace at which the exporter currently sends requests to UniPost: the configured "
            "requests_per_minute, lowered while UniPost signals rate limiting.",
            "gauge",
        )
        if self.store.budget_requests_per_minute is not None:
            pace.add_sample(pace.name, {}, self.store.budget_requests_per_minute)
        yield pace
        stretch = Metric(
            "unipost_exporter_interval_stretch_factor",
            "How much every polling interval is lengthened so the accounts fit the budget "
            "(1: not at all).",
            "gauge",
        )
        stretch.add_sample(stretch.name, {}, self.store.interval_stretch_factor)
        yield stretch


def _float_label(value: float) -> str:
    # Match prometheus_client's rendering of bucket bounds (0.05, 1.0, 30.0).
    return repr(float(value))
