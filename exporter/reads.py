"""Periodic reads of each account: the mechanism every kind of read shares.

A read says what to call, how often, and what an answer changes; the scheduler takes a slot
of the workspace's budget for it whenever one of its plans is due. A new kind of read is a
subclass in a module of its own, plus its entry in `ACCOUNT_READS` (scheduler.py):

    class HealthRead(AccountRead):
        name = "health"
        due = HEALTH_DUE  # the AccountState slot its plans are kept in

        def interval(self, account):
            return account.config.health_interval or self.context.polling.health_interval

        async def fetch(self, account):
            raw = await self.context.client.get_account_health(account.id)
            return raw.read(classify_health)

        def apply(self, account, outcome):
            account.health = outcome if isinstance(outcome, Health) else account.health
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.logs import FieldLogger
from exporter.outcomes import INTERNAL
from exporter.parse import ApiError, ErrorKind
from exporter.pollqueue import DueSlot, LoopSleep, PollQueue
from exporter.ratelimit import Budget
from exporter.schema import PollingConfig, WorkspaceConfig
from exporter.store import AccountState, Store

if TYPE_CHECKING:
    from exporter.accounts import Demand

# What a read's good answer is (health: parse.Health).
A = TypeVar("A")


class Client(Protocol):
    """What the reads need from the HTTP client (client.UniPostClient)."""

    async def get_account_metrics(self, account_id: str) -> RawResponse: ...

    async def get_account_health(self, account_id: str) -> RawResponse: ...


@dataclass
class ReadContext:
    """What every read of one workspace works with. `client` and `polling` are replaced when
    a reload changes them; the rest stays for the scheduler's life."""

    store: Store
    budget: Budget
    clock: Clock
    log: FieldLogger
    client: Client
    workspace: WorkspaceConfig
    polling: PollingConfig
    rng: random.Random
    demand: Demand
    # What a 401 or a 404 means for the account and the workspace, whatever read saw it:
    # the metrics polls' verdict (polls.MetricsPolls.apply_error), set once they exist.
    account_news: Callable[[AccountState, ApiError], None] = lambda account, error: None


class Plans(Protocol):
    """When a read's items are next due (pollqueue.PollQueue, for a read of each account)."""

    def next_due(self) -> float | None: ...

    def pop(self) -> str: ...


class PeriodicRead(Protocol):
    """What the scheduler's loop needs of a read: its plans, starting one, and stopping. A
    read of each account is an AccountRead; a read of the workspace has one plan."""

    @property
    def probes_key(self) -> bool: ...

    @property
    def queue(self) -> Plans: ...

    def dispatch(self, item_id: str, now: float) -> None: ...

    async def stop(self) -> None: ...


class AccountRead(ABC, Generic[A]):
    """One kind of periodic read of each account, at its own cadence.

    Subclasses say how often (`interval`), what to call (`fetch`) and what an answer means
    (`apply`); this class plans each account, runs each read in a task of its own (one at a
    time per account) and plans the next one interval (stretched like every interval) after
    the read was sent. The exposition shows what `apply` keeps on the account.
    """

    # The name of the read, as in log lines.
    name: ClassVar[str]
    # The AccountState slot its plans are kept in (pollqueue.py).
    due: ClassVar[DueSlot]
    # Whether its answers tell if the workspace's key is accepted: during a pause for the
    # key, only such reads are sent, one at a time, as probes.
    probes_key: ClassVar[bool] = False

    def __init__(self, context: ReadContext, sleep: LoopSleep) -> None:
        self.context = context
        self.queue = PollQueue(context.store.accounts, self.due, sleep)
        self.inflight: dict[str, asyncio.Task[None]] = {}

    @abstractmethod
    def interval(self, account: AccountState) -> float:
        """Seconds between two reads of the account (0: it is not read)."""

    @abstractmethod
    async def fetch(self, account: AccountState) -> A | ApiError:
        """Send the read and return what its answer means."""

    @abstractmethod
    def apply(self, account: AccountState, outcome: A | ApiError) -> None:
        """Keep what the answer says on the account (the exposition shows it)."""

    def stopped(self, account: AccountState) -> None:
        """The account is no longer read (its interval became 0): drop what it kept."""

    def cost(self, account: AccountState) -> float:
        """The requests a second this read of the account takes from the budget."""
        interval = self.interval(account)
        return 1.0 / interval if interval > 0 else 0.0

    # -- planning -------------------------------------------------------------------------------

    def follow(self, account: AccountState, now: float) -> None:
        """Plan the account's first read, or stop reading it, as its interval now says."""
        if self.interval(account) <= 0:
            self.queue.forget(account)
            self.stopped(account)
        elif not self.queue.planned(account):
            self.queue.plan(account, now)

    def has_answer(self, account: AccountState) -> bool:
        """Whether the account keeps an answer of this read (one the state file restored)."""
        return False

    def restored(self, account: AccountState, now: float) -> None:
        """After a restart, for an account whose answer was restored: spread the next reads
        over one interval, so that none bursts."""
        interval = self.interval(account)
        if interval > 0 and self.has_answer(account):
            self.queue.plan(account, now + interval * self.context.rng.random())

    def plan(self, account: AccountState, sent: float) -> None:
        """The next read, one interval (stretched like every interval) after `sent`."""
        interval = self.interval(account)
        if interval <= 0 or self.queue.planned(account):
            return
        due = sent + self.context.demand.stretched(interval)
        self.queue.plan(account, max(self.context.clock.monotonic(), due))

    # -- reading --------------------------------------------------------------------------------

    def dispatch(self, account_id: str, now: float) -> None:
        """Read the account in a task of its own (one at a time per account)."""
        if account_id in self.context.store.accounts and account_id not in self.inflight:
            task = asyncio.create_task(
                self._read(account_id, now), name=f"{self.name} {account_id}"
            )
            self.inflight[account_id] = task

    async def _read(self, account_id: str, sent: float) -> None:
        store = self.context.store
        account = store.accounts[account_id]
        outcome: A | ApiError
        try:
            outcome = await self.fetch(account)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.context.log.exception(
                f"{self.name} read failed unexpectedly", account_id=account_id
            )
            outcome = ApiError(INTERNAL, ErrorKind.TRANSIENT)
        finally:
            self.inflight.pop(account_id, None)
        if store.accounts.get(account_id) is not account:
            return  # removed meanwhile
        self.apply(account, outcome)
        store.changed(account)
        self.plan(account, sent)

    async def stop(self) -> None:
        """Cancel every read in flight (the scheduler stops)."""
        tasks = list(self.inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
