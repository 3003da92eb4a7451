"""What to poll next in one workspace, and when: the loop that takes a budget slot, polls the
account that has been due longest, and plans its next poll from what the answer meant.

Each poll runs as its own task, so a slow account never holds up the others. The decisions
around it live beside it: the Budget (ratelimit.py) sets the pace, AuthPause the key's
pause, AccountSet (accounts.py) which accounts and at what interval, and outcomes.py what an
answer means for the account.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_when_event_set,
    wait_random_exponential,
)

from exporter import heap
from exporter.accounts import AccountSet, count_error
from exporter.authpause import AuthPause
from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.health import HealthReads
from exporter.logs import FieldLogger, scrub
from exporter.outcomes import (
    GOOD,
    INTERNAL,
    answered,
    attempts_per_poll,
    is_transient,
    next_delay,
    policy_for,
    reason,
)
from exporter.parse import ApiError, ErrorKind, Outcome, Snapshot, UpstreamFailure, classify
from exporter.pollqueue import PollQueue
from exporter.ratelimit import Budget
from exporter.schema import PollingConfig, WorkspaceConfig
from exporter.store import AccountState, Store, pack, unpack

RETRY_WAIT_MAX = 30.0
# A retry that found the workspace paused for its key by the time its slot came: not sent.
_KEY_REJECTED = ApiError("UNAUTHORIZED", ErrorKind.AUTH)


class MetricsClient(Protocol):
    """What the scheduler needs from the HTTP client."""

    async def get_account_metrics(self, account_id: str) -> RawResponse: ...

    async def get_account_health(self, account_id: str) -> RawResponse: ...


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
        self.store = store
        self.client = client
        self.clock = clock
        self.log = FieldLogger("exporter.scheduler", workspace=workspace.name)
        self.queue = PollQueue(clock, "metrics_due", store.accounts)
        # Health reads: their own cadence, behind any metrics poll that is due.
        health_queue = PollQueue(clock, "health_due", store.accounts, sleeper=self.queue)
        self.budget = Budget(
            workspace.unipost.requests_per_minute, clock, polling.max_backoff, store
        )
        self.accounts = AccountSet(
            workspace,
            polling,
            store,
            self.queue,
            health_queue,
            clock,
            self.log,
            owns,
            rng or random.Random(),
        )
        self.health = HealthReads(self, health_queue)
        self.auth = AuthPause(clock, polling.max_backoff, self.log, self.accounts.mark_unauthorized)
        # When each account's poll in progress was sent: the next is planned from it.
        self._sent_at: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._rounds = heap.Rounds(store.accounts)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled."""
        self.store.polling_started = True
        try:
            while True:
                await self._step()
        except Exception:
            # A bug, not an API failure: say so loudly and stop reporting ready.
            self.log.critical("polling stopped: unexpected error")
            raise
        finally:
            self.store.polling_started = False
            tasks = [*self._inflight.values(), *self.health.inflight.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _step(self) -> None:
        now = self.clock.monotonic()
        if self.auth.active and self.auth.probe_inflight:
            await self.queue.wait(None)  # the loop waits for the probe's verdict
            return
        if self.auth.active and now < self.auth.until:
            await self.queue.wait(self.auth.until - now)
            return
        due = self.queue.next_due()
        health_due = None if self.auth.active else self.health.queue.next_due()
        if due is None and health_due is None:
            await self.queue.wait(None)
            return
        # One sleep until both the most overdue account and a budget slot are ready.
        first = min(d for d in (due, health_due) if d is not None)
        ready = max(first, self.budget.ready_at())
        if ready > now:
            # Held by a scrape: until it releases the budget and wakes the queue.
            await self.queue.wait(None if ready == math.inf else ready - now)
            return
        if not self.budget.try_take():
            # A retry is queued for the slot: it goes first; look again one slot later.
            await self.queue.wait(1.0 / self.budget.rate)
            return
        if due is not None and due <= now:  # a metrics poll that is due always goes first
            self._dispatch(self.queue.pop(), now)
        else:
            self.health.dispatch(self.health.queue.pop(), now)

    def _dispatch(self, account_id: str, now: float) -> None:
        self._sent_at[account_id] = now
        if account_id in self.store.accounts and account_id not in self._inflight:
            probe = self.auth.probe_inflight = self.auth.active
            task = asyncio.create_task(self._poll(account_id, probe), name=f"poll {account_id}")
            self._inflight[account_id] = task

    # -- one poll -------------------------------------------------------------------------------

    async def _poll(self, account_id: str, probe: bool) -> None:
        account = self.store.accounts[account_id]
        account.last_poll_wall = self.clock.wall()
        try:
            outcome = await self._fetch(account, attempts_per_poll(account, self.polling, probe))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("poll failed unexpectedly", account_id=account_id)
            outcome = ApiError(INTERNAL, ErrorKind.TRANSIENT)
            account.tally("api_errors", INTERNAL)
        finally:
            self._inflight.pop(account_id, None)
            if probe:
                self.auth.probe_inflight = False
        current = self.store.accounts.get(account_id)
        if current is account:
            self.apply(account, outcome, probe)
            self.store.changed(account)
            self._rounds.answered()
        elif current is not None and not self.queue.planned(current):
            # Removed and added again while this poll ran: the new one has not been polled.
            self.queue.plan(current, self.clock.monotonic())
        if probe:
            self.queue.wake()  # the loop waits for the probe's verdict

    async def _fetch(self, account: AccountState, attempts: int) -> Outcome:
        """One poll: the request the loop took a slot for, then retries of a transient
        failure (each with a slot of its own) while `attempts` allow."""
        outcome = await self._attempt(account)
        if attempts <= 1 or not is_transient(outcome):
            return outcome  # the common case, without building a retry loop
        retrying = AsyncRetrying(
            # A pause for the key (seen by another poll) ends the retries too.
            stop=stop_after_attempt(attempts - 1) | stop_when_event_set(self.auth.paused),
            wait=wait_random_exponential(multiplier=1, max=RETRY_WAIT_MAX),
            retry=retry_if_result(is_transient),
            sleep=self.clock.sleep,
            retry_error_callback=_last_result,
        )
        result: Outcome = await retrying(self._retry, account)
        return result

    async def _retry(self, account: AccountState) -> Outcome:
        await self.budget.acquire()
        if self.auth.active:
            return _KEY_REJECTED  # one probe per step: no retry leaves during a pause
        return await self._attempt(account)

    async def _attempt(self, account: AccountState) -> Outcome:
        raw = await self.client.get_account_metrics(account.id)
        outcome = raw.read(classify)
        self.budget.learn(raw, outcome)
        if isinstance(outcome, ApiError):
            count_error(account, outcome, "request failed", self.store, self.log)
        return outcome

    # -- what the answer means ------------------------------------------------------------------

    def apply(self, account: AccountState, outcome: Outcome, probe: bool) -> None:
        """What an answer means for the account: its status, values and next poll."""
        self.accounts.release_hold(account.id)
        is_auth = isinstance(outcome, ApiError) and outcome.kind is ErrorKind.AUTH
        if self.auth.active and not is_auth:
            if probe and answered(outcome):
                self.auth.accepted()
                self.queue.wake()
            else:
                # A probe with no answer proves nothing: wait another step. A result sent
                # before the pause began says nothing about the key now. Either way keep real
                # data, leave the status `unauthorized`, and poll again after the pause.
                if probe:
                    self.auth.rejected("NO_ANSWER", probe=True)
                if isinstance(outcome, Snapshot):
                    _keep(account, outcome)
                self._schedule(account, 0.0)
                return
        # UniPost's message, or a proxy's: shown on the landing page, so never with the key.
        message = outcome.message if isinstance(outcome, ApiError) else ""
        detail = scrub(message, self.workspace.unipost.api_key)
        policy = policy_for(outcome)
        if policy is None:  # the workspace's: its key (paused), or its limiter (paced)
            if is_auth:
                assert isinstance(outcome, ApiError)
                account.problem, account.problem_detail = outcome.code, detail
                self.auth.rejected(outcome.code, probe)
            self._schedule(account, 0.0)
            return
        if isinstance(outcome, Snapshot | UpstreamFailure):
            self.accounts.learn_platform(account, outcome.platform)
        if isinstance(outcome, Snapshot):
            _keep(account, outcome)
        elif policy.drops_snapshot:
            account.snapshot = account.previous = None
        if isinstance(outcome, UpstreamFailure):
            account.tally("upstream_failures", outcome.upstream_status)
        account.consecutive_failures = account.consecutive_failures + 1 if policy.failing else 0
        why = reason(outcome)
        account.problem, account.problem_detail = ("", "") if policy is GOOD else (why, detail)
        self.accounts.set_status(account, policy.status, why, detail=detail)
        self.accounts.set_policy(account, policy)
        self._schedule(account, next_delay(policy, account, self.polling))

    def _schedule(self, account: AccountState, delay: float) -> None:
        if delay > 0:
            delay = self.accounts.demand.stretched(delay)
        now = self.clock.monotonic()
        # Planned from when this poll was sent, not from when its answer came: UniPost's
        # latency and a busy event loop (many scrapers) then do not stretch the cadence.
        # (Not from when it was due: polls that queued for the budget together would stay
        # bunched round after round, instead of spreading out as the budget paces them.)
        anchor = self._sent_at.pop(account.id, now)
        self.queue.plan(account, max(now, anchor + delay) if delay > 0 else now)

    # -- a reloaded config ----------------------------------------------------------------------

    def reconfigure(
        self,
        workspace: WorkspaceConfig,
        polling: PollingConfig,
        client: MetricsClient | None = None,
    ) -> None:
        """Apply a reloaded config at once (`client`: a new connection to UniPost). Unchanged
        accounts keep their state, counters, backoff and place in the schedule; added ones
        start; removed ones stop."""
        old_key, old_url = self.workspace.unipost.api_key, self.workspace.unipost.base_url
        self.workspace, self.polling = workspace, polling
        self.budget.reconfigure(workspace.unipost.requests_per_minute, polling.max_backoff)
        self.auth.max_pause = polling.max_backoff
        if workspace.unipost.api_key != old_key:
            self.auth.new_key()
        self.accounts.reconfigure(workspace, polling)
        if client is not None:
            self.client = client
            self._forget_the_old_connection(new_address=workspace.unipost.base_url != old_url)
        self.queue.wake()

    def _forget_the_old_connection(self, new_address: bool) -> None:
        """A new key, address or timeout: the backoff, pause, refusals and re-checks the old
        connection earned say nothing about the new one. Every account is polled again as
        soon as the budget allows, its platform's floor still respected, except at a new
        address: no request of the old one reached it, so no platform window was spent."""
        self.auth.reset()
        self.budget.forget_refusals()
        self.accounts.poll_again(skip=self._inflight, respect_floors=not new_address)


def _keep(account: AccountState, snapshot: Snapshot) -> None:
    """The new good snapshot; the one it replaces stays as `previous` (for the change)."""
    kept, packed = account.snapshot_kept, pack(snapshot)
    if kept == packed:
        return  # the same answer again: nothing to re-render
    account.snapshot_kept = packed
    if kept is None:
        return
    before = unpack(kept)
    if before[_FETCHED_AT] != snapshot.fetched_at:
        # The one before is kept only while it shows a change of count (the landing page's
        # "+12"): most polls bring the same counts, and an equal one would show nothing for
        # ~110 bytes an account.
        account.previous_kept = kept if any(before[i] != snapshot[i] for i in _COUNTS) else None


_FETCHED_AT = Snapshot._fields.index("fetched_at")
_COUNTS = [Snapshot._fields.index(name) for name in ("followers", "following", "posts")]


def _last_result(state: RetryCallState) -> Outcome:
    assert state.outcome is not None
    result: Outcome = state.outcome.result()
    return result


__all__: list[str] = ["MetricsClient", "Scheduler"]
