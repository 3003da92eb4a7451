"""The fast exposition renders exactly what prometheus_client renders for the same store."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter import lines, server
from exporter.exposition import FastExposition
from exporter.scheduler import Scheduler
from exporter.server import _render as render_body
from exporter.server import build_registry, build_tail_registry
from exporter.store import Store
from tests.fake_unipost import FakeUniPost, Reply, error, snapshot, zero_filled
from tests.helpers import FakeClock, fixed_store, make_config, only


def assert_identical(store: Store | list[Store], fast: FastExposition) -> None:
    stores = store if isinstance(store, list) else [store]
    reference = build_registry(stores, with_process_metrics=False)
    assert fast.render() == generate_latest(reference)
    assert fast.render(openmetrics=True) == openmetrics_latest(reference)
    # The length a scrape declares before its first byte is the body's.
    for openmetrics in (False, True):
        with contextlib.closing(fast.open(openmetrics)) as body:
            assert body.length == len(b"".join(body.pieces))


def test_the_golden_store_renders_identically_in_both_formats() -> None:
    store = fixed_store()
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )
    assert_identical(store, fast)


def random_answer(rng: random.Random) -> Any:
    def respond(account_id: str) -> Reply:
        choice = rng.random()
        if choice < 0.4:
            return snapshot(account_id, followers=rng.randrange(0, 10**9))
        if choice < 0.55:
            return zero_filled(account_id, upstream_status=rng.choice([429, 403, 401]))
        if choice < 0.6:
            return error(401, "UNAUTHORIZED")
        if choice < 0.65:
            return Reply(
                body={
                    "data": {
                        "platform": "youtube",
                        "follower_count": 1.0,
                        "following_count": 0,
                        "post_count": 3,
                        "platform_specific": {"view_count": 1e21, 'weird "key"\n': 0.1},
                        "fetched_at": "2026-04-28T18:30:00.123456Z",
                    }
                },
            )
        return error(rng.choice([404, 409, 500, 501, 502, 418]), rng.choice(
            ["NOT_FOUND", "ACCOUNT_DISCONNECTED", "NEEDS_RECONNECT", "UPSTREAM_ERROR", "X_Y"]
        ))  # fmt: skip

    return respond


@pytest.mark.parametrize("workspaces", [(None,), ("acme", "globex")], ids=["single", "two"])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_state_the_scheduler_reaches_renders_identically(
    seed: int, workspaces: tuple[str | None, ...]
) -> None:
    rng = random.Random(seed)
    ids = [
        {"id": "sa_twitter_1", "labels": {"team": "growth", "zone": 'a "quoted"\\ value'}},
        {"id": "sa_instagram_2", "labels": {"aaa": "first"}},
        {"id": "sa_weird\nid", "interval": "10s"},
        {"id": "sa_youtube_4"},
    ]
    clock = FakeClock()
    workspace, polling = only(
        make_config(ids, interval="10s", floors={"twitter": "10s"}, max_backoff="1m")
    )
    # With two workspaces the same account IDs live in both: distinct series by workspace.
    stores = [Store(workspace=name) for name in workspaces]
    client = FakeUniPost(random_answer(rng)).client(clock)
    schedulers = [
        Scheduler(replace(workspace, name=store.workspace), polling, store, client, clock, rng=rng)
        for store in stores
    ]
    fast = FastExposition(
        lambda: stores, build_tail_registry(lambda: stores, with_process_metrics=False)
    )
    tasks = [asyncio.create_task(scheduler.run()) for scheduler in schedulers]
    try:
        for _ in range(120):
            await clock.advance(rng.uniform(0.1, 200))
            if rng.random() < 0.05:  # a failed account listing in the last workspace
                stores[-1].discovery_errors["UPSTREAM_ERROR"] = rng.randrange(1, 9)
            assert_identical(stores, fast)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(client.calls) > 25 * len(stores), "the scenario reached many states"
    if len(stores) > 1:
        text = fast.render().decode()
        account_lines = [
            line
            for line in text.splitlines()
            if line.startswith(("unipost_account_", "unipost_api_e"))
        ]
        assert all('workspace="' in line for line in account_lines)


def test_a_removed_account_leaves_no_series() -> None:
    store = fixed_store()
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )
    store.remove("sa_twitter_1")
    assert b"sa_twitter_1" not in fast.render()
    assert_identical(store, fast)


def test_changes_during_a_scrape_are_not_half_in_it_and_show_after() -> None:
    store = fixed_store()
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )
    before = fast.render()
    chunks = fast.iter_chunks()
    first = next(chunks)
    # While the scrape is being written: an account disappears upstream, another fails,
    # one leaves and one joins.
    account = store.accounts["sa_twitter_1"]
    account.snapshot = None
    account.status = "not_found"
    store.changed(account)
    failing = store.accounts["sa_twitter_2"]
    failing.consecutive_failures = 7
    store.changed(failing)
    store.remove("sa_youtube_5")
    store.add(replace_id(failing, "sa_twitter_new"))
    assert first + b"".join(chunks) == before
    after = fast.render()
    assert b"sa_twitter_new" in after and b"sa_youtube_5" not in after
    assert_identical(store, fast)


@pytest.mark.parametrize("reused_bytes", [lines.REUSED_BYTES, 1000])
def test_pieces_reused_between_scrapes_never_show_an_old_line(
    reused_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three chunks of rows, and a cap that keeps every piece or hardly any.
    monkeypatch.setattr(lines, "REUSED_BYTES", reused_bytes)
    store = Store()
    originals = list(fixed_store().accounts.values())
    for i in range(3 * lines.ROWS_PER_CHUNK // len(originals) + 1):
        for source in originals:
            store.add(replace_id(source, f"{source.id}-{i}"))
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )
    ids = list(store.accounts)
    for _ in range(3):  # a piece is kept once it came out the same twice
        fast.render()
    # A failure in the first chunk, new labels (a new head) in the second, one leaving
    # from the third: each changed piece is joined again, the others reused.
    first = store.accounts[ids[3]]
    first.consecutive_failures = 5
    store.changed(first)
    second = store.accounts[ids[lines.ROWS_PER_CHUNK + 2]]
    second.labels = (("team", "reused"),)
    store.changed(second)
    store.remove(ids[-2])
    assert_identical(store, fast)
    assert b'team="reused"' in fast.render() and ids[-2].encode() + b'"' not in fast.render()


def test_accounts_that_leave_and_return_keep_the_store_s_order() -> None:
    # Enough leave that the exposition drops their rows and renumbers the rest; then some
    # come back (at the end of the store's order) and others join, with labels that sort
    # before account_id.
    store = Store()
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )
    template = fixed_store()
    originals = list(template.accounts.values())
    for round_ in range(3):
        for i, source in enumerate(originals * 4):
            account = replace_id(source, f"{source.id}-{round_}-{i}")
            if i % 3 == 0:
                account.labels = (("Zone", "eu"), *account.labels)
            store.add(account)
        for account_id in list(store.accounts)[::2] + list(store.accounts)[1:6]:
            store.remove(account_id)
        store.add(replace_id(originals[0], f"{originals[0].id}-0-0"))
        assert_identical(store, fast)
    assert b'Zone="eu",account_id=' in fast.render()


def replace_id(account: Any, account_id: str) -> Any:
    copy = type(account).__new__(type(account))
    for name in type(account).__slots__:
        setattr(copy, name, getattr(account, name))
    copy.id = account_id
    copy.row = None  # a new account: no row in the store's lines yet
    return copy


async def test_a_scrape_cancelled_mid_render_holds_back_no_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "RENDER_TURN", 0.0)  # a turn of the loop after every piece
    store = fixed_store()
    fast = FastExposition(
        lambda: [store], build_tail_registry(lambda: [store], with_process_metrics=False)
    )

    async def scrape() -> None:  # as SharedRenders.serve does
        with contextlib.closing(fast.open()) as body:
            await render_body(body, compress=False, scrapes=[])

    task = asyncio.create_task(scrape())
    await asyncio.sleep(0)  # the render has begun reading, and yields between pieces
    account = store.accounts["sa_twitter_1"]
    account.consecutive_failures = 9
    store.changed(account)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b'_failures{account_id="sa_twitter_1",platform="twitter",team="growth"} 9.0' in (
        fast.render()
    )
    assert_identical(store, fast)
