"""Store to Prometheus: metric families built from the store, with what they mean."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.store import DURATION_BUCKETS, AccountState, ReloadStatus, Store

_FROM_POLLS = "Read from the last background poll of UniPost, not fetched at scrape time."
_ABSENT = "Absent when the platform does not provide it."


# What a family's samples are made from: the last good snapshot, the account's other
# state, or its failure tallies. The fast exposition re-renders a family when that changes.
SNAPSHOT, STATE, TALLIES = "snapshot", "state", "tallies"


@dataclass(frozen=True, slots=True)
class Family:
    """One per-account metric family: its name, sample name, type, help and inputs."""

    name: str
    sample: str
    type: str
    help: str
    inputs: str


def _account_gauge(name: str, help_text: str, inputs: str) -> Family:
    return Family(name, name, "gauge", f"{help_text} {_FROM_POLLS}", inputs)


# The per-account families, in exposition order. Both renderers (AccountCollector through
# prometheus_client, and the fast exposition) take names, help and samples from here.
ACCOUNT_FAMILIES: tuple[Family, ...] = (
    _account_gauge(
        "unipost_account_followers",
        f"Followers in the last good snapshot. {_ABSENT}",
        SNAPSHOT,
    ),
    _account_gauge(
        "unipost_account_following",
        f"Accounts followed, in the last good snapshot. {_ABSENT}",
        SNAPSHOT,
    ),
    _account_gauge(
        "unipost_account_posts", f"Lifetime posts in the last good snapshot. {_ABSENT}", SNAPSHOT
    ),
    _account_gauge(
        "unipost_account_platform_value",
        "Each numeric platform_specific field of the last good snapshot, by field.",
        SNAPSHOT,
    ),
    _account_gauge(
        "unipost_account_platform_flag",
        "Each boolean platform_specific field of the last good snapshot, by field, as 0 or 1 "
        "(e.g. hidden_subscriber_count: the channel hides its followers).",
        SNAPSHOT,
    ),
    _account_gauge(
        "unipost_account_last_success_timestamp_seconds",
        "Unix time at which UniPost fetched the last good snapshot (its fetched_at).",
        SNAPSHOT,
    ),
    _account_gauge(
        "unipost_account_status",
        "1 for the account's current status: pending, ok, upstream_failing, disconnected, "
        "needs_reconnect, not_supported, not_found, unauthorized or error.",
        STATE,
    ),
    _account_gauge("unipost_account_info", "Always 1; the account's name as a label.", STATE),
    _account_gauge(
        "unipost_account_poll_interval_seconds",
        "The account's polling interval after platform floors, before backoff and stretch.",
        STATE,
    ),
    _account_gauge(
        "unipost_account_consecutive_failures",
        "Polls in a row that brought no good snapshot (zero-filled, timeouts, 5xx, invalid "
        "bodies); 0 after a success.",
        STATE,
    ),
    Family(
        "unipost_upstream_failures",
        "unipost_upstream_failures_total",
        "counter",
        "Zero-filled snapshots received (the platform call failed), by the platform's "
        f"HTTP status; none of them became data. {_FROM_POLLS}",
        TALLIES,
    ),
    Family(
        "unipost_api_errors",
        "unipost_api_errors_total",
        "counter",
        "Failed requests for this account, by UniPost error.code, or TIMEOUT, "
        f"CONNECTION_ERROR, INVALID_RESPONSE. {_FROM_POLLS}",
        TALLIES,
    ),
)

# One sample: an optional extra label (name, value) beside the account's own, and a value.
AccountSample = tuple[tuple[str, str] | None, float]


def account_samples(account: AccountState) -> tuple[list[AccountSample], ...]:
    """The account's samples for each family of ACCOUNT_FAMILIES, in the same order."""
    snap = account.snapshot
    values: list[AccountSample]
    flags: list[AccountSample]
    last_success: list[AccountSample]
    if snap is None:
        followers = following = posts = values = flags = last_success = []
    else:
        followers, following, posts = (
            _present(count) for count in (snap.followers, snap.following, snap.posts)
        )
        values = [(("field", field), value) for field, value in snap.platform_values]
        flags = [(("field", field), value) for field, value in snap.platform_flags]
        last_success = [(None, snap.fetched_at)]
    return (
        followers,
        following,
        posts,
        values,
        flags,
        last_success,
        [(("status", account.status), 1.0)],
        [(("account_name", account.account_name), 1.0)],
        [(None, account.interval)],
        [(None, float(account.consecutive_failures))],
        [
            (("upstream_status", status), float(count))
            for status, count in sorted(account.upstream_failures.items())
        ],
        [(("code", code), float(count)) for code, count in sorted(account.api_errors.items())],
    )


def _present(count: float | None) -> list[AccountSample]:
    """A count's one sample, or none when the platform does not provide it."""
    return [] if count is None else [(None, count)]


# The family that also carries failed account listings (account_id="").
ERRORS_FAMILY = next(i for i, f in enumerate(ACCOUNT_FAMILIES) if f.name == "unipost_api_errors")


def discovery_error_samples(store: Store) -> list[tuple[dict[str, str], float]]:
    """Failed GET /v1/accounts refreshes: on unipost_api_errors_total with account_id=""."""
    return [
        ({"account_id": "", "code": code, "platform": "", **store.workspace_labels}, float(count))
        for code, count in sorted(store.discovery_errors.items())
    ]


