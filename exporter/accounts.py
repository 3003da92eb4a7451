"""Which accounts a workspace polls, at what interval, and what they cost its budget.

Accounts come from the config (always polled) and from the listing (discovery). Each has
an interval raised to its platform's floor, and a steady period (from outcomes.POLICIES)
whose sum, against the configured budget, gives the stretch factor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from exporter import heap, platforms
from exporter.durations import format_duration
from exporter.listing import ListedAccount
from exporter.logs import FieldLogger
from exporter.outcomes import JITTER, LISTED, POLICIES, Policy, steady_period
from exporter.parse import ApiError
from exporter.pollqueue import PollQueue
from exporter.reads import AccountRead, ReadContext
from exporter.schema import AccountConfig, DiscoveryConfig, PollingConfig, WorkspaceConfig
from exporter.store import UNCONFIGURED, AccountState, Status, Store

T = TypeVar("T")
# Listed accounts applied between two turns of the event loop, so that a large listing
# never holds the loop for long (scrapes and polls go on meanwhile).
LISTING_BATCH = 200
# Accounts checked between two turns of the loop when a listing looks for the ones it
# did not name (a check is a lookup and a compare, ~0.1 us).
SCANNED_PER_TURN = 5000
# "account discovered" and "account removed" lines per listing; the rest are counted.
LOGGED_PER_LISTING = 20
# A change to these statuses means the account brings no data: worth a warn line.
_WARN_ON = frozenset({Status.ERROR, Status.UNAUTHORIZED})


async def _turning(items: Iterable[T], batch: int = LISTING_BATCH) -> AsyncIterator[T]:
    """The items, with a turn of the event loop after every `batch` of them."""
    for index, item in enumerate(items):
        if index % batch == batch - 1:
            await asyncio.sleep(0)
        yield item


class AccountSet:
    """One workspace's polled accounts: membership, intervals, statuses and demand."""

    def __init__(self, context: ReadContext, owns: Callable[[str], bool]) -> None:
        self.context = context
        self.store = context.store
        self.clock = context.clock
        self.log = context.log
        self.demand = context.demand
        self.owns = owns  # whether this replica's shard polls an account
        self.discovery_enabled = context.workspace.discovery.enabled
        # The metrics polls' plans, and the other reads of each account (start()).
        self.queue: PollQueue
        self.reads: Sequence[AccountRead[Any]] = ()
        # Listings followed so far, plus one: the listed_in of an account a listing names.
        self._listings = 1
        # The status the listing gave an account (reconnect_required, disconnected).
        self._held_by_listing: dict[str, Status] = {}
        self._floor_logged: set[tuple[str, str]] = set()
        self._label_sets = heap.Interner[tuple[tuple[str, str], ...]]()
        # The polling policy the accounts' intervals and costs were last worked out under.
        self._priced_under = context.polling

    @property
    def polling(self) -> PollingConfig:
        return self.context.polling

    def start(self, polls: AccountRead[Any], reads: Sequence[AccountRead[Any]]) -> None:
        """Poll the configured accounts: their metrics with `polls`, and every other read."""
        self.queue, self.reads = polls.queue, reads
        now = self.clock.monotonic()
        for account in self.context.workspace.accounts:
            self._add(account.id, account, now)

    # -- membership ---------------------------------------------------------------------------

    def reconfigure(self, workspace: WorkspaceConfig, polling: PollingConfig) -> None:
        """Follow a reloaded config (the context already holds it): unchanged accounts keep
        their state and place, and under the same policy are not worked out again."""
        self.discovery_enabled = workspace.discovery.enabled
        self.demand.reconfigure(workspace.unipost.requests_per_minute)
        same_policy, self._priced_under = polling == self._priced_under, polling
        now = self.clock.monotonic()
        wanted = {account.id: account for account in workspace.accounts}
        entry_changed: set[str] = set()
        for state in list(self.store.accounts.values()):
            if state.configured and state.id not in wanted:
                if state.listed_in:
                    state.config = UNCONFIGURED  # polled on as a discovered one
                    entry_changed.add(state.id)
                else:
                    self.remove(state.id)
        if not workspace.discovery.enabled:
            for state in list(self.store.accounts.values()):
                if state.listed_in:
                    state.listed_in = 0
                    if state.id not in wanted:
                        self.remove(state.id)
        for account_id, account in wanted.items():
            known = self.store.accounts.get(account_id)
            if known is None:
                self._add(account_id, account, now)
            elif known.config != account:
                known.config = account
                entry_changed.add(account_id)
        for state in self.store.accounts.values():
            if same_policy and state.id not in entry_changed:
                continue
            state.labels = self._labels(state.config)
            self._base_interval(state)
            self._count_demand(state)
            for read in self.reads:
                read.follow(state, now)
            self.store.changed(state)

    async def sync_listing(
        self, listed: Iterable[ListedAccount], discovery: DiscoveryConfig
    ) -> None:
        """Make the polled accounts follow a fresh GET /v1/accounts listing, LISTING_BATCH
        accounts between two turns of the event loop. An account this listing names gets
        its number in listed_in; a discovered one left with an older number is gone."""
        self._listings += 1
        listing = self._listings
        added: list[str] = []
        async for item in _turning(listed):
            platform = item.platform or platforms.from_id(item.id)
            if item.id in discovery.exclude:
                continue
            if discovery.platforms and platform not in discovery.platforms:
                continue
            if self.owns(item.id):
                self._follow_listed(item, listing, added)
        _log_some(self.log, "account discovered", added, "accounts discovered")
        # The discovered accounts it did not name are gone: looked for SCANNED_PER_TURN at a
        # time, in a copy of the IDs (the store changes meanwhile).
        removed = []
        async for account_id in _turning(list(self.store.accounts), SCANNED_PER_TURN):
            state = self.store.accounts.get(account_id)
            if state is None or state.listed_in in (0, listing):
                continue  # not discovered, named by this listing, or gone meanwhile
            state.listed_in = 0
            if not state.configured:
                self.remove(account_id, logged=False)
                removed.append(account_id)
        _log_some(self.log, "account removed", removed, "accounts removed")

    def _follow_listed(self, item: ListedAccount, listing: int, added: list[str]) -> None:
        """One listed account: added if new, its name, platform and listed status followed."""
        now = self.clock.monotonic()
        account = self.store.accounts.get(item.id)
        if account is None:  # (every configured account is in the store)
            account = self._add(item.id, UNCONFIGURED, now)
            added.append(account.id)
            was = None
        else:
            was = (account.account_name, account.platform, account.status, account.interval)
        account.listed_in = listing
        if item.platform and item.platform != account.platform:
            self.learn_platform(account, item.platform)
            self._count_demand(account)
        if account.account_name != item.name:
            account.account_name = item.name
        self._follow_listed_status(account, item.status, now)
        if was != (account.account_name, account.platform, account.status, account.interval):
            self.store.changed(account)

    def _follow_listed_status(self, account: AccountState, listed: str, now: float) -> None:
        """An account the listing already calls broken is not worth a platform call: show
        its status and re-check it at that status's pace. Listed active again, poll it now."""
        kind = LISTED.get(listed)
        if kind is None:
            if self._held_by_listing.pop(account.id, None) is not None:
                self.queue.plan(account, now)
            return
        policy = POLICIES[kind]
        held = self._held_by_listing.get(account.id)
        if held == policy.status or not self.queue.planned(account):
            return  # held already, or its poll is in flight and will tell
        self._held_by_listing[account.id] = policy.status
        account.consecutive_failures = 0
        account.problem, account.problem_detail = f"listed as {listed}", ""
        self.set_status(account, policy.status, f"listed as {listed}")
        self.set_policy(account, policy)
        self.queue.plan(account, now + steady_period(policy, account.interval))

    def adopt(self, account_id: str, now: float) -> AccountState | None:
        """A discovered account the last process polled: back in, if discovery and this
        replica's shard still want it (the next listing confirms it or drops it)."""
        if account_id in self.store.accounts:
            return self.store.accounts[account_id]
        if not self.discovery_enabled or not self.owns(account_id):
            return None
        state = self._add(account_id, UNCONFIGURED, now)
        state.listed_in = self._listings  # the next listing confirms it or drops it
        return state

    def release_hold(self, account_id: str) -> None:
        """A poll's answer is fresher news than the listing's status."""
        self._held_by_listing.pop(account_id, None)

    def _add(self, account_id: str, config: AccountConfig, now: float) -> AccountState:
        state = AccountState(
            id=account_id,
            platform=platforms.from_id(account_id),
            labels=self._labels(config),
            interval=0.0,
        )
        state.config = config
        self._base_interval(state)
        self.store.add(state)
        self._count_demand(state)
        self.queue.plan(state, now)
        for read in self.reads:
            read.follow(state, now)
        return state

    def remove(self, account_id: str, logged: bool = True) -> None:
        """Stop polling an account; its series go with it (a poll in flight is discarded)."""
        account = self.store.accounts.get(account_id)
        if account is not None:
            self.queue.forget(account)
            for read in self.reads:
                read.queue.forget(account)
            self.demand.forget(account)
        self._held_by_listing.pop(account_id, None)
        self.store.remove(account_id)
        if logged:
            self.log.info("account removed", account_id=account_id)

    def _labels(self, account: AccountConfig) -> tuple[tuple[str, str], ...]:
        # One tuple per label set, not per account (the workspace label alone is on all).
        return self._label_sets(
            tuple(sorted((*account.labels, *self.store.workspace_labels.items())))
        )

    # -- intervals and statuses -----------------------------------------------------------------

    def _base_interval(self, account: AccountState) -> None:
        """Set the account's interval: its own or the default, raised to its platform's floor."""
        configured = account.config.interval
        wanted = configured if configured is not None else self.polling.interval
        floor = self.polling.floor_for(account.platform)
        key = (account.id, account.platform)
        if wanted < floor and configured is not None and key not in self._floor_logged:
            self._floor_logged.add(key)
            self.log.info(
                "interval raised to the platform's floor",
                account_id=account.id,
                platform=account.platform,
                interval=format_duration(wanted),
                floor=format_duration(floor),
            )
        account.interval = max(wanted, floor)

    def learn_platform(self, account: AccountState, platform: str | None) -> None:
        """The API names the account's platform: its floor applies from now on."""
        if platform and platform != account.platform:
            account.platform = sys.intern(platform)  # one restored from the state file is a copy
            self._base_interval(account)
            self._count_demand(account)

    def set_status(
        self,
        account: AccountState,
        status: Status,
        reason: str,
        quiet: bool = False,
        detail: str = "",
    ) -> None:
        """Change the account's status, logging it and why (warn: it stops bringing data)."""
        if account.status == status:
            return
        previous, account.status = account.status, status
        level = logging.WARNING if status in _WARN_ON else logging.INFO
        fields: dict[str, Any] = {"account_id": account.id, "platform": account.platform,
                                  "from": previous, "to": status, "reason": reason,
                                  **({"detail": detail} if detail else {})}  # fmt: skip
        self.log.log(logging.DEBUG if quiet else level, "account status changed", **fields)

    def set_policy(self, account: AccountState, policy: Policy) -> None:
        """The account is now polled under `policy`: recount what it costs, if it changed."""
        if account.policy is not policy:
            account.policy = policy
            self._count_demand(account)

    def _count_demand(self, account: AccountState) -> None:
        period = steady_period(account.policy, account.interval)
        # Every other read takes budget slots too (health: `accounts / health_interval`).
        self.demand.count(account, 1.0 / period + sum(read.cost(account) for read in self.reads))


