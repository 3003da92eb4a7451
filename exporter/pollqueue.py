"""When each account of a workspace is next due for one kind of read, and the polling loop's
sleep, which every queue wakes.

    queue = PollQueue(accounts, METRICS_DUE, LoopSleep(clock))
    queue.plan(account, clock.monotonic() + 300)
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from exporter.clock import Clock
from exporter.store import AccountState

# Seconds of due time per bucket: at 1,000 polls a second the soonest one orders ~1,000.
TICK = 1.0


def _tick(due: float) -> int:
    """The bucket a plan due at `due` waits in."""
    return math.floor(due / TICK)


@dataclass(frozen=True, slots=True)
class DueSlot:
    """Where a queue keeps each account's live plan: a slot of AccountState, read and
    written through these two functions (None: not planned, or its read is in flight)."""

    get: Callable[[AccountState], float | None]
    set: Callable[[AccountState, float | None], None]


def _set_metrics_due(account: AccountState, due: float | None) -> None:
    account.metrics_due = due


def _set_health_due(account: AccountState, due: float | None) -> None:
    account.health_due = due


METRICS_DUE = DueSlot(lambda account: account.metrics_due, _set_metrics_due)
HEALTH_DUE = DueSlot(lambda account: account.health_due, _set_health_due)


class LoopSleep:
    """The polling loop's sleep: until a time, or until a queue's plans change."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._woken: asyncio.Future[None] | None = None
        # When the sleeping loop means to look again (-inf: it is not sleeping).
        self.waiting_until = -math.inf

    async def wait(self, seconds: float | None) -> None:
        """Sleep for `seconds` (None: indefinitely) or until woken."""
        # A bare future and timer, not a sleeping task: this runs once per poll.
        woken = self._woken = asyncio.get_running_loop().create_future()
        timer = None
        self.waiting_until = math.inf
        if seconds is not None:
            timer = self.clock.call_later(seconds, self.wake)
            self.waiting_until = self.clock.monotonic() + seconds
        try:
            await woken
        finally:
            self.waiting_until = -math.inf
            if timer is not None:
                timer.cancel()

    def wake(self) -> None:
        """Let the sleeping loop look again."""
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)


class PollQueue:
    """When each account is next due: only an account's latest plan counts.

    Planning an account again replaces its plan, so a plan never has to be found and removed.
    The live plan is the due time in the account's slot (`due`); an entry is stale when its
    due time differs from it, and one that equals it is as good as the live entry.

    Plans wait in buckets of account IDs, one bucket per TICK of due time; only the soonest
    bucket's plans are ordered, in a small heap of (due, account ID) tuples (`_near`, which
    takes every plan due up to its tick). The accounts come out exactly in heap order, as
    from one heap of every plan, at 8 bytes a plan instead of a tuple. Entries name the
    account by its ID, found in `accounts`: a tuple of a float and a str is one the garbage
    collector stops scanning. (The memory this saves: docs/performance.md.)
    """

    def __init__(
        self, accounts: Mapping[str, AccountState], due: DueSlot, sleep: LoopSleep
    ) -> None:
        self.accounts = accounts
        self._get, self._set = due.get, due.set
        self.sleep = sleep  # woken when a plan comes due before the loop means to look
        # The ordered plans: every one due up to the end of tick `_near_tick`.
        self._near: list[tuple[float, str]] = []
        self._near_tick = -math.inf
        # The other plans: tick -> the IDs planned in it (some stale), and a heap of the ticks.
        self._buckets: dict[int, list[str]] = {}
        self._ticks: list[int] = []

    def plan(self, account: AccountState, due: float) -> None:
        """Poll `account` at `due` (monotonic seconds), replacing any earlier plan."""
        self._set(account, due)
        tick = _tick(due)
        if tick <= self._near_tick:
            heapq.heappush(self._near, (due, account.id))
        else:
            bucket = self._buckets.get(tick)
            if bucket is None:
                bucket = self._buckets[tick] = []
                heapq.heappush(self._ticks, tick)
            bucket.append(account.id)
        if due < self.sleep.waiting_until:
            self.sleep.wake()  # only when the loop sleeps past this account's turn

    def forget(self, account: AccountState) -> None:
        """Drop the account's plan (it is removed)."""
        self._set(account, None)

    def planned(self, account: AccountState) -> bool:
        """Whether the account waits for a poll (not when its poll is in flight)."""
        return self._get(account) is not None

    def next_due(self) -> float | None:
        """When the most overdue account is due; None when none is planned."""
        near = self._near
        while True:
            while near and self._live(near[0][1]) != near[0][0]:
                heapq.heappop(near)  # an account removed, or planned again since
            if near:
                return near[0][0]
            if not self._ticks:
                return None
            self._order(heapq.heappop(self._ticks))

    def _order(self, tick: int) -> None:
        """Move the live plans of the soonest bucket into the (empty) ordered heap."""
        self._near_tick = tick
        for account_id in self._buckets.pop(tick):
            due = self._live(account_id)
            if due is not None and _tick(due) == tick:
                self._near.append((due, account_id))
        heapq.heapify(self._near)

    def _live(self, account_id: str) -> float | None:
        account = self.accounts.get(account_id)
        return None if account is None else self._get(account)

    def pop(self) -> str:
        """Take the most overdue account (call next_due() first)."""
        account_id = heapq.heappop(self._near)[1]
        self._set(self.accounts[account_id], None)
        return account_id
