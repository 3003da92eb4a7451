"""The running exporter: one polling unit per workspace, started, stopped and reconfigured
in place when the config is reloaded.

    runtime = Runtime(config, Options(loader=reread), SystemClock(), make_session)
    await runtime.start()
    problems = await runtime.reload()  # [] when the new config is running
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp

from exporter import heap
from exporter.client import UniPostClient
from exporter.clock import Clock
from exporter.discovery import Discoverer
from exporter.logs import FieldLogger
from exporter.options import Options
from exporter.persistence import SavedWorkspace, StateFile, StateSaver, restore, restore_reads
from exporter.scheduler import Scheduler
from exporter.schema import Config, UniPostConfig, WorkspaceConfig
from exporter.store import ReloadStatus, StateStatus, Store
from exporter.validation import ConfigError

log = FieldLogger("exporter.runtime")

SessionFactory = Callable[[UniPostConfig], aiohttp.ClientSession]


def _connection(unipost: UniPostConfig) -> tuple[str, str, float]:
    """What a session is built from: a change to any of these needs a new session."""
    return (unipost.api_key, unipost.base_url, unipost.timeout)


@dataclass
class _Workspace:
    """One workspace's polling: its store, session, client, scheduler and tasks."""

    config: WorkspaceConfig
    store: Store
    session: aiohttp.ClientSession
    client: UniPostClient
    scheduler: Scheduler
    scheduler_task: asyncio.Task[None] | None = None
    discoverer: Discoverer | None = None
    discovery_task: asyncio.Task[None] | None = None


