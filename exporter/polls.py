"""Metrics polls (GET /v1/accounts/{id}/metrics): the account's counts, fetched live from
its platform, with retries of a transient failure and what each answer means for the
account's status, values and next poll.

Each poll runs as its own task, so a slow account never holds up the others. The decisions
around it live beside it: the Budget (ratelimit.py) sets the pace, AuthPause the key's
pause, AccountSet (accounts.py) which accounts and at what interval, and outcomes.py what an
answer means for the account.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container

from exporter import heap
from exporter.accounts import AccountSet, count_error
from exporter.authpause import AuthPause
from exporter.logs import scrub
from exporter.outcomes import (
    GOOD,
    INTERNAL,
    answered,
    attempts_per_poll,
    is_transient,
    next_delay,
    policy_for,
    reason,
    steady_period,
)
from exporter.parse import ApiError, ErrorKind, Outcome, Snapshot, UpstreamFailure, classify
from exporter.pollqueue import METRICS_DUE, LoopSleep
from exporter.reads import AccountRead, ReadContext, retried
from exporter.store import AccountState, pack, unpack


class MetricsPolls(AccountRead[Snapshot | UpstreamFailure]):
    """Every account's metrics, at its interval (raised to its platform's floor) or at the
    pace its last answer calls for. During a pause for the key, its polls are the probes."""

    name = "poll"
    due = METRICS_DUE
    probes_key = True

    def __init__(
        self, context: ReadContext, sleep: LoopSleep, accounts: AccountSet, auth: AuthPause
    ) -> None:
        super().__init__(context, sleep)
        self.accounts = accounts
        self.auth = auth
        # When each account's poll in progress was sent: the next is planned from it.
        self._sent_at: dict[str, float] = {}
        self._rounds = heap.FreezeAfterFirstRound(context.store.accounts)

    def interval(self, account: AccountState) -> float:
        return steady_period(account.policy, account.interval)

    async def fetch(self, account: AccountState) -> Outcome:
        return await self._fetch(account, attempts_per_poll(account, self.context.polling, False))

    def apply(self, account: AccountState, outcome: Outcome) -> None:
        self.apply_answer(account, outcome, probe=False)

    def apply_error(self, account: AccountState, error: ApiError) -> None:
        """Another read's 401 or 404: the same news as from a poll."""
        self.apply_answer(account, error, probe=False)

    def follow(self, account: AccountState, now: float) -> None:
        if not self.queue.planned(account) and account.id not in self.inflight:
            self.queue.plan(account, now)

    def dispatch(self, account_id: str, now: float) -> None:
        self._sent_at[account_id] = now
        if account_id in self.context.store.accounts and account_id not in self.inflight:
            probe = self.auth.probe_inflight = self.auth.active
            task = asyncio.create_task(self._poll(account_id, probe), name=f"poll {account_id}")
            self.inflight[account_id] = task

    def poll_again(self, skip: Container[str], respect_floors: bool) -> None:
        """Forget every account's backoff and re-check: poll each as soon as the budget (and,
        with `respect_floors`, its platform's floor since its last poll) allows."""
        now, wall = self.context.clock.monotonic(), self.context.clock.wall()
        for account in self.context.store.accounts.values():
            if account.id in skip:
                continue  # its answer will plan it
            account.consecutive_failures = 0
            self.accounts.release_hold(account.id)
            floor = self.context.polling.floor_for(account.platform) if respect_floors else 0.0
            since = wall - account.last_poll_wall if account.last_poll_wall is not None else floor
            self.queue.plan(account, now + max(0.0, floor - since))
            self.context.store.changed(account)

    # -- one poll -------------------------------------------------------------------------------

    async def _poll(self, account_id: str, probe: bool) -> None:
        account = self.context.store.accounts[account_id]
        account.last_poll_wall = self.context.clock.wall()
        try:
            outcome = await self._fetch(
                account, attempts_per_poll(account, self.context.polling, probe)
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            self.context.log.exception("poll failed unexpectedly", account_id=account_id)
            outcome = ApiError(INTERNAL, ErrorKind.TRANSIENT)
            account.count_api_error(INTERNAL)
        finally:
            self.inflight.pop(account_id, None)
            if probe:
                self.auth.probe_inflight = False
        current = self.context.store.accounts.get(account_id)
        if current is account:
            self.apply_answer(account, outcome, probe)
            self.context.store.changed(account)
            self._rounds.answered()
        elif current is not None and not self.queue.planned(current):
            # Removed and added again while this poll ran: the new one has not been polled.
            self.queue.plan(current, self.context.clock.monotonic())
        if probe:
            self.queue.sleep.wake()  # the loop waits for the probe's verdict

    async def _fetch(self, account: AccountState, attempts: int) -> Outcome:
        """One poll: the request the loop took a slot for, then retries of a transient
        failure (each with a slot of its own) while `attempts` allow."""
        outcome = await self._attempt(account)
        if attempts <= 1 or not is_transient(outcome):
            return outcome  # the common case, without building a retry loop
        return await retried(
            attempts, self.context, self.auth.paused, lambda: self._attempt(account)
        )

    async def _attempt(self, account: AccountState) -> Outcome:
        raw = await self.context.client.get_account_metrics(account.id)
        outcome = raw.read(classify)
        self.context.budget.learn(raw, outcome)
        if isinstance(outcome, ApiError):
            count_error(account, outcome, "request failed", self.context.store, self.context.log)
        return outcome

    # -- what the answer means ------------------------------------------------------------------

    def apply_answer(self, account: AccountState, outcome: Outcome, probe: bool) -> None:
        """What an answer means for the account: its status, values and next poll."""
        self.accounts.release_hold(account.id)
        is_auth = isinstance(outcome, ApiError) and outcome.kind is ErrorKind.AUTH
        if self.auth.active and not is_auth:
            if probe and answered(outcome):
                self.auth.accepted()
                self.queue.sleep.wake()
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
        detail = scrub(message, self.context.workspace.unipost.api_key)
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
            account.count_upstream_failure(outcome.upstream_status)
        account.consecutive_failures = account.consecutive_failures + 1 if policy.failing else 0
        why = reason(outcome)
        account.problem, account.problem_detail = ("", "") if policy is GOOD else (why, detail)
        self.accounts.set_status(account, policy.status, why, detail=detail)
        self.accounts.set_policy(account, policy)
        self._schedule(account, next_delay(policy, account, self.context.polling))

    def _schedule(self, account: AccountState, delay: float) -> None:
        if delay > 0:
            delay = self.context.demand.stretched(delay)
        now = self.context.clock.monotonic()
        # Planned from when this poll was sent, not from when its answer came: UniPost's
        # latency and a busy event loop (many scrapers) then do not stretch the cadence.
        # (Not from when it was due: polls that queued for the budget together would stay
        # bunched round after round, instead of spreading out as the budget paces them.)
        anchor = self._sent_at.pop(account.id, now)
        self.queue.plan(account, max(now, anchor + delay) if delay > 0 else now)


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
        # "+12"): most polls bring the same counts, and an equal one would show nothing.
        account.previous_kept = kept if any(before[i] != snapshot[i] for i in _COUNTS) else None


_FETCHED_AT = Snapshot._fields.index("fetched_at")
_COUNTS = [Snapshot._fields.index(name) for name in ("followers", "following", "posts")]


__all__: list[str] = ["MetricsPolls"]
