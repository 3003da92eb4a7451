"""Periodic reads: the mechanism every kind of read shares, of each account (AccountRead)
or of the workspace (WorkspaceRead).

A read says what to call, how often, and what an answer changes; the scheduler takes a slot
of the workspace's budget for it whenever one of its plans is due. A new kind of read is a
subclass in a module of its own, plus its entry in `ACCOUNT_READS` or `WORKSPACE_READS`
(scheduler.py):

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
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_when_event_set,
    wait_random_exponential,
)

from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.logs import FieldLogger
from exporter.outcomes import (
    ATTEMPTS,
    INTERNAL,
    MAX_BACKOFF_EXPONENT,
    RETRY_WAIT_MAX,
    is_transient,
)
from exporter.parse import ApiError, ErrorKind
from exporter.pollqueue import DueSlot, LoopSleep, PollQueue
from exporter.ratelimit import Budget
from exporter.schema import PollingConfig, WorkspaceConfig
from exporter.store import AccountState, Store
from exporter.workspace_answers import INVALID_VALUE, Parsed

if TYPE_CHECKING:
    from exporter.accounts import Demand

# What a read's good answer is (health: parse.Health).
A = TypeVar("A")


class Client(Protocol):
    """What the reads need from the HTTP client (client.UniPostClient)."""

    async def get_account_metrics(self, account_id: str) -> RawResponse: ...

    async def get_account_health(self, account_id: str) -> RawResponse: ...

    async def get_workspace(self, endpoint: str) -> RawResponse: ...


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
    # UniPost rejected the key on a read of the workspace: the workspace pauses (AuthPause).
    key_rejected: Callable[[str], None] = lambda code: None
    # Set while the workspace is paused for its key (AuthPause.paused).
    key_paused: threading.Event = field(default_factory=threading.Event)


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


# -- reads of the workspace -----------------------------------------------------------------------


class SinglePlan:
    """The plan of a read with one item, the workspace: when it is next due (monotonic)."""

    def __init__(self, item: str, sleep: LoopSleep) -> None:
        self.item = item
        self.sleep = sleep
        self.due: float | None = None

    def next_due(self) -> float | None:
        return self.due

    def pop(self) -> str:
        self.due = None
        return self.item

    def plan(self, due: float) -> None:
        self.due = due
        if due < self.sleep.waiting_until:
            self.sleep.wake()


P = TypeVar("P")


class WorkspaceRead(ABC, Generic[A]):
    """One kind of periodic read of the whole workspace, at its own cadence.

    Subclasses say how often (`interval`), what to call (`fetch`, whose requests after the
    first take budget slots of their own through `request`) and what a good answer keeps
    (`apply`). This class plans the read, runs it in a task, retries a transient failure
    with the backoff the polls use, counts failures on the workspace's ReadRecord, pauses
    the workspace on a 401, and plans the next read one interval after this one was sent.

        class DeliveryJobsRead(WorkspaceRead[DeliveryJobs]):
            name = "delivery_jobs"

            def interval(self):
                return self.context.polling.delivery_interval

            async def fetch(self):
                return await self.request("delivery_jobs", parse_delivery_jobs, first=True)

            def apply(self, value):
                self.context.store.facts.delivery_jobs = value
    """

    # The `read` label, as on unipost_workspace_read_errors_total.
    name: ClassVar[str]
    probes_key: ClassVar[bool] = False

    def __init__(self, context: ReadContext, sleep: LoopSleep) -> None:
        self.context = context
        self.queue = SinglePlan(self.name, sleep)
        self.inflight: asyncio.Task[None] | None = None
        self.record = context.store.facts.record(self.name)

    @abstractmethod
    def interval(self) -> float:
        """Seconds between two reads (0: the read is off)."""

    @abstractmethod
    async def fetch(self) -> A | ApiError:
        """Send the read's requests and return what they found."""

    @abstractmethod
    def apply(self, value: A) -> None:
        """Keep a good answer in the store's facts (the exposition shows them)."""

    @abstractmethod
    def forget(self) -> None:
        """The read is off: drop what it kept, so its series go."""

    def requests_per_read(self) -> int:
        """The requests one read sends."""
        return 1

    def expected(self, error: ApiError) -> bool:
        """Whether an error answer is one the read expects (not counted as a failure)."""
        return False

    def delay_after(self, outcome: A | ApiError) -> float:
        """Seconds from this read to the next, before stretch and jitter."""
        interval = self.interval()
        if isinstance(outcome, ApiError) and self.record.consecutive_failures:
            exponent = min(self.record.consecutive_failures - 1, MAX_BACKOFF_EXPONENT)
            return max(interval, min(self.context.polling.max_backoff, interval * 2.0**exponent))
        return interval

    def cost(self) -> float:
        """The requests a second this read takes from the budget in the long run."""
        interval = self.interval()
        return self.requests_per_read() / interval if interval > 0 else 0.0

    # -- planning -------------------------------------------------------------------------------

    def follow(self, now: float) -> None:
        """Plan the first read, or stop reading, as the interval now says (a start, a reload)."""
        interval = self.interval()
        self.record.interval = interval
        self.context.demand.count_read(self.name, self.cost())
        if interval <= 0:
            self.queue.due = self.record.next_read = None
            self.forget()
            self.record.errors.clear()
            self.record.last_success = None
        elif self.inflight is None:
            due = self.queue.due
            self.plan_at(now if due is None else min(due, now + interval))

    def restored(self, now: float, due: float) -> None:
        """After a restart: the next read as the last process planned it (never before now)."""
        if self.interval() > 0 and self.inflight is None:
            self.plan_at(max(now, due))

    def plan_at(self, due: float) -> None:
        """The next read at `due` (monotonic); the record keeps it as Unix time."""
        self.queue.plan(due)
        clock = self.context.clock
        self.record.next_read = clock.wall() + (due - clock.monotonic())

    # -- reading --------------------------------------------------------------------------------

    def dispatch(self, item_id: str, now: float) -> None:
        """Read in a task of its own (one at a time)."""
        if self.inflight is None:
            self.record.next_read = None
            self.inflight = asyncio.create_task(self._read(now), name=f"{self.name} read")

    async def _read(self, sent: float) -> None:
        outcome: A | ApiError
        try:
            outcome = await self.fetch()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.context.log.exception(f"{self.name} read failed unexpectedly")
            outcome = ApiError(INTERNAL, ErrorKind.TRANSIENT)
            self.record.count(INTERNAL)
        finally:
            self.inflight = None
        if self.interval() <= 0:
            return  # turned off meanwhile
        record = self.record
        if isinstance(outcome, ApiError):
            record.consecutive_failures += 1
            if outcome.kind is ErrorKind.AUTH:
                self.context.key_rejected(outcome.code)
            self.context.log.debug(f"{self.name} read failed", code=outcome.code,
                                   http_status=outcome.http_status)  # fmt: skip
        else:
            record.consecutive_failures = 0
            record.last_success = self.context.clock.wall()
            self.apply(outcome)
        record.interval = self.interval()
        self.context.demand.count_read(self.name, self.cost())
        delay = self.context.demand.stretched(self.delay_after(outcome))
        self.plan_at(max(self.context.clock.monotonic(), sent + delay))

    async def request(
        self, endpoint: str, parse: Callable[[int, bytes], P | ApiError], first: bool = False
    ) -> P | ApiError:
        """One request of the read, retried while it fails transiently (each retry with a
        budget slot of its own); `first`: the loop already took its slot."""
        if not first:
            await self.context.budget.acquire()
        outcome = await self._attempt(endpoint, parse)
        if not is_transient(outcome):
            return outcome
        return await retried(
            ATTEMPTS, self.context, self.context.key_paused, lambda: self._attempt(endpoint, parse)
        )

    async def _attempt(
        self, endpoint: str, parse: Callable[[int, bytes], P | ApiError]
    ) -> P | ApiError:
        raw = await self.context.client.get_workspace(endpoint)
        outcome = raw.read(parse)
        self.context.budget.learn(raw, outcome)
        if isinstance(outcome, ApiError) and not self.expected(outcome):
            self.record.count(outcome.code)
        elif isinstance(outcome, Parsed) and outcome.skipped:
            self.record.count(INVALID_VALUE, outcome.skipped)
        return outcome

    async def stop(self) -> None:
        """Cancel the read in flight (the scheduler stops)."""
        task = self.inflight
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# A retry that found the workspace paused for its key by the time its slot came: not sent.
KEY_REJECTED = ApiError("UNAUTHORIZED", ErrorKind.AUTH)

R = TypeVar("R")


async def retried(
    attempts: int,
    context: ReadContext,
    key_paused: threading.Event,
    attempt: Callable[[], Awaitable[R]],
) -> R | ApiError:
    """The retries of a transient failure, for a poll or a read: random exponential waits up
    to RETRY_WAIT_MAX, each retry with a budget slot of its own, until `attempts` in all were
    sent or the workspace pauses for its key (seen by another request). A retry whose slot
    comes during a pause is not sent (KEY_REJECTED): only probes leave during a pause."""

    async def after_a_slot() -> R | ApiError:
        await context.budget.acquire()
        if key_paused.is_set():
            return KEY_REJECTED
        return await attempt()

    retries = AsyncRetrying(
        stop=stop_after_attempt(attempts - 1) | stop_when_event_set(key_paused),
        wait=wait_random_exponential(multiplier=1, max=RETRY_WAIT_MAX),
        retry=retry_if_result(is_transient),
        sleep=context.clock.sleep,
        retry_error_callback=_last_result,
    )
    result: R | ApiError = await retries(after_a_slot)
    return result


def _last_result(state: RetryCallState) -> Any:
    assert state.outcome is not None
    return state.outcome.result()
