"""Account discovery: keep the polled accounts in step with GET /v1/accounts."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from typing import Protocol

from exporter.accounts import AccountSet
from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.durations import format_duration
from exporter.listing import ListedAccount, classify_listing
from exporter.logs import FieldLogger
from exporter.parse import ApiError
from exporter.ratelimit import Budget
from exporter.schema import DiscoveryConfig
from exporter.store import Store

# After a failed refresh, try again sooner than refresh_interval: 1m, 2m, 4m, ...
RETRY_FIRST = 60.0


class ListingClient(Protocol):
    """What discovery needs from the HTTP client."""

    async def list_accounts(self, platform: str | None = None) -> RawResponse: ...


class Discoverer:
    """Lists the workspace's accounts every refresh_interval; the account set follows it.

    Listing spends from the workspace's budget, and teaches it, like any other request.
    """

    def __init__(
        self,
        config: DiscoveryConfig,
        client: ListingClient,
        accounts: AccountSet,
        budget: Budget,
        store: Store,
        clock: Clock,
    ) -> None:
        self.config = config
        self.client = client
        self.accounts = accounts
        self.budget = budget
        self.store = store
        self.clock = clock
        self._failures = 0
        self.log = FieldLogger("exporter.discovery", workspace=store.workspace)

    async def run(self) -> None:
        """Refresh now, then every refresh_interval (sooner after a failure), until cancelled."""
        while True:
            if await self.refresh():
                delay = self.config.refresh_interval
            else:
                delay = min(self.config.refresh_interval, RETRY_FIRST * 2 ** (self._failures - 1))
            await self.clock.sleep(delay)

    async def refresh(self) -> bool:
        """One refresh; on failure the last good list stays. True when it worked."""
        # One call per platform when exactly one is wanted (the API filters one platform);
        # otherwise a single unfiltered call, filtered here.
        platforms = self.config.platforms if len(self.config.platforms) == 1 else (None,)
        listed: list[Collection[ListedAccount]] = []
        for platform in platforms:
            await self.budget.acquire()
            raw = await self.client.list_accounts(platform)
            result = raw.read(classify_listing)
            self.budget.learn(raw, result)
            if isinstance(result, ApiError):
                self._failed(result)
                return False
            listed.append(result)
        if self._failures:
            self.log.info("account listing works again", accounts=sum(map(len, listed)))
        self._failures = 0
        await self.accounts.sync_listing(itertools.chain.from_iterable(listed), self.config)
        return True

    def _failed(self, error: ApiError) -> None:
        errors = self.store.discovery_errors
        errors[error.code] = errors.get(error.code, 0) + 1
        self._failures += 1
        if self._failures == 1:  # once per streak, not at every retry
            self.log.warning(
                "listing accounts failed; keeping the last good list",
                code=error.code,
                http_status=error.http_status,
                retry_in=format_duration(RETRY_FIRST),
            )