class Runtime:
    """Owns every workspace's polling, and the list of their stores (`stores`, in config
    order), which a reload replaces."""

    def __init__(
        self, config: Config, options: Options, clock: Clock, session_factory: SessionFactory
    ) -> None:
        shard, storage = options.shard, options.storage
        self.config = shard.apply(config)
        # --storage.path: what survives a restart (None: nothing).
        self.state_status: StateStatus | None = StateStatus() if storage else None
        self._state = StateFile(storage) if storage else None
        self._saver: StateSaver | None = None
        self._saver_task: asyncio.Task[None] | None = None
        self.clock = clock
        self.session_factory = session_factory
        self.shard = shard
        self.loader = options.loader
        self._stores = tuple(Store(workspace=ws.name) for ws in self.config.workspaces)
        self.reload_status = ReloadStatus(success_timestamp=clock.wall())
        self._workspaces: dict[str | None, _Workspace] = {}
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._unheld_until = -math.inf  # scrapes_first(): no hold begins before this

    def stores(self) -> Sequence[Store]:
        """Every workspace's store, in config order (a reload may change the list)."""
        return self._stores

    def schedulers(self) -> list[Scheduler]:
        """Every workspace's scheduler, as polling runs now."""
        return [unit.scheduler for unit in self._workspaces.values()]

    @contextlib.contextmanager
    def scrapes_first(self) -> Iterator[None]:
        """While a scrape renders, no request goes out: Prometheus waits on the scrape, a
        poll can wait the few milliseconds. Polls are held at most half the time: after a
        hold of d seconds, the next render that begins within d seconds holds nothing, so
        scrapers back to back never starve polling."""
        began = self.clock.monotonic()
        if began < self._unheld_until:
            yield
            return
        schedulers = self.schedulers()
        for scheduler in schedulers:
            scheduler.budget.hold()
        try:
            yield
        finally:
            ended = self.clock.monotonic()
            self._unheld_until = ended + (ended - began)
            for scheduler in schedulers:
                scheduler.budget.release()
                scheduler.sleep.wake()

    @property
    def polling_started(self) -> bool:
        """Whether every workspace polls."""
        return all(store.polling_started for store in self._stores)

    async def start(self) -> None:
        """Take back the saved state, then start polling every workspace."""
        saved: dict[str | None, SavedWorkspace] = {}
        if self._state is not None and not self._state.prepare():
            self._state = None
            if self.state_status is not None:
                self.state_status.enabled = False
        if self._state is not None:
            saved = self._state.load()
        for workspace, store in zip(self.config.workspaces, self._stores, strict=True):
            self._workspaces[workspace.name] = self._start(
                workspace, store, saved.get(workspace.name)
            )
        if self._state is not None and self.state_status is not None:
            self._saver = StateSaver(
                self._state, self.stores, self._base_url, self.state_status, self.clock
            )
            for store in self._stores:
                store.listeners.append(self._saver)
            self._saver_task = asyncio.create_task(self._saver.run(), name="state saver")
        heap.collect_and_freeze()  # the accounts were just built; no poll is in flight yet

    async def stop(self) -> None:
        """Stop polling, save the state a last time, and close every connection."""
        for unit in self._workspaces.values():
            await self._stop(unit)
        if self._saver is not None and self._saver_task is not None:
            self._saver_task.cancel()
            await asyncio.gather(self._saver_task, return_exceptions=True)
            await self._saver.save()  # after polling stopped: nothing changes any more
        self._workspaces.clear()
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
        heap.release()

    def _connect(
        self, workspace: WorkspaceConfig, store: Store
    ) -> tuple[aiohttp.ClientSession, UniPostClient]:
        """A session with the workspace's key and timeout, and a client counting into store."""
        session = self.session_factory(workspace.unipost)
        return session, UniPostClient(session, store.api, workspace.unipost.base_url)

    def _base_url(self, store: Store) -> str:
        unit = self._workspaces.get(store.workspace)
        return unit.config.unipost.base_url if unit is not None else ""

    def _start(
        self, workspace: WorkspaceConfig, store: Store, saved: SavedWorkspace | None = None
    ) -> _Workspace:
        session, client = self._connect(workspace, store)
        scheduler = Scheduler(
            workspace, self.config.polling, store, client, self.clock, shard=self.shard
        )
        if saved is not None and saved.base_url != workspace.unipost.base_url:
            log.info("saved state dropped: the workspace's base_url changed",
                     workspace=workspace.name)  # fmt: skip
        elif saved is not None:
            count = restore(scheduler.accounts, scheduler.budget, saved)
            restore_reads(scheduler.workspace_reads, store, saved, self.clock)
            log.info("state restored", workspace=workspace.name, accounts=count)
        unit = _Workspace(workspace, store, session, client, scheduler)
        unit.scheduler_task = asyncio.create_task(
            scheduler.run(), name=f"scheduler {workspace.name or ''}"
        )
        self._start_discovery(unit)
        return unit

    def _start_discovery(self, unit: _Workspace) -> None:
        if not unit.config.discovery.enabled:
            unit.discoverer = None
            return
        scheduler = unit.scheduler
        unit.discoverer = Discoverer(
            unit.config.discovery,
            unit.client,
            scheduler.accounts,
            scheduler.budget,
            unit.store,
            self.clock,
        )
        unit.discovery_task = asyncio.create_task(
            unit.discoverer.run(), name=f"discovery {unit.config.name or ''}"
        )

    async def _stop(self, unit: _Workspace) -> None:
        tasks = [t for t in (unit.scheduler_task, unit.discovery_task) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        unit.scheduler_task = unit.discovery_task = None
        await unit.session.close()

    # -- reload ------------------------------------------------------------------------------

    async def reload(self) -> list[str]:
        """Re-read the config and apply it; on any problem keep the running config.

        Returns the problems (empty: reloaded). The outcome is also in `reload_status`.
        """
        async with self._lock:
            if self.loader is None:
                problems = ["this exporter was started without a config file to reload"]
            else:
                try:
                    config = await self.loader()
                except ConfigError as exc:
                    problems = exc.problems
                else:
                    await self._apply(self.shard.apply(config))
                    problems = []
            self.reload_status.successful = not problems
            if problems:
                log.error(
                    "config reload failed; keeping the running config",
                    problems="; ".join(problems),
                )
            else:
                self.reload_status.success_timestamp = self.clock.wall()
            return problems

    async def _apply(self, config: Config) -> None:
        old = self._workspaces
        new: dict[str | None, _Workspace] = {}
        stores: list[Store] = []
        changed: list[str] = []
        for workspace in config.workspaces:
            unit = old.pop(workspace.name, None)
            if unit is None:
                unit = self._start(workspace, Store(workspace=workspace.name))
                if self._saver is not None:
                    unit.store.listeners.append(self._saver)
                changed.append(f"+{workspace.name or 'workspace'}")
            elif unit.config != workspace or self.config.polling != config.polling:
                self._reconfigure(unit, workspace, config)
                changed.append(f"~{workspace.name or 'workspace'}")
            new[workspace.name] = unit
            stores.append(unit.store)
        for name, unit in old.items():
            await self._stop(unit)
            changed.append(f"-{name or 'workspace'}")
        self._workspaces = new
        self.config = config
        self._stores = tuple(stores)
        heap.collect_and_freeze()  # a reload may have added many accounts
        log.info(
            "config reloaded",
            workspaces=len(new),
            accounts=sum(len(s.accounts) for s in stores),
            changed=",".join(changed) or "nothing",
        )

    def _reconfigure(self, unit: _Workspace, workspace: WorkspaceConfig, config: Config) -> None:
        old = unit.config
        unit.config = workspace
        reconnected = _connection(old.unipost) != _connection(workspace.unipost)
        if reconnected:
            # A new key, address or timeout: a new session from now on. Requests already
            # sent finish on the old one, which closes once they have had their timeout.
            stale = unit.session
            unit.session, unit.client = self._connect(workspace, unit.store)
            task = asyncio.create_task(self._close_later(stale, old.unipost.timeout))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        unit.scheduler.reconfigure(
            workspace, config.polling, client=unit.client if reconnected else None
        )
        if reconnected or old.discovery != workspace.discovery:
            self._restart_discovery(unit)  # with the new client, and a fresh listing now

    def _restart_discovery(self, unit: _Workspace) -> None:
        if unit.discovery_task is not None:
            unit.discovery_task.cancel()
            unit.discovery_task = None
        self._start_discovery(unit)

    async def _close_later(self, session: aiohttp.ClientSession, after: float) -> None:
        try:
            await asyncio.sleep(after + 1.0)
        finally:
            await session.close()
