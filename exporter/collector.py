"""Store to Prometheus: metric families built from the store, with what they mean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.parse import Health, Snapshot
from exporter.store import (
    DURATION_BUCKETS,
    AccountState,
    Histogram,
    ReloadStatus,
    StateStatus,
    Status,
    Store,
    StoreSource,
)

_FROM_POLLS = "Read from the last background poll of UniPost, not fetched at scrape time."
_ABSENT = "Absent when the platform does not provide it."


# What a family's samples are made from: the last good snapshot, the account's other
# state, or its failure tallies. The fast exposition re-renders a family when that changes.
SNAPSHOT, STATE, TALLIES, HEALTH = "snapshot", "state", "tallies", "health"

P = TypeVar("P")
# One sample: an optional extra label (name, value) beside the account's own, and a value.
AccountSample = tuple[tuple[str, str] | None, float]
Samples = Callable[[AccountState], list[AccountSample]]


@dataclass(frozen=True, slots=True)
class Family:
    """One per-account metric family: its name, sample name, type, help, inputs, and the
    function that yields an account's samples of it. A snapshot family also names the one
    Snapshot field it shows, so a new snapshot re-renders it only when that field changed."""

    name: str
    sample: str
    type: str
    help: str
    inputs: str
    samples: Samples
    field: str = ""
    # Its own label beside the account's (field, status, code...); "": none, one sample.
    label: str = ""


def _gauge(name: str, help_text: str, inputs: str, samples: Samples, label: str = "") -> Family:
    return Family(name, name, "gauge", f"{help_text} {_FROM_POLLS}", inputs, samples, label=label)


def _from_snapshot(
    name: str, help_text: str, field: str, samples: Callable[[str], Samples]
) -> Family:
    """A gauge of one field of the last good snapshot."""
    help_text = f"{help_text} {_FROM_POLLS}"
    label = "field" if samples is _by_field else ""
    return Family(name, name, "gauge", help_text, SNAPSHOT, samples(field), field, label)


def _counter(
    name: str, help_text: str, label: str, read: Callable[[AccountState], dict[str, int]]
) -> Family:
    """A counter of one of the account's failure tallies, by `label`."""
    help_text = f"{help_text} {_FROM_POLLS}"
    return Family(
        name, f"{name}_total", "counter", help_text, TALLIES, _tally(label, read), label=label
    )


def _value_of(
    part: Callable[[AccountState], P | None], read: Callable[[P], float | None]
) -> Samples:
    """One value read from a part of the account's state (its last good snapshot, its last
    health answer): no sample before there is one, or when the value is absent."""

    def samples(account: AccountState) -> list[AccountSample]:
        whole = part(account)
        value = None if whole is None else read(whole)
        return [] if value is None else [(None, value)]

    return samples


def _count(field: str) -> Samples:
    """A count of the last good snapshot; absent when the platform does not provide it."""
    read: Callable[[Snapshot], float | None] = attrgetter(field)
    return _value_of(lambda account: account.snapshot, read)


def _health_time(read: Callable[[Health], float | None]) -> Samples:
    """A time of the last health answer; absent when UniPost omits it."""
    return _value_of(lambda account: account.health, read)


def _by_field(field: str) -> Samples:
    read: Callable[[Snapshot], tuple[tuple[str, float], ...]] = attrgetter(field)

    def samples(account: AccountState) -> list[AccountSample]:
        if account.snapshot is None:
            return []
        return [(("field", field), value) for field, value in read(account.snapshot)]

    return samples


def _tally(label: str, read: Callable[[AccountState], dict[str, int]]) -> Samples:
    def samples(account: AccountState) -> list[AccountSample]:
        return [((label, key), float(count)) for key, count in sorted(read(account).items())]

    return samples


def _health_status(account: AccountState) -> list[AccountSample]:
    return [] if account.health is None else [(("status", account.health.status), 1.0)]


