"""What survives a restart (`--storage.path`): each account's last good values, status and
schedule, each workspace's learned pace, and its workspace reads' last values and next read
times, so a restart neither blanks the graphs nor spends a platform window again.

One JSON file, `state.json`, written atomically (a temporary file, fsync, rename) at most
every SAVE_EVERY seconds when something changed, and once more at shutdown. It holds no
secret. A file that cannot be used (another format version, torn, garbage) is logged once,
moved aside to `state.json.corrupt`, and the exporter starts fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from exporter.accounts import AccountSet
from exporter.clock import Clock, SystemClock
from exporter.logs import FieldLogger
from exporter.parse import Health, Snapshot
from exporter.ratelimit import Budget
from exporter.reads import WorkspaceRead
from exporter.store import AccountState, StateStatus, Status, Store
from exporter.workspace_answers import (
    ANALYTICS,
    DELIVERY_JOBS,
    USAGE,
    Analytics,
    DeliveryJobs,
    PlatformHealth,
    PlatformPosts,
    Usage,
    WorkspaceFacts,
)

FORMAT_VERSION = 1
STATE_FILE = "state.json"
SAVE_EVERY = 30.0
# Accounts encoded per slice: the event loop runs between slices.
ACCOUNTS_PER_SLICE = 50
# Bytes of the state file handed to the writing thread at a time.
WRITE_BATCH = 1 << 20

log = FieldLogger("exporter.persistence")


@dataclass(frozen=True, slots=True)
class SavedWorkspace:
    """One workspace as the last process left it."""

    base_url: str
    pace_requests_per_minute: float | None
    accounts: dict[str, dict[str, Any]]
    # The workspace reads' values and times (encode_facts), if the file has them.
    reads: dict[str, Any] | None = None


class StateFile:
    """The state file in a storage directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE

    def prepare(self) -> bool:
        """Create the directory if missing (one level), and check it is writable."""
        try:
            self.directory.mkdir(exist_ok=True)
            probe = self.directory / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            log.error(
                "storage directory is not usable; running without persistence",
                path=str(self.directory),
                err=exc.strerror or str(exc),
            )
            return False
        return True

    def load(self) -> dict[str | None, SavedWorkspace]:
        """The saved workspaces (by name; None for the single form), or none at all."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("cannot read the state file; starting fresh", path=str(self.path),
                      err=exc.strerror or str(exc))  # fmt: skip
            return {}
        try:
            return _decode(json.loads(text))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            aside = self.path.with_name(STATE_FILE + ".corrupt")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.error(
                "state file unusable; moved aside, starting fresh",
                path=str(self.path),
                moved_to=str(aside),
                reason=str(exc)[:200],
            )
            return {}

    def begin(self) -> BinaryIO:
        """The temporary file a save writes to, piece by piece (finish() puts it in place)."""
        return open(self.path.with_name(STATE_FILE + ".tmp"), "wb")

    def finish(self, out: BinaryIO) -> None:
        """Replace the file with the temporary one, atomically: a crash leaves the old file
        or the new, never half."""
        with out:
            out.flush()
            os.fsync(out.fileno())
        os.replace(out.name, self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)


def _decode(payload: Any) -> dict[str | None, SavedWorkspace]:
    if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
        version = payload.get("version") if isinstance(payload, dict) else None
        raise ValueError(f"format version {version!r}, not {FORMAT_VERSION}")
    out: dict[str | None, SavedWorkspace] = {}
    for entry in payload["workspaces"]:
        accounts = entry["accounts"]
        if not isinstance(accounts, dict) or not isinstance(entry["base_url"], str):
            raise ValueError("a workspace without accounts or base_url")
        pace = entry.get("pace_requests_per_minute")
        reads = entry.get("reads")
        out[entry["name"]] = SavedWorkspace(
            entry["base_url"],
            float(pace) if pace is not None else None,
            accounts,
            reads if isinstance(reads, dict) else None,
        )
    return out


# -- accounts ---------------------------------------------------------------------------------

_KEPT = ("platform", "status", "account_name", "consecutive_failures", "problem",
         "problem_detail", "last_poll_wall")  # fmt: skip


def encode_account(account: AccountState, wall: float, monotonic: float) -> dict[str, Any]:
    """What is kept of an account (no counters: they restart at 0, as Prometheus expects),
    at `wall` (Unix time) and `monotonic` (the same instant by the scheduler's clock)."""
    out: dict[str, Any] = {name: getattr(account, name) for name in _KEPT}
    out["next_poll_wall"] = account.next_poll_wall(wall, monotonic)
    for name in ("snapshot", "previous", "health"):
        value = getattr(account, name)
        out[name] = None if value is None else value._asdict()
    return out


def restore_account(account: AccountState, saved: dict[str, Any]) -> float | None:
    """Put what was kept back on `account`, and return when its next poll was planned (Unix
    time; None: it was being polled); raises on anything malformed."""
    account.status = Status(saved["status"])
    account.account_name = str(saved["account_name"])
    account.consecutive_failures = int(saved["consecutive_failures"])
    account.problem = str(saved["problem"])
    account.problem_detail = str(saved["problem_detail"])
    account.last_poll_wall = _number(saved["last_poll_wall"])
    next_poll = _number(saved["next_poll_wall"])
    account.snapshot = _snapshot(saved["snapshot"])
    account.previous = _snapshot(saved["previous"])
    account.health = None if saved["health"] is None else Health(**saved["health"])
    return next_poll


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _snapshot(value: Any) -> Snapshot | None:
    if value is None:
        return None
    names = set(Snapshot._fields)
    data = {k: v for k, v in value.items() if k in names}
    for key in ("platform_values", "platform_flags", "unavailable"):
        data[key] = tuple(tuple(pair) for pair in data.get(key, ()))
    return Snapshot(**data)


def restore(accounts: AccountSet, budget: Budget, saved: SavedWorkspace) -> int:
    """Before polling starts: each account the last process knew gets its values, status and
    schedule back (its next poll as planned then, never before its platform's floor since
    its last request); the workspace gets its learned pace. Returns how many came back."""
    clock = accounts.clock
    now, wall = clock.monotonic(), clock.wall()
    if saved.pace_requests_per_minute:
        learned = saved.pace_requests_per_minute / 60.0
        budget.rate = max(budget.min_rate, min(budget.configured_rate, learned))
    restored = 0
    for account_id, data in saved.accounts.items():
        account = accounts.adopt(account_id, now)
        if account is None:
            continue  # no longer in the config, the listing or this shard
        try:
            next_poll = restore_account(account, data)
            accounts.learn_platform(account, str(data["platform"]))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("an account's saved state is unusable; it starts fresh",
                        account_id=account_id, reason=str(exc)[:200])  # fmt: skip
            continue
        due = next_poll if next_poll is not None else wall
        if account.last_poll_wall is not None:
            due = max(due, account.last_poll_wall + accounts.polling.floor_for(account.platform))
        accounts.queue.plan(account, now + max(0.0, due - wall))
        for read in accounts.reads:
            read.restored(account, now)
        accounts.store.changed(account)
        restored += 1
    return restored


# -- the workspace reads ----------------------------------------------------------------------


def encode_facts(facts: WorkspaceFacts) -> dict[str, Any]:
    """What is kept of the workspace reads: their last good values, and each read's last
    success and next read (Unix time); no counters."""
    analytics = facts.analytics
    return {
        USAGE: None if facts.usage is None else facts.usage._asdict(),
        DELIVERY_JOBS: None if facts.delivery_jobs is None else facts.delivery_jobs._asdict(),
        ANALYTICS: None
        if analytics is None
        else {
            "available": analytics.available,
            "by_platform": [row._asdict() for row in analytics.by_platform],
            "window_posts": analytics.window_posts,
            "platforms": [entry._asdict() for entry in analytics.platforms],
        },
        "records": {
            read: {"last_success": record.last_success, "next_read": record.next_read}
            for read, record in facts.records.items()
        },
    }


def _pairs(value: Any) -> tuple[tuple[str, float], ...]:
    return tuple((str(name), float(count)) for name, count in value)


def _decode_facts(saved: dict[str, Any], facts: WorkspaceFacts, reads: set[str]) -> None:
    usage, jobs, analytics = saved.get(USAGE), saved.get(DELIVERY_JOBS), saved.get(ANALYTICS)
    if USAGE in reads and usage is not None:
        facts.usage = Usage(**{**usage, "posts": _pairs(usage["posts"])})
    if DELIVERY_JOBS in reads and jobs is not None:
        facts.delivery_jobs = DeliveryJobs(**jobs)
    if ANALYTICS in reads and analytics is not None:
        rows = tuple(
            PlatformPosts(**{**row, "engagement": _pairs(row["engagement"])})
            for row in analytics["by_platform"]
        )
        health = tuple(PlatformHealth(**entry) for entry in analytics["platforms"])
        window = _pairs(analytics["window_posts"])
        facts.analytics = Analytics(bool(analytics["available"]), rows, window, health)


def restore_reads(reads: Sequence[WorkspaceRead[Any]], store: Store, saved: SavedWorkspace,
                  clock: Clock) -> None:  # fmt: skip
    """Before polling starts: the reads that are on get their last values back, and their
    next read as the last process planned it (at once, if it was reading)."""
    if saved.reads is None or not reads:
        return
    now, wall = clock.monotonic(), clock.wall()
    on = {read.name for read in reads if read.interval() > 0}
    try:
        _decode_facts(saved.reads, store.facts, on)
        records = saved.reads.get("records") or {}
        for read in reads:
            record = records.get(read.name) if read.name in on else None
            if record is None:
                continue
            read.record.last_success = _number(record.get("last_success"))
            next_read = _number(record.get("next_read"))
            read.restored(now, now if next_read is None else now + (next_read - wall))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        store.facts.usage = store.facts.delivery_jobs = store.facts.analytics = None
        log.warning("the workspace reads' saved state is unusable; they start fresh",
                    workspace=store.workspace, reason=str(exc)[:200])  # fmt: skip


# -- saving -----------------------------------------------------------------------------------


class StateSaver:
    """Saves every workspace's state when something changed, at most every SAVE_EVERY s."""

    def __init__(
        self,
        file: StateFile,
        stores: Callable[[], Sequence[Store]],
        base_urls: Callable[[Store], str],
        status: StateStatus,
        clock: Clock | None = None,
    ) -> None:
        self.file = file
        self.stores = stores
        self.base_urls = base_urls
        self.status = status
        self.clock: Clock = clock or SystemClock()
        self.dirty = True

    def account_changed(self, account: AccountState) -> None:
        self.dirty = True

    def account_removed(self, account: AccountState) -> None:
        self.dirty = True

    async def run(self) -> None:
        """Save every SAVE_EVERY seconds when something changed, until cancelled."""
        while True:
            await asyncio.sleep(SAVE_EVERY)
            if self.dirty:
                await self.save()

    async def save(self) -> None:
        """One save; a failure is counted and logged, and the next save tries again."""
        self.dirty = False
        try:
            await self._write()
        except OSError as exc:
            self.dirty = True
            self.status.save_failures += 1
            log.error("saving state failed", path=str(self.file.path),
                      err=exc.strerror or str(exc))  # fmt: skip
            return
        self.status.last_save = time.time()

    async def _write(self) -> None:
        """Encode on the loop, a slice of accounts at a time; write from a thread, about a
        megabyte at a time. Never the whole file in memory: it grows with the accounts, and
        the allocator would keep what it took after the save."""
        out = await asyncio.to_thread(self.file.begin)
        try:
            batch: list[bytes] = []
            size = 0
            async for piece in self._encode():
                batch.append(piece)
                size += len(piece)
                if size >= WRITE_BATCH:
                    await asyncio.to_thread(out.writelines, batch)
                    batch, size = [], 0
            await asyncio.to_thread(out.writelines, batch)
        except BaseException:
            out.close()
            raise
        await asyncio.to_thread(self.file.finish, out)

    async def _encode(self) -> AsyncIterator[bytes]:
        """The file's bytes in pieces, built in slices with the event loop free between."""
        yield b'{"version": %d, "workspaces": [' % FORMAT_VERSION
        for index, store in enumerate(self.stores()):
            head = {"name": store.workspace, "base_url": self.base_urls(store),
                    "pace_requests_per_minute": store.budget_requests_per_minute,
                    "reads": encode_facts(store.facts)}  # fmt: skip
            yield (b", " if index else b"") + json.dumps(head)[:-1].encode()
            yield b', "accounts": {'
            accounts = list(store.accounts.values())
            for start in range(0, len(accounts), ACCOUNTS_PER_SLICE):
                wall, monotonic = self.clock.wall(), self.clock.monotonic()  # once a slice
                yield (
                    ", ".join(
                        f"{json.dumps(a.id)}: {json.dumps(encode_account(a, wall, monotonic))}"
                        for a in accounts[start : start + ACCOUNTS_PER_SLICE]
                    ).encode()
                    + (b", " if start + ACCOUNTS_PER_SLICE < len(accounts) else b"")
                )
                await asyncio.sleep(0)
            yield b"}}"
        yield b"]}"
