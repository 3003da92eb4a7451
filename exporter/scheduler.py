"""When to poll what: per-account cadence, floors, backoff, workspace pauses, and fairness.

The loop takes a slot from the Budget, then polls the account that has been
due longest. Each poll runs as its own task, so a slow account never holds up
the others. Results go into the Store; the next due time follows from them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.config import (
    AccountConfig,
    DiscoveryConfig,
    PollingConfig,
    WorkspaceConfig,
    format_duration,
    platform_from_id,
)
from exporter.logs import WorkspaceLogger
from exporter.parse import (
    ApiError,
    ErrorKind,
    ListedAccount,
    Outcome,
    Snapshot,
    UpstreamFailure,
    classify,
    parse_ratelimit_headers,
    parse_retry_after,
)
from exporter.ratelimit import Budget
from exporter.store import (
    DISCONNECTED,
    ERROR,
    NEEDS_RECONNECT,
    NOT_FOUND,
    NOT_SUPPORTED,
    OK,
    UNAUTHORIZED,
    UPSTREAM_FAILING,
    AccountState,
    Store,
)

log = logging.getLogger("exporter.scheduler")

# The error code of a poll that failed inside the exporter (a bug, logged with its trace).
INTERNAL = "INTERNAL"
# Jitter only ever lengthens a delay, by up to this fraction.
JITTER = 0.1
RECHECK_HOURLY = 3600.0
RECHECK_DAILY = 86400.0
AUTH_PAUSE_FIRST = 60.0
# Attempts per poll for transient failures (timeouts, connection errors, 5xx).
ATTEMPTS = 3
RETRY_WAIT_MAX = 30.0
MAX_BACKOFF_EXPONENT = 30

_STATUS_BY_KIND = {
    ErrorKind.AUTH: UNAUTHORIZED,
    ErrorKind.NOT_FOUND: NOT_FOUND,
    ErrorKind.DISCONNECTED: DISCONNECTED,
    ErrorKind.NEEDS_RECONNECT: NEEDS_RECONNECT,
    ErrorKind.NOT_SUPPORTED: NOT_SUPPORTED,
    ErrorKind.TRANSIENT: ERROR,
    ErrorKind.INVALID: ERROR,
    ErrorKind.PERSISTENT: ERROR,
}
# Statuses the listing itself reports, with no metrics call needed to learn them.
_STATUS_BY_LISTING = {"reconnect_required": NEEDS_RECONNECT, "disconnected": DISCONNECTED}
_RECHECK_BY_KIND = {
    ErrorKind.NOT_FOUND: RECHECK_HOURLY,
    ErrorKind.DISCONNECTED: RECHECK_HOURLY,
    ErrorKind.NEEDS_RECONNECT: RECHECK_HOURLY,
    ErrorKind.PERSISTENT: RECHECK_HOURLY,
    ErrorKind.NOT_SUPPORTED: RECHECK_DAILY,
}


class MetricsClient(Protocol):
    """What the scheduler needs from the HTTP client."""

    async def get_account_metrics(self, account_id: str) -> RawResponse: ...


class Scheduler:
    """Polls one workspace's accounts at their cadence, within that workspace's budget.

    Each workspace has its own scheduler: its own budget, limiter state, backoff and pauses,
    so one workspace's 401 or 429 never slows another.
    """

    def __init__(
        self,
        workspace: WorkspaceConfig,
        polling: PollingConfig,
        store: Store,
        client: MetricsClient,
        clock: Clock,
        rng: random.Random | None = None,
        owns: Callable[[str], bool] = lambda account_id: True,
    ) -> None:
        self.workspace = workspace
        self.polling = polling
        self.owns = owns  # whether this replica's shard polls an account
        self.store = store
        self.client = client
        self.clock = clock
        self.log = WorkspaceLogger(log, workspace.name)
        self.budget = Budget(workspace.unipost.requests_per_minute, clock, polling.max_backoff)
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        # Each account's live heap entry (its seq); others are stale and skipped.
        self._entry: dict[str, int] = {}
        # When each account's poll in progress was sent: the next is planned from it.
        self._sent_at: dict[str, float] = {}
        self._woken: asyncio.Future[None] | None = None
        # When the sleeping loop means to look again (-inf: it is not sleeping).
        self._waiting_until = -math.inf
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._account_configs: dict[str, AccountConfig] = {}
        self._demand: dict[str, float] = {}
        self._demand_total = 0.0
        self._floor_logged: set[tuple[str, str]] = set()
        self._stretch_warned = False
        self._auth_paused = False
        self._auth_step = 0
        self._paused_until = -math.inf
        self._probe_inflight = False
        store.budget_requests_per_minute = self.budget.rate * 60
        # Accounts from the config are always polled; discovered ones follow the listing.
        self._configured = {account.id: account for account in workspace.accounts}
        self._discovered: set[str] = set()
        # Accounts whose status comes from the listing (reconnect_required, disconnected).
        self._held_by_listing: dict[str, str] = {}
        now = clock.monotonic()
        for account in workspace.accounts:
            self._add_account(account, now)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled."""
        self.store.polling_started = True
        try:
            while True:
                await self._step()
        except Exception:
            # A bug, not an API failure: say so loudly and stop reporting ready.
            self.log.critical("polling stopped: unexpected error", exc_info=True)
            raise
        finally:
            self.store.polling_started = False
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _step(self) -> None:
        now = self.clock.monotonic()
        if self._auth_paused and self._probe_inflight:
            await self._wait(None)
            return
        if self._auth_paused and now < self._paused_until:
            await self._wait(self._paused_until - now)
            return
        while self._heap and self._entry.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)  # an account removed, or re-added since
        if not self._heap:
            await self._wait(None)
            return
        # One sleep until both the most overdue account and a budget slot are ready.
        ready = max(self._heap[0][0], self.budget.ready_at())
        if ready > now:
            await self._wait(ready - now)
            return
        if not self.budget.try_take():
            # A retry is queued for the slot: it goes first; look again one slot later.
            await self._wait(1.0 / self.budget.rate)
            return
        account_id = heapq.heappop(self._heap)[2]
        del self._entry[account_id]
        self._sent_at[account_id] = now
        self._dispatch(account_id)

    def _dispatch(self, account_id: str) -> None:
        if account_id not in self.store.accounts or account_id in self._inflight:
            return
        probe = self._auth_paused
        if probe:
            self._probe_inflight = True
        task = asyncio.create_task(self._poll(account_id, probe), name=f"poll {account_id}")
        self._inflight[account_id] = task

    async def _wait(self, seconds: float | None) -> None:
        """Sleep for `seconds` (None: indefinitely) or until the schedule changes."""
        # A bare future and timer, not a sleeping task: this runs once per poll.
        woken = self._woken = asyncio.get_running_loop().create_future()
        timer = None
        self._waiting_until = math.inf
        if seconds is not None:
            timer = self.clock.call_later(seconds, self._wake)
            self._waiting_until = self.clock.monotonic() + seconds
        try:
            await woken
        finally:
            self._waiting_until = -math.inf
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        """The schedule changed: let the loop look again."""
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    # -- one poll ---------------------------------------------------------------------------

    async def _poll(self, account_id: str, probe: bool) -> None:
        account = self.store.accounts[account_id]
        account.last_poll_wall = self.clock.wall()
        account.next_poll_wall = None
        try:
            outcome = await self._fetch(account, self._attempts(account, probe))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception(
                "poll failed unexpectedly", extra={"fields": {"account_id": account_id}}
            )
            outcome = ApiError(INTERNAL, ErrorKind.TRANSIENT)
            account.api_errors[INTERNAL] = account.api_errors.get(INTERNAL, 0) + 1
        finally:
            self._inflight.pop(account_id, None)
            if probe:
                self._probe_inflight = False
        current = self.store.accounts.get(account_id)
        if current is account:
            self._apply(account, outcome, probe)
        elif current is not None and account_id not in self._entry:
            # Removed and added again while this poll ran: the new one has not been polled.
            self._push(self.clock.monotonic(), account_id)
            self._wake()
        if probe:
            self._wake()  # the loop waits for the probe's verdict

    async def _fetch(self, account: AccountState, attempts: int) -> Outcome:
        """One poll: up to `attempts` requests, retrying transient failures with backoff."""
        # The loop already took this request's budget slot.
        outcome = await self._attempt(account)
        if attempts <= 1 or not _is_transient(outcome):
            return outcome  # the common case, without building a retry loop
        last: Outcome = outcome
        known: Outcome | None = outcome

        async def attempt() -> Outcome:
            nonlocal last, known
            if known is not None:  # tenacity's first attempt is the one already made
                result, known = known, None
                return result
            await self.budget.acquire()
            if self._auth_paused:
                return last
            last = await self._attempt(account)
            return last

        retrying = AsyncRetrying(
            # A workspace pause (401/403 seen elsewhere) also ends the retries: one probe per step.
            stop=stop_after_attempt(attempts) | stop_when(lambda _: self._auth_paused),
            wait=wait_random_exponential(multiplier=1, max=RETRY_WAIT_MAX),
            retry=retry_if_result(_is_transient),
            sleep=self.clock.sleep,
            retry_error_callback=_last_result,
        )
        result: Outcome = await retrying(attempt)
        return result

    async def _attempt(self, account: AccountState) -> Outcome:
        outcome = self._interpret(await self.client.get_account_metrics(account.id))
        if isinstance(outcome, ApiError):
            account.api_errors[outcome.code] = account.api_errors.get(outcome.code, 0) + 1
            self.store.changed(account)
            self.log.debug(
                "request failed",
                extra={
                    "fields": {
                        "account_id": account.id,
                        "code": outcome.code,
                        "http_status": outcome.http_status,
                        "detail": outcome.message,
                    }
                },
            )
        return outcome

    def _interpret(self, raw: RawResponse) -> Outcome:
        failed = raw.failure()
        outcome = failed if failed is not None else classify(raw.status or 0, raw.body)
        self.observe_response(raw, outcome)
        return outcome

    def observe_response(self, raw: RawResponse, outcome: object) -> None:
        """Learn the workspace limiter's state from an answer and what it meant."""
        if raw.status is None:
            return
        headers = parse_ratelimit_headers(raw.headers)
        self.store.api.record_ratelimit(headers)
        # Only UniPost's own limiter speaks for the workspace: a platform's 429 about one
        # account (UPSTREAM_RATE_LIMITED) must not pause or slow every other account.
        refused = isinstance(outcome, ApiError) and outcome.kind is ErrorKind.RATE_LIMITED
        retry_after = None
        if refused:
            # An HTTP-date Retry-After is read against the server's Date, not our clock.
            now = headers.server_now(self.clock.wall())
            retry_after = parse_retry_after(raw.headers.get("Retry-After"), now)
        self.budget.observe(refused, headers, retry_after)
        self.store.budget_requests_per_minute = self.budget.rate * 60

    # -- applying a result ------------------------------------------------------------------

    def _apply(self, account: AccountState, outcome: Outcome, probe: bool) -> None:
        self._held_by_listing.pop(account.id, None)  # a poll's answer is fresher news
        self._apply_outcome(account, outcome, probe)
        self.store.changed(account)

    def _apply_outcome(self, account: AccountState, outcome: Outcome, probe: bool) -> None:
        base = account.interval
        is_auth_error = isinstance(outcome, ApiError) and outcome.kind is ErrorKind.AUTH
        answered = not (isinstance(outcome, ApiError) and outcome.http_status is None)
        if self._auth_paused and not is_auth_error:
            if probe and answered:
                self._resume_auth()
            else:
                # A probe with no answer proves nothing: wait another step. A result sent
                # before the pause began says nothing about the key now. Either way keep real
                # data, leave the status `unauthorized`, and poll again after the pause.
                if probe:
                    self._pause_auth(probe, "NO_ANSWER")
                if isinstance(outcome, Snapshot):
                    account.snapshot = outcome
                self._schedule(account, 0.0)
                return
        if isinstance(outcome, Snapshot):
            self._learn_platform(account, outcome.platform)
            account.snapshot = outcome
            account.consecutive_failures = 0
            self._set_status(account, OK, "ok")
            delay = account.interval
        elif isinstance(outcome, UpstreamFailure):
            self._learn_platform(account, outcome.platform)
            status = outcome.upstream_status
            account.upstream_failures[status] = account.upstream_failures.get(status, 0) + 1
            account.consecutive_failures += 1
            self._set_status(account, UPSTREAM_FAILING, f"upstream_status={status}")
            delay = self._backoff(account)
        elif outcome.kind is ErrorKind.AUTH:
            self._pause_auth(probe, outcome.code)
            delay = 0.0
        elif outcome.kind is ErrorKind.RATE_LIMITED:
            # UniPost refused before calling the platform: try again once the budget allows.
            delay = 0.0
        elif outcome.kind is ErrorKind.ACCOUNT_THROTTLED:
            # The platform throttles this one account: it alone backs off.
            account.consecutive_failures += 1
            self._set_status(account, UPSTREAM_FAILING, outcome.code)
            delay = self._backoff(account)
        elif outcome.kind in (ErrorKind.TRANSIENT, ErrorKind.INVALID):
            account.consecutive_failures += 1
            self._set_status(account, ERROR, outcome.code)
            delay = self._retry_delay(account)
        else:
            if outcome.kind is ErrorKind.NOT_FOUND:
                account.snapshot = None
            account.consecutive_failures = 0
            self._set_status(account, _STATUS_BY_KIND[outcome.kind], outcome.code)
            delay = max(base, _RECHECK_BY_KIND[outcome.kind])
        self._update_demand(account)
        self._schedule(account, delay)

    def _schedule(self, account: AccountState, delay: float) -> None:
        if delay > 0:
            stretch = self._stretch()
            if stretch > 1.0:
                # The budget is the bottleneck: its even pacing already spreads the polls,
                # and jitter would only leave part of it unused.
                delay *= stretch
            else:
                delay *= 1.0 + self._rng.uniform(0.0, JITTER)
        now = self.clock.monotonic()
        # Planned from when this poll was sent, not from when its answer came: UniPost's
        # latency and a busy event loop (many scrapers) then do not stretch the cadence.
        # (Not from when it was due: polls that queued for the budget together would stay
        # bunched round after round, instead of spreading out as the budget paces them.)
        anchor = self._sent_at.pop(account.id, now)
        self._reschedule(account, max(now, anchor + delay) if delay > 0 else now)

    def _attempts(self, account: AccountState, probe: bool) -> int:
        """Requests one poll may make. None beyond the first on a platform with a floor: a
        failed call (a timeout, a 5xx) has already spent the platform's window (X's 15
        minutes), so a retry seconds later would only be refused."""
        if probe or self.polling.floor_for(account.platform) > 0:
            return 1
        return ATTEMPTS

    def _retry_delay(self, account: AccountState) -> float:
        """When to poll again after a transient failure."""
        floor = self.polling.floor_for(account.platform)
        if floor > 0 and account.consecutive_failures < ATTEMPTS:
            # The retries other platforms make inside the poll, made one floor apart.
            return floor
        return self._backoff(account)

    def _backoff(self, account: AccountState) -> float:
        base = account.interval
        exponent = min(account.consecutive_failures, MAX_BACKOFF_EXPONENT)
        return max(base, min(self.polling.max_backoff, base * 2.0**exponent))

    def _stretch(self) -> float:
        """How much every interval is lengthened so that demand fits the budget.

        Against the configured budget, not the pace learned from 429s: a temporary slowdown
        must not push every next poll far out and leave the budget idle once it recovers.
        While the server allows less, accounts simply come due faster than the pace, and the
        most overdue goes first.
        """
        demand = self._demand_total
        stretch = max(1.0, demand / self.budget.configured_rate)
        if stretch > 1.0 and not self._stretch_warned:
            self._stretch_warned = True
            self.log.warning(
                "configured intervals ask for more requests than the budget allows; "
                "stretching every interval evenly",
                extra={
                    "fields": {
                        "requests_per_minute_wanted": round(demand * 60, 2),
                        "requests_per_minute_budget": round(self.budget.configured_rate * 60, 2),
                        "stretch_factor": round(stretch, 3),
                    }
                },
            )
        self.store.interval_stretch_factor = stretch
        return stretch

    def _update_demand(self, account: AccountState) -> None:
        if account.status in (DISCONNECTED, NEEDS_RECONNECT, NOT_FOUND):
            period = RECHECK_HOURLY
        elif account.status == NOT_SUPPORTED:
            period = RECHECK_DAILY
        else:
            period = account.interval
        demand = 1.0 / period
        self._demand_total += demand - self._demand.get(account.id, 0.0)
        self._demand[account.id] = demand

    # -- the workspace's API key ------------------------------------------------------------

    def _pause_auth(self, probe: bool, code: str) -> None:
        if not self._auth_paused:
            self._auth_paused = True
            self._auth_step = 0
            self.log.warning(
                "UniPost rejected the API key; pausing all polling for this workspace",
                extra={"fields": {"code": code, "accounts": len(self.store.accounts)}},
            )
            for other in self.store.accounts.values():
                self._set_status(other, UNAUTHORIZED, code, quiet=True)
                self.store.changed(other)
        elif probe:
            self._auth_step += 1
        else:
            return
        pause = min(
            self.polling.max_backoff,
            AUTH_PAUSE_FIRST * 2.0 ** min(self._auth_step, MAX_BACKOFF_EXPONENT),
        )
        self._paused_until = self.clock.monotonic() + pause
        self.log.info("workspace paused", extra={"fields": {"probe_in": format_duration(pause)}})

    def _resume_auth(self) -> None:
        self._auth_paused = False
        self._auth_step = 0
        self._paused_until = -math.inf
        self.log.warning("UniPost accepts the API key again; polling resumes")
        self._wake()

    # -- a reloaded config -------------------------------------------------------------------

    def reconfigure(self, workspace: WorkspaceConfig, polling: PollingConfig) -> None:
        """Apply a reloaded config at once. Unchanged accounts keep their state, counters,
        backoff and place in the schedule; added ones start; removed ones stop."""
        old_key = self.workspace.unipost.api_key
        self.workspace, self.polling = workspace, polling
        self.budget.reconfigure(workspace.unipost.requests_per_minute, polling.max_backoff)
        self.store.budget_requests_per_minute = self.budget.rate * 60
        if self._auth_paused and workspace.unipost.api_key != old_key:
            # A new key is tried now, by the next probe, not after the pause.
            self._auth_step = 0
            self._paused_until = -math.inf
        now = self.clock.monotonic()
        wanted = {account.id: account for account in workspace.accounts}
        for account_id in [a for a in self._configured if a not in wanted]:
            del self._configured[account_id]
            if account_id in self._discovered:
                self._account_configs[account_id] = AccountConfig(id=account_id)
            else:
                self._remove_account(account_id)
        if not workspace.discovery.enabled:
            for account_id in list(self._discovered):
                self._discovered.discard(account_id)
                if account_id not in wanted:
                    self._remove_account(account_id)
        for account_id, account in wanted.items():
            self._configured[account_id] = account
            if account_id not in self.store.accounts:
                self._add_account(account, now)
            else:
                self._account_configs[account_id] = account
        for state in self.store.accounts.values():
            state.labels = self._labels(self._account_configs[state.id])
            self._base_interval(state)
            self._update_demand(state)
            self.store.changed(state)
        self._stretch_warned = False  # say again if the new config does not fit
        self._wake()

    # -- accounts ---------------------------------------------------------------------------

    def _labels(self, account: AccountConfig) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((*account.labels, *self.store.workspace_labels.items())))

    def _add_account(self, account: AccountConfig, now: float) -> None:
        state = AccountState(
            id=account.id,
            platform=platform_from_id(account.id),
            labels=self._labels(account),
            interval=0.0,
        )
        self._account_configs[account.id] = account
        state.interval = self._base_interval(state)
        self.store.add(state)
        self._update_demand(state)
        self._reschedule(state, now)

    def _push(self, due: float, account_id: str) -> None:
        seq = next(self._seq)
        self._entry[account_id] = seq
        heapq.heappush(self._heap, (due, seq, account_id))

    def _remove_account(self, account_id: str) -> None:
        """Stop polling an account; its series go with it (a poll in flight is discarded)."""
        self._entry.pop(account_id, None)
        self._sent_at.pop(account_id, None)
        self._held_by_listing.pop(account_id, None)
        self.store.remove(account_id)
        self._account_configs.pop(account_id, None)
        self._demand_total -= self._demand.pop(account_id, 0.0)
        self.log.info("account removed", extra={"fields": {"account_id": account_id}})

    def sync_listing(self, listed: Sequence[ListedAccount], discovery: DiscoveryConfig) -> None:
        """Make the polled accounts follow a fresh GET /v1/accounts listing."""
        now = self.clock.monotonic()
        wanted: dict[str, ListedAccount] = {}
        for item in listed:
            platform = item.platform or platform_from_id(item.id)
            if item.id in discovery.exclude:
                continue
            if discovery.platforms and platform not in discovery.platforms:
                continue
            if not self.owns(item.id):
                continue
            wanted[item.id] = item
        for account_id, item in wanted.items():
            account = self.store.accounts.get(account_id)
            if account is None:
                configured = self._configured.get(account_id)
                self._add_account(configured or AccountConfig(id=account_id), now)
                account = self.store.accounts[account_id]
                if configured is None:
                    self.log.info(
                        "account discovered", extra={"fields": {"account_id": account_id}}
                    )
            self._discovered.add(account_id)
            if item.platform and item.platform != account.platform:
                self._learn_platform(account, item.platform)
                self._update_demand(account)
            account.account_name = item.name
            self._follow_listed_status(account, item.status, now)
            self.store.changed(account)
        for account_id in list(self._discovered):
            if account_id not in wanted:
                self._discovered.discard(account_id)
                if account_id not in self._configured:
                    self._remove_account(account_id)

    def _follow_listed_status(self, account: AccountState, listed: str, now: float) -> None:
        """An account the listing already calls broken is not worth a platform call: show
        its status and re-check it hourly. Once listed active again, poll it at once."""
        status = _STATUS_BY_LISTING.get(listed)
        if status is None:
            if self._held_by_listing.pop(account.id, None) is not None:
                self._reschedule(account, now)
            return
        if self._held_by_listing.get(account.id) == status or account.id in self._inflight:
            return
        self._held_by_listing[account.id] = status
        account.consecutive_failures = 0
        self._set_status(account, status, f"listed as {listed}")
        self._update_demand(account)
        self._reschedule(account, now + max(account.interval, RECHECK_HOURLY))

    def _reschedule(self, account: AccountState, due: float) -> None:
        """Plan the account's next poll at `due` (monotonic), replacing any earlier plan."""
        self._push(due, account.id)
        account.next_poll_wall = self.clock.wall() + (due - self.clock.monotonic())
        if due < self._waiting_until:
            self._wake()  # only when the loop sleeps past this account's turn

    def _base_interval(self, account: AccountState) -> float:
        """The account's interval, raised to its platform's floor."""
        configured = self._account_configs[account.id].interval
        wanted = configured if configured is not None else self.polling.interval
        floor = self.polling.floor_for(account.platform)
        key = (account.id, account.platform)
        if wanted < floor and configured is not None and key not in self._floor_logged:
            self._floor_logged.add((account.id, account.platform))
            self.log.info(
                "interval raised to the platform's floor",
                extra={
                    "fields": {
                        "account_id": account.id,
                        "platform": account.platform,
                        "interval": format_duration(wanted),
                        "floor": format_duration(floor),
                    }
                },
            )
        interval = max(wanted, floor)
        account.interval = interval
        return interval

    def _learn_platform(self, account: AccountState, platform: str | None) -> None:
        if platform and platform != account.platform:
            account.platform = platform
            self._base_interval(account)

    def _set_status(
        self, account: AccountState, status: str, reason: str, quiet: bool = False
    ) -> None:
        if account.status == status:
            return
        previous, account.status = account.status, status
        self.log.log(
            logging.DEBUG if quiet else logging.INFO,
            "account status changed",
            extra={
                "fields": {
                    "account_id": account.id,
                    "platform": account.platform,
                    "from": previous,
                    "to": status,
                    "reason": reason,
                }
            },
        )


class stop_when(stop_base):
    """Stop retrying once a condition holds."""

    def __init__(self, condition: Callable[[RetryCallState], bool]) -> None:
        self.condition = condition

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.condition(retry_state)


def _is_transient(outcome: Outcome) -> bool:
    return isinstance(outcome, ApiError) and outcome.kind is ErrorKind.TRANSIENT


def _last_result(state: RetryCallState) -> Outcome:
    assert state.outcome is not None
    result: Outcome = state.outcome.result()
    return result


__all__: list[str] = ["MetricsClient", "Scheduler"]