def _last_post_error(account: AccountState) -> list[AccountSample]:
    health = account.health
    if health is None or health.last_error_at is None:
        return []
    return [(("code", health.last_error_code or "unknown"), health.last_error_at)]


def _one(read: Callable[[AccountState], float]) -> Samples:
    return lambda account: [(None, read(account))]


def _labelled(label: str, read: Callable[[AccountState], str]) -> Samples:
    return lambda account: [((label, read(account)), 1.0)]


def _status_help() -> str:
    names = [str(status) for status in Status]
    return f"1 for the account's current status: {', '.join(names[:-1])} or {names[-1]}."


# The per-account families, in exposition order. Both renderers (AccountCollector through
# prometheus_client, and the fast exposition) take names, help and samples from here.
ACCOUNT_FAMILIES: tuple[Family, ...] = (
    _from_snapshot(
        "unipost_account_followers",
        f"Followers in the last good snapshot. {_ABSENT}",
        "followers",
        _count,
    ),
    _from_snapshot(
        "unipost_account_following",
        f"Accounts followed, in the last good snapshot. {_ABSENT}",
        "following",
        _count,
    ),
    _from_snapshot(
        "unipost_account_posts",
        f"Lifetime posts in the last good snapshot. {_ABSENT}",
        "posts",
        _count,
    ),
    _from_snapshot(
        "unipost_account_platform_value",
        "Each numeric platform_specific field of the last good snapshot, by field.",
        "platform_values",
        _by_field,
    ),
    _from_snapshot(
        "unipost_account_platform_flag",
        "Each boolean platform_specific field of the last good snapshot, by field, as 0 or 1 "
        "(e.g. hidden_subscriber_count: the channel hides its followers).",
        "platform_flags",
        _by_field,
    ),
    _from_snapshot(
        "unipost_account_last_success_timestamp_seconds",
        "Unix time at which UniPost fetched the last good snapshot (its fetched_at).",
        "fetched_at",
        _count,
    ),
    _gauge(
        "unipost_account_status",
        _status_help(),
        STATE,
        _labelled("status", lambda a: a.status),
        "status",
    ),
    _gauge(
        "unipost_account_info",
        "Always 1; the account's name as a label.",
        STATE,
        _labelled("account_name", lambda a: a.account_name),
        "account_name",
    ),
    _gauge(
        "unipost_account_poll_interval_seconds",
        "The account's polling interval after platform floors, before backoff and stretch.",
        STATE,
        _one(lambda a: a.interval),
    ),
    _gauge(
        "unipost_account_consecutive_failures",
        "Polls in a row that brought no good snapshot (zero-filled, timeouts, 5xx, invalid "
        "bodies); 0 after a success.",
        STATE,
        _one(lambda a: float(a.consecutive_failures)),
    ),
    _gauge(
        "unipost_account_health_status",
        "1 for the account's publishing health in UniPost (GET /v1/accounts/{id}/health): "
        "ok, degraded (a recent post failed) or disconnected; absent until first read.",
        HEALTH,
        _health_status,
        "status",
    ),
    _gauge(
        "unipost_account_token_expiry_timestamp_seconds",
        "Unix time at which the account's platform token expires (token_expires_at); "
        "absent when UniPost does not know.",
        HEALTH,
        _health_time(lambda health: health.token_expires_at),
    ),
    _gauge(
        "unipost_account_last_successful_post_timestamp_seconds",
        "Unix time of the account's last successful post through UniPost "
        "(last_successful_post_at); absent when there is none.",
        HEALTH,
        _health_time(lambda health: health.last_successful_post_at),
    ),
    _gauge(
        "unipost_account_last_post_error_timestamp_seconds",
        "Unix time of the account's last failed post (last_error.occurred_at), labelled with "
        "its category code; the platform's message is on the landing page, never a label.",
        HEALTH,
        _last_post_error,
        "code",
    ),
    _counter(
        "unipost_upstream_failures",
        "Zero-filled snapshots received (the platform call failed), by the platform's "
        "HTTP status; none of them became data.",
        "upstream_status",
        lambda a: a.upstream_failures,
    ),
    _counter(
        "unipost_api_errors",
        "Failed requests for this account, by UniPost error.code, or TIMEOUT, "
        "CONNECTION_ERROR, INVALID_RESPONSE.",
        "code",
        lambda a: a.api_errors,
    ),
)


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

    def __init__(self, stores: StoreSource) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        families = [Metric(f.name, f.help, f.type) for f in ACCOUNT_FAMILIES]
        for store in self.stores():
            for account in list(store.accounts.values()):
                labels = account_labels(account)
                for family, spec in zip(families, ACCOUNT_FAMILIES, strict=True):
                    for extra, value in spec.samples(account):
                        family.add_sample(
                            spec.sample, {**labels, extra[0]: extra[1]} if extra else labels, value
                        )
        for store in self.stores():
            for labels, value in discovery_error_samples(store):
                families[ERRORS_FAMILY].add_sample("unipost_api_errors_total", labels, value)
        yield from families


