"""Account health reads (GET /v1/accounts/{id}/health): UniPost's database, no platform call.

They run on their own cadence (`health_interval`), take the workspace budget's slots when no
metrics poll is due, and stretch with the same factor. A 401 or 404 is the same news as from
a metrics poll; any other failure waits for the next read.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from exporter.accounts import AccountSet, count_error
from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.logs import FieldLogger
from exporter.outcomes import INTERNAL
from exporter.parse import ApiError, ErrorKind, Health, Outcome, classify_health
from exporter.pollqueue import PollQueue
from exporter.ratelimit import Budget
from exporter.store import AccountState, Store


class HealthClient(Protocol):
    """What the health reads need from the HTTP client."""

    async def get_account_health(self, account_id: str) -> RawResponse: ...


class Polls(Protocol):
    """What the health reads take from the workspace's polling (the Scheduler)."""

    store: Store
    budget: Budget
    accounts: AccountSet
    clock: Clock
    log: FieldLogger

    @property
    def client(self) -> HealthClient: ...

    def apply(self, account: AccountState, outcome: Outcome, probe: bool) -> None: ...


class HealthReads:
    """When each account's health is read next, and what an answer changes."""

    def __init__(self, polls: Polls, queue: PollQueue) -> None:
        self.polls = polls
        self.queue = queue
        self.inflight: dict[str, asyncio.Task[None]] = {}

    def dispatch(self, account_id: str, now: float) -> None:
        """Read the account's health in a task of its own (one at a time per account)."""
        if account_id in self.polls.store.accounts and account_id not in self.inflight:
            task = asyncio.create_task(self._read(account_id, now), name=f"health {account_id}")
            self.inflight[account_id] = task

    async def _read(self, account_id: str, sent: float) -> None:
        account = self.polls.store.accounts[account_id]
        try:
            raw = await self.polls.client.get_account_health(account_id)
            outcome = raw.read(classify_health)
            self.polls.budget.learn(raw, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.polls.log.exception("health read failed unexpectedly", account_id=account_id)
            outcome = ApiError(INTERNAL, ErrorKind.TRANSIENT)
        finally:
            self.inflight.pop(account_id, None)
        if self.polls.store.accounts.get(account_id) is not account:
            return  # removed meanwhile
        if isinstance(outcome, Health):
            account.health = outcome
        else:
            count_error(account, outcome, "health read failed", self.polls.store, self.polls.log)
            if outcome.kind in (ErrorKind.AUTH, ErrorKind.NOT_FOUND):
                # The same news as from a metrics poll: the key is rejected (the workspace
                # pauses), or the account is gone.
                account.health = None
                self.polls.apply(account, outcome, probe=False)
        self.polls.store.changed(account)
        # Other failures wait for the next health slot.
        self.plan(account, sent)

    def plan(self, account: AccountState, sent: float) -> None:
        """The next read, one health interval (stretched like every interval) after `sent`."""
        interval = self.polls.accounts.health_interval(account)
        if interval <= 0 or self.queue.planned(account):
            return
        due = sent + self.polls.accounts.demand.stretched(interval)
        self.queue.plan(account, max(self.polls.clock.monotonic(), due))
