"""When each account of a workspace is next due, and the polling loop's sleep and wake-up."""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Mapping

from exporter.clock import Clock
from exporter.store import AccountState


class PollQueue:
    """A heap of (due, account ID) entries; only an account's latest entry counts.

    Planning an account again replaces its plan, so a plan never has to be found and removed.
    The live plan is the due time in the account's own slot `slot` (None: not planned). An
    entry is stale when its due time differs from it; one that equals it is as good as the
    live entry. At 100,000 accounts a slot takes 8 bytes an account, where a dict of live
    plans took ~40-80 and a version counter ~60. Entries name the account by its ID, found
    in `accounts`: a tuple of a float and a str is one the garbage collector stops scanning,
    where one holding the account would be scanned at every full collection.
    """

    def __init__(
        self,
        clock: Clock,
        slot: str,
        accounts: Mapping[str, AccountState],
        sleeper: PollQueue | None = None,
    ) -> None:
        self.clock = clock
        # The queue whose wait() the polling loop sleeps in: a second queue (health polls)
        # wakes the loop through it. Only the first queue's plans are the accounts' next poll.
        self._sleeper = sleeper or self
        self.slot = slot
        self.accounts = accounts
        self._heap: list[tuple[float, str]] = []
        self._woken: asyncio.Future[None] | None = None
        # When the sleeping loop means to look again (-inf: it is not sleeping).
        self._waiting_until = -math.inf

    def plan(self, account: AccountState, due: float) -> None:
        """Poll `account` at `due` (monotonic seconds), replacing any earlier plan."""
        setattr(account, self.slot, due)
        heapq.heappush(self._heap, (due, account.id))
        if due < self._sleeper._waiting_until:
            self._sleeper.wake()  # only when the loop sleeps past this account's turn

    def forget(self, account: AccountState) -> None:
        """Drop the account's plan (it is removed)."""
        setattr(account, self.slot, None)

    def planned(self, account: AccountState) -> bool:
        """Whether the account waits for a poll (not when its poll is in flight)."""
        return getattr(account, self.slot) is not None

    def next_due(self) -> float | None:
        """When the most overdue account is due; None when none is planned."""
        heap = self._heap
        while heap and self._live(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # an account removed, or planned again since
        return heap[0][0] if heap else None

    def _live(self, account_id: str) -> float | None:
        account = self.accounts.get(account_id)
        return None if account is None else getattr(account, self.slot)

    def pop(self) -> str:
        """Take the most overdue account (call next_due() first)."""
        account_id = heapq.heappop(self._heap)[1]
        setattr(self.accounts[account_id], self.slot, None)
        return account_id

    async def wait(self, seconds: float | None) -> None:
        """Sleep for `seconds` (None: indefinitely) or until the plans change."""
        # A bare future and timer, not a sleeping task: this runs once per poll.
        woken = self._woken = asyncio.get_running_loop().create_future()
        timer = None
        self._waiting_until = math.inf
        if seconds is not None:
            timer = self.clock.call_later(seconds, self.wake)
            self._waiting_until = self.clock.monotonic() + seconds
        try:
            await woken
        finally:
            self._waiting_until = -math.inf
            if timer is not None:
                timer.cancel()

    def wake(self) -> None:
        """Let the sleeping loop look again."""
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)
