"""The fast exposition renders exactly what prometheus_client renders for the same store."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.exposition import FastExposition
from exporter.scheduler import Scheduler
from exporter.server import build_registry, build_tail_registry
from exporter.store import Store
from tests.helpers import (
    FakeClock,
    ScriptedClient,
    api_error,
    good,
    json_response,
    only,
    zero_filled,
)
from tests.test_golden import fixed_store
from tests.test_scheduler import make_config


def assert_identical(store: Store, fast: FastExposition) -> None:
    reference = build_registry([store], with_process_metrics=False)
    assert fast.render() == generate_latest(reference)
    assert fast.render(openmetrics=True) == openmetrics_latest(reference)


def test_the_golden_store_renders_identically_in_both_formats() -> None:
    store = fixed_store()
    fast = FastExposition([store], build_tail_registry([store], with_process_metrics=False))
    assert_identical(store, fast)


def random_answer(rng: random.Random) -> Any:
    def respond(account_id: str, now: float) -> Any:
        choice = rng.random()
        if choice < 0.4:
            return good(account_id, followers=rng.randrange(0, 10**9))
        if choice < 0.55:
            return zero_filled(account_id, upstream_status=rng.choice([429, 403, 401]))
        if choice < 0.6:
            return api_error(401, "UNAUTHORIZED")
        if choice < 0.65:
            return json_response(
                200,
                {
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
        return api_error(rng.choice([404, 409, 500, 501, 502, 418]), rng.choice(
            ["NOT_FOUND", "ACCOUNT_DISCONNECTED", "NEEDS_RECONNECT", "UPSTREAM_ERROR", "X_Y"]
        ))  # fmt: skip

    return respond


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_state_the_scheduler_reaches_renders_identically(seed: int) -> None:
    rng = random.Random(seed)
    ids = [
        {"id": "sa_twitter_1", "labels": {"team": "growth", "zone": 'a "quoted"\\ value'}},
        {"id": "sa_instagram_2", "labels": {"aaa": "first"}},
        {"id": "sa_weird\nid", "interval": "10s"},
        {"id": "sa_youtube_4"},
    ]
    clock = FakeClock()
    store = Store()
    client = ScriptedClient(clock, random_answer(rng))
    scheduler = Scheduler(
        *only(make_config(ids, interval="10s", floors={"twitter": "10s"}, max_backoff="1m")),
        store,
        client,
        clock,
        rng=rng,
    )
    fast = FastExposition([store], build_tail_registry([store], with_process_metrics=False))
    task = asyncio.create_task(scheduler.run())
    try:
        for _ in range(120):
            await clock.advance(rng.uniform(0.1, 200))
            assert_identical(store, fast)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(client.calls) > 25, "the scenario reached many states"


def test_a_removed_account_leaves_no_series() -> None:
    store = fixed_store()
    fast = FastExposition([store], build_tail_registry([store], with_process_metrics=False))
    store.remove("sa_twitter_1")
    assert b"sa_twitter_1" not in fast.render()
    assert_identical(store, fast)


def test_a_poll_landing_mid_scrape_is_not_half_in_it() -> None:
    store = fixed_store()
    fast = FastExposition([store], build_tail_registry([store], with_process_metrics=False))
    before = fast.render()
    chunks = fast.iter_chunks()
    first = next(chunks)
    # The account disappears upstream while the scrape is being written.
    account = store.accounts["sa_twitter_1"]
    account.snapshot = None
    account.status = "not_found"
    store.changed(account)
    assert first + b"".join(chunks) == before
