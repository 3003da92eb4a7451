"""What to read next in one workspace, and when: the loop that takes a budget slot and
starts the read that has been due longest.

Every periodic read (reads.AccountRead) has its own queue of plans; the loop sleeps until
the soonest plan and a budget slot are ready, then dispatches reads in ACCOUNT_READS order:
a metrics poll that is due always goes first. During a pause for the workspace's key only
the reads that probe the key (the metrics polls) are sent, one at a time.

    scheduler = Scheduler(workspace, config.polling, store, client, SystemClock())
    task = asyncio.create_task(scheduler.run())  # polls until cancelled
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from exporter.accounts import AccountSet, Demand
from exporter.authpause import AuthPause
from exporter.clock import Clock
from exporter.health import HealthRead
from exporter.logs import FieldLogger
from exporter.pollqueue import LoopSleep
from exporter.polls import MetricsPolls
from exporter.ratelimit import Budget
from exporter.reads import AccountRead, Client, PeriodicRead, ReadContext, WorkspaceRead
from exporter.schema import PollingConfig, WorkspaceConfig
from exporter.sharding import Shard
from exporter.store import Status, Store
from exporter.workspace_reads import workspace_reads

# The reads of each account besides the metrics polls, in the order they take a due slot.
ACCOUNT_READS: Sequence[Callable[[ReadContext, LoopSleep], AccountRead[Any]]] = (HealthRead,)
# The reads of the workspace (by shard 0 only), built and wired together, in that order.
WORKSPACE_READS: Callable[[ReadContext, LoopSleep], Sequence[WorkspaceRead[Any]]] = workspace_reads


class Scheduler:
    """Reads one workspace's accounts at their cadence, within that workspace's budget.

    Each workspace has its own scheduler: its own budget, limiter state, backoff and pauses,
    so one workspace's 401 or 429 never slows another.
    """

    def __init__(
        self,
        workspace: WorkspaceConfig,
        polling: PollingConfig,
        store: Store,
        client: Client,
        clock: Clock,
        rng: random.Random | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.log = FieldLogger("exporter.scheduler", workspace=workspace.name)
        rng = rng or random.Random()
        self.budget = Budget(
            workspace.unipost.requests_per_minute, clock, polling.max_backoff, store
        )
        self.context = ReadContext(
            store=store,
            budget=self.budget,
            clock=clock,
            log=self.log,
            client=client,
            workspace=workspace,
            polling=polling,
            rng=rng,
            demand=Demand(workspace.unipost.requests_per_minute, store, self.log, rng),
        )
        self.sleep = LoopSleep(clock)
        shard = shard or Shard()
        self.accounts = AccountSet(self.context, shard.owns)
        self.auth = AuthPause(clock, polling.max_backoff, self.log, self._mark_unauthorized)
        self.polls = MetricsPolls(self.context, self.sleep, self.accounts, self.auth)
        self.context.account_news = self.polls.apply_error
        self.context.key_rejected = lambda code: self.auth.rejected(code, probe=False)
        self.context.key_paused = self.auth.paused
        account_reads = [make(self.context, self.sleep) for make in ACCOUNT_READS]
        # Shard 0 reads the workspace for every replica: no series or request is doubled.
        self.workspace_reads = WORKSPACE_READS(self.context, self.sleep) if shard.index == 0 else []
        # Every read the loop gives slots to, in the order a due one takes a slot.
        self.reads: list[PeriodicRead] = [self.polls, *account_reads, *self.workspace_reads]
        self._probes = [read for read in self.reads if read.probes_key]
        self.accounts.start(self.polls, account_reads)
        now = clock.monotonic()
        for read in self.workspace_reads:
            read.follow(now)

    @property
    def workspace(self) -> WorkspaceConfig:
        return self.context.workspace

    @property
    def polling(self) -> PollingConfig:
        return self.context.polling

    @property
    def client(self) -> Client:
        return self.context.client

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
            for read in self.reads:
                await read.stop()

    async def _step(self) -> None:
        now = self.clock.monotonic()
        auth = self.auth
        if auth.active and auth.probe_inflight:
            await self.sleep.wait(None)  # the loop waits for the probe's verdict
            return
        if auth.active and now < auth.until:
            await self.sleep.wait(auth.until - now)
            return
        reads = self._probes if auth.active else self.reads
        dues = [(read.queue.next_due(), read) for read in reads]
        first = min((due for due, _ in dues if due is not None), default=None)
        if first is None:
            await self.sleep.wait(None)
            return
        # One sleep until both the most overdue read and a budget slot are ready.
        ready = max(first, self.budget.ready_at())
        if ready > now:
            # Held by a scrape: until it releases the budget and wakes the loop.
            await self.sleep.wait(None if ready == math.inf else ready - now)
            return
        if not self.budget.try_take():
            # A retry is queued for the slot: it goes first; look again one slot later.
            await self.sleep.wait(1.0 / self.budget.rate)
            return
        for due, read in dues:  # the first read that is due, in ACCOUNT_READS order
            if due is not None and due <= now:
                read.dispatch(read.queue.pop(), now)
                return

    def _mark_unauthorized(self, code: str) -> None:
        """The workspace's key is rejected (AuthPause): every account says so."""
        for account in self.store.accounts.values():
            self.accounts.set_status(account, Status.UNAUTHORIZED, code, quiet=True)
            self.store.changed(account)

    # -- a reloaded config ----------------------------------------------------------------------

    def reconfigure(
        self,
        workspace: WorkspaceConfig,
        polling: PollingConfig,
        client: Client | None = None,
    ) -> None:
        """Apply a reloaded config at once (`client`: a new connection to UniPost). Unchanged
        accounts keep their state, counters, backoff and place in the schedule; added ones
        start; removed ones stop."""
        old_key, old_url = self.workspace.unipost.api_key, self.workspace.unipost.base_url
        self.context.workspace, self.context.polling = workspace, polling
        self.budget.reconfigure(workspace.unipost.requests_per_minute, polling.max_backoff)
        self.auth.max_pause = polling.max_backoff
        if workspace.unipost.api_key != old_key:
            self.auth.new_key()
        self.accounts.reconfigure(workspace, polling)
        for read in self.workspace_reads:
            read.follow(self.clock.monotonic())
        if client is not None:
            self.context.client = client
            self._forget_the_old_connection(new_address=workspace.unipost.base_url != old_url)
        self.sleep.wake()

    def _forget_the_old_connection(self, new_address: bool) -> None:
        """A new key, address or timeout: the backoff, pause, refusals and re-checks the old
        connection earned say nothing about the new one. Every account is polled again as
        soon as the budget allows, its platform's floor still respected, except at a new
        address: no request of the old one reached it, so no platform window was spent."""
        self.auth.reset()
        self.budget.forget_refusals()
        self.polls.poll_again(skip=self.polls.inflight, respect_floors=not new_address)


__all__: list[str] = ["ACCOUNT_READS", "Scheduler"]