def _log_some(log: FieldLogger, line: str, account_ids: list[str], summary: str) -> None:
    """A line per account for the first LOGGED_PER_LISTING, then one that counts the rest."""
    for account_id in account_ids[:LOGGED_PER_LISTING]:
        log.info(line, account_id=account_id)
    if len(account_ids) > LOGGED_PER_LISTING:
        log.info(summary, more=len(account_ids) - LOGGED_PER_LISTING, total=len(account_ids))


def count_error(account: AccountState, error: ApiError, what: str, store: Store,
                log: FieldLogger) -> None:  # fmt: skip
    """Count a failed request on the account's errors, and say so at debug."""
    account.count_api_error(error.code)
    store.changed(account)
    log.debug(what, account_id=account.id, code=error.code, http_status=error.http_status,
              detail=error.message)  # fmt: skip


class Demand:
    """What a workspace's accounts cost in requests per second, against its budget: the
    stretch factor that lengthens every interval evenly when they ask for more."""

    def __init__(
        self, requests_per_minute: float, store: Store, log: FieldLogger, rng: random.Random
    ) -> None:
        self.budget_rate = requests_per_minute / 60.0
        self.store = store
        self.log = log
        self.rng = rng
        self._total = 0.0  # the sum of every account's `demand`, and the workspace reads'
        self._reads: dict[str, float] = {}  # each workspace read's requests a second
        # One float object per distinct rate (accounts at the same interval share it): 24
        # bytes an account otherwise.
        self._rates = heap.Interner[float]()
        self._warned = False

    def reconfigure(self, requests_per_minute: float) -> None:
        """A reloaded budget; say again if the accounts do not fit it."""
        self.budget_rate = requests_per_minute / 60.0
        self._warned = False

    def count(self, account: AccountState, per_second: float) -> None:
        """The account now costs `per_second` requests a second (kept on the account)."""
        per_second = self._rates(per_second)
        self._total += per_second - account.demand
        account.demand = per_second

    def count_read(self, read: str, per_second: float) -> None:
        """A read of the workspace now costs `per_second` requests a second."""
        self._total += per_second - self._reads.get(read, 0.0)
        self._reads[read] = per_second

    def forget(self, account: AccountState) -> None:
        self._total -= account.demand
        account.demand = 0.0

    def stretch(self) -> float:
        """How much every interval is lengthened so that demand fits the budget.

        Against the configured budget, not the pace learned from 429s: a temporary slowdown
        must not push every next poll far out and leave the budget idle once it recovers.
        While the server allows less, accounts simply come due faster than the pace, and the
        most overdue goes first.
        """
        demand = self._total
        stretch = max(1.0, demand / self.budget_rate)
        if stretch > 1.0 and not self._warned:
            self._warned = True
            self.log.warning(
                "configured intervals ask for more requests than the budget allows; "
                "stretching every interval evenly",
                requests_per_minute_wanted=round(demand * 60, 2),
                requests_per_minute_budget=round(self.budget_rate * 60, 2),
                stretch_factor=round(stretch, 3),
            )
        self.store.interval_stretch_factor = stretch
        return stretch

    def stretched(self, delay: float) -> float:
        """`delay` lengthened by the stretch factor, or else by jitter (up to +10%)."""
        stretch = self.stretch()
        if stretch > 1.0:
            # The budget is the bottleneck: its even pacing already spreads the polls, and
            # jitter would only leave part of it unused.
            return delay * stretch
        return delay * (1.0 + self.rng.uniform(0.0, JITTER))
