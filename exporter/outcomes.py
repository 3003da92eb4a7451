"""What a poll's outcome means for one account: its status, and when it is polled again.

One table, POLICIES, decides both the delay after an outcome and what the account then
costs the budget in the long run (`steady_period`), so the two cannot drift apart.
Outcomes that speak for the whole workspace (401/403, 429 RATE_LIMITED) have no policy
here: AuthPause and the Budget decide those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from exporter.parse import ApiError, ErrorKind, Outcome, Snapshot, UpstreamFailure
from exporter.schema import PollingConfig
from exporter.store import AccountState, Status

# The error code of a request that failed inside the exporter (a bug, logged with its trace).
INTERNAL = "INTERNAL"
# Jitter only ever lengthens a delay, by up to this fraction.
JITTER = 0.1
RECHECK_HOURLY = 3600.0
RECHECK_DAILY = 86400.0
# Attempts per poll for transient failures (timeouts, connection errors, 5xx).
ATTEMPTS = 3
MAX_BACKOFF_EXPONENT = 30
# The longest wait between two attempts of one poll or read (tenacity's random exponential).
RETRY_WAIT_MAX = 30.0


@dataclass(frozen=True, slots=True)
class Policy:
    """How an account is treated after one kind of outcome."""

    status: Status
    # A fixed re-check period (raised to the interval); None: polled at its interval.
    recheck: float | None = None
    # Counts as a consecutive failure, and backs off exponentially from the interval.
    failing: bool = False
    # Retried within the poll (on a platform with a floor: at the next floor slot).
    retried: bool = False
    # The last good values go too (the account is no longer there).
    drops_snapshot: bool = False


GOOD = Policy(Status.OK)
ZERO_FILLED = Policy(Status.UPSTREAM_FAILING, failing=True)
POLICIES: Mapping[ErrorKind, Policy] = {
    ErrorKind.NOT_FOUND: Policy(Status.NOT_FOUND, RECHECK_HOURLY, drops_snapshot=True),
    ErrorKind.DISCONNECTED: Policy(Status.DISCONNECTED, RECHECK_HOURLY),
    ErrorKind.NEEDS_RECONNECT: Policy(Status.NEEDS_RECONNECT, RECHECK_HOURLY),
    ErrorKind.PERSISTENT: Policy(Status.ERROR, RECHECK_HOURLY),
    ErrorKind.NOT_SUPPORTED: Policy(Status.NOT_SUPPORTED, RECHECK_DAILY),
    ErrorKind.TRANSIENT: Policy(Status.ERROR, failing=True, retried=True),
    ErrorKind.INVALID: Policy(Status.ERROR, failing=True),
    # The platform throttles this one account: it alone backs off.
    ErrorKind.ACCOUNT_THROTTLED: Policy(Status.UPSTREAM_FAILING, failing=True),
}
# What the listing's status says without a metrics call.
LISTED: Mapping[str, ErrorKind] = {
    "reconnect_required": ErrorKind.NEEDS_RECONNECT,
    "disconnected": ErrorKind.DISCONNECTED,
}


def policy_for(outcome: Outcome) -> Policy | None:
    """The account's policy after `outcome`; None when the outcome is the workspace's."""
    if isinstance(outcome, Snapshot):
        return GOOD
    if isinstance(outcome, UpstreamFailure):
        return ZERO_FILLED
    return POLICIES.get(outcome.kind)


def reason(outcome: Outcome) -> str:
    """Why the status is what it is, for the log."""
    if isinstance(outcome, Snapshot):
        return "ok"
    if isinstance(outcome, UpstreamFailure):
        return f"upstream_status={outcome.upstream_status}"
    return outcome.code


def steady_period(policy: Policy | None, interval: float) -> float:
    """How often an account under `policy` is polled in the long run: what it costs."""
    if policy is not None and policy.recheck is not None:
        return max(interval, policy.recheck)
    return interval


def next_delay(policy: Policy, account: AccountState, polling: PollingConfig) -> float:
    """Seconds until the account's next poll, before stretch and jitter."""
    if not policy.failing:
        return steady_period(policy, account.interval)
    floor = polling.floor_for(account.platform)
    if policy.retried and floor > 0 and account.consecutive_failures < ATTEMPTS:
        # The retries other platforms make inside the poll, made one floor apart: a failed
        # call has already spent the platform's window (X's 15 minutes).
        return floor
    base = account.interval
    exponent = min(account.consecutive_failures, MAX_BACKOFF_EXPONENT)
    return max(base, min(polling.max_backoff, base * 2.0**exponent))


def attempts_per_poll(account: AccountState, polling: PollingConfig, probe: bool) -> int:
    """Requests one poll may make: none beyond the first for a probe, or on a platform with
    a floor (a retry seconds later would break it)."""
    if probe or polling.floor_for(account.platform) > 0:
        return 1
    return ATTEMPTS


def is_transient(outcome: object) -> bool:
    """Whether a retry within the poll may bring a better answer."""
    return isinstance(outcome, ApiError) and outcome.kind is ErrorKind.TRANSIENT


def answered(outcome: Outcome) -> bool:
    """Whether UniPost answered at all (no timeout, no connection error)."""
    return not (isinstance(outcome, ApiError) and outcome.http_status is None)