class ApiCollector(Collector):
    """Exporter-wide families: requests, latency, rate-limit state and pace (per workspace in
    the several-workspaces form), then sharding and build info."""

    def __init__(
        self,
        stores: StoreSource,
        shard: int = 0,
        total_shards: int = 1,
        version: str = __version__,
        reload: ReloadStatus | None = None,
        state: StateStatus | None = None,
    ) -> None:
        self.stores = stores
        self.shard = shard
        self.total_shards = total_shards
        self.version = version
        self.reload = reload or ReloadStatus()
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield from self._api_families()
        yield from self._state_families()
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

    def _state_families(self) -> Iterator[Metric]:
        """How saving the state (--storage.path) goes; nothing without persistence."""
        state = self.state
        if state is None or not state.enabled:
            return
        failures = Metric(
            "unipost_exporter_state_save_failures",
            "Saves of the state file (--storage.path) that failed since the process started.",
            "counter",
        )
        failures.add_sample(
            "unipost_exporter_state_save_failures_total", {}, float(state.save_failures)
        )
        yield failures
        if state.last_save is not None:
            name = "unipost_exporter_state_last_save_timestamp_seconds"
            saved = Metric(
                name, "Unix time of the last successful save of the state file.", "gauge"
            )
            saved.add_sample(name, {}, state.last_save)
            yield saved

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
        gauges = [Metric(name, help_text, "gauge") for name, help_text in _API_GAUGES]
        for store in self.stores():
            ws = store.workspace_labels
            api = store.api
            for (endpoint, status_code), count in sorted(api.requests.items()):
                requests.add_sample(
                    "unipost_api_requests_total",
                    {"endpoint": endpoint, "status_code": status_code, **ws},
                    float(count),
                )
            for endpoint, hist in sorted(api.durations.items()):
                _add_histogram(duration, {"endpoint": endpoint, **ws}, hist)
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


# The API-wide gauges, in exposition order: the last limiter headers, the pace, the stretch.
_API_GAUGES = (
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
        "X-UniPost-RateLimit-Reset (Unix seconds) in the last background poll that carried it.",
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


def _add_histogram(family: Metric, labels: dict[str, str], hist: Histogram) -> None:
    cumulative = 0
    for bound, count in zip(DURATION_BUCKETS, hist.bucket_counts, strict=True):
        cumulative += count
        family.add_sample(
            f"{family.name}_bucket", {**labels, "le": _float_label(bound)}, float(cumulative)
        )
    family.add_sample(f"{family.name}_bucket", {**labels, "le": "+Inf"}, float(hist.count))
    family.add_sample(f"{family.name}_count", labels, float(hist.count))
    family.add_sample(f"{family.name}_sum", labels, hist.total)


def _float_label(value: float) -> str:
    # Match prometheus_client's rendering of bucket bounds (0.05, 1.0, 30.0).
    return repr(float(value))