def account_labels(account: AccountState) -> dict[str, str]:
    """The labels every series of the account carries."""
    labels = {"account_id": account.id, "platform": account.platform}
    labels.update(account.labels)
    return labels


class AccountCollector(Collector):
    """The per-account families, built by prometheus_client from the stores at scrape time."""

    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        families = [Metric(f.name, f.help, f.type) for f in ACCOUNT_FAMILIES]
        for store in self.stores:
            for account in list(store.accounts.values()):
                labels = account_labels(account)
                for family, spec, samples in zip(
                    families, ACCOUNT_FAMILIES, account_samples(account), strict=True
                ):
                    for extra, value in samples:
                        family.add_sample(
                            spec.sample, {**labels, extra[0]: extra[1]} if extra else labels, value
                        )
        for store in self.stores:
            for labels, value in discovery_error_samples(store):
                families[ERRORS_FAMILY].add_sample("unipost_api_errors_total", labels, value)
        yield from families


class ApiCollector(Collector):
    """Exporter-wide families: requests, latency, rate-limit state and pace (per workspace in
    the several-workspaces form), then sharding and build info."""

    def __init__(
        self,
        stores: Sequence[Store],
        shard: int = 0,
        total_shards: int = 1,
        version: str = __version__,
        reload: ReloadStatus | None = None,
    ) -> None:
        self.stores = stores
        self.shard = shard
        self.total_shards = total_shards
        self.version = version
        self.reload = reload or ReloadStatus()

    def collect(self) -> Iterator[Metric]:
        yield from self._api_families()
        for name, number, help_text in (
            (
                "unipost_exporter_config_last_reload_successful",
                float(self.reload.successful),
                "1 if the last config load or reload (SIGHUP, POST /-/reload) worked; 0 if it "
                "failed and the exporter kept the running config.",
            ),
            (
                "unipost_exporter_config_last_reload_success_timestamp_seconds",
                self.reload.success_timestamp,
                "Unix time of the last successful config load or reload.",
            ),
            ("unipost_exporter_shard", self.shard, "This replica's shard (zero-indexed)."),
            (
                "unipost_exporter_total_shards",
                self.total_shards,
                "How many shards the accounts are split into (1: not sharded).",
            ),
        ):
            family = Metric(name, help_text, "gauge")
            family.add_sample(name, {}, float(number))
            yield family
        build = Metric(
            "unipost_exporter_build_info", "Always 1; the exporter's version as a label.", "gauge"
        )
        build.add_sample("unipost_exporter_build_info", {"version": self.version}, 1.0)
        yield build

    def _api_families(self) -> Iterator[Metric]:
        requests = Metric(
            "unipost_api_requests",
            "Requests the background poller sent to UniPost, by endpoint and HTTP status "
            "(`error`: no answer).",
            "counter",
        )
        duration = Metric(
            "unipost_api_request_duration_seconds",
            "Latency of the background poller's requests to UniPost, by endpoint.",
            "histogram",
        )
        gauges = [
            Metric(name, help_text, "gauge")
            for name, help_text in (
                (
                    "unipost_api_ratelimit_limit",
                    "X-UniPost-RateLimit-Limit in the last background poll that carried it.",
                ),
                (
                    "unipost_api_ratelimit_remaining",
                    "X-UniPost-RateLimit-Remaining in the last background poll that carried it.",
                ),
                (
                    "unipost_api_ratelimit_reset_timestamp_seconds",
                    "X-UniPost-RateLimit-Reset (Unix seconds) in the last background poll "
                    "that carried it.",
                ),
                (
                    "unipost_exporter_budget_requests_per_minute",
                    "The pace at which the exporter currently sends requests to UniPost: the "
                    "configured requests_per_minute, lowered while UniPost signals rate limiting.",
                ),
                (
                    "unipost_exporter_interval_stretch_factor",
                    "How much every polling interval is lengthened so the accounts fit the "
                    "budget (1: not at all).",
                ),
            )
        ]
        for store in self.stores:
            ws = store.workspace_labels
            api = store.api
            for (endpoint, status_code), count in sorted(api.requests.items()):
                requests.add_sample(
                    "unipost_api_requests_total",
                    {"endpoint": endpoint, "status_code": status_code, **ws},
                    float(count),
                )
            for endpoint, hist in sorted(api.durations.items()):
                labels = {"endpoint": endpoint, **ws}
                cumulative = 0
                for bound, count in zip(DURATION_BUCKETS, hist.bucket_counts, strict=True):
                    cumulative += count
                    duration.add_sample(
                        "unipost_api_request_duration_seconds_bucket",
                        {**labels, "le": _float_label(bound)},
                        float(cumulative),
                    )
                duration.add_sample(
                    "unipost_api_request_duration_seconds_bucket",
                    {**labels, "le": "+Inf"},
                    float(hist.count),
                )
                duration.add_sample(
                    "unipost_api_request_duration_seconds_count", labels, float(hist.count)
                )
                duration.add_sample("unipost_api_request_duration_seconds_sum", labels, hist.total)
            values = (
                api.ratelimit_limit,
                api.ratelimit_remaining,
                api.ratelimit_reset,
                store.budget_requests_per_minute,
                store.interval_stretch_factor,
            )
            for family, value in zip(gauges, values, strict=True):
                if value is not None:
                    family.add_sample(family.name, ws, value)
        yield requests
        yield duration
        yield from gauges


def _float_label(value: float) -> str:
    # Match prometheus_client's rendering of bucket bounds (0.05, 1.0, 30.0).
    return repr(float(value))
