"""The workspace budget on its own: what 429s and rate-limit headers do to the pace."""

from __future__ import annotations

import asyncio
import math

import pytest

from exporter.parse import RateLimitHeaders
from exporter.ratelimit import Budget
from exporter.store import Store
from tests.helpers import FakeClock

NO_HEADERS = RateLimitHeaders(None, None, None)


def test_requests_refused_together_halve_the_pace_once() -> None:
    clock = FakeClock()
    budget = Budget(requests_per_minute=600, clock=clock, max_wait=3600, store=Store())
    for _ in range(20):  # twenty requests in flight when UniPost starts refusing
        budget.observe(True, NO_HEADERS, retry_after=5)
    assert budget.rate == pytest.approx(5.0)
    assert budget.blocked_until == clock.now + 5


def test_a_new_refusal_after_the_wait_halves_again() -> None:
    clock = FakeClock()
    budget = Budget(requests_per_minute=600, clock=clock, max_wait=3600, store=Store())
    budget.observe(True, NO_HEADERS, retry_after=5)
    clock.now += 6
    budget.observe(True, NO_HEADERS, retry_after=5)
    assert budget.rate == pytest.approx(2.5)


def test_the_pace_recovers_from_the_floor_in_minutes() -> None:
    clock = FakeClock()
    budget = Budget(requests_per_minute=60, clock=clock, max_wait=3600, store=Store())
    budget.rate = budget.min_rate  # one request a minute
    seconds, answers = 0.0, 0
    while budget.rate < budget.configured_rate and answers < 10_000:
        seconds += 1.0 / budget.rate
        budget.observe(False, NO_HEADERS, retry_after=None)
        answers += 1
    assert budget.rate == budget.configured_rate
    assert seconds < 10 * 60


def test_a_nearly_empty_bucket_holds_the_pace_at_its_refill_rate() -> None:
    clock = FakeClock()
    budget = Budget(requests_per_minute=600, clock=clock, max_wait=3600, store=Store())
    # 100 tokens, 2 left, full again in 49 s: the bucket refills at 2 requests/s.
    headers = RateLimitHeaders(limit=100, remaining=2, reset=clock.wall() + 49)
    budget.observe(False, headers, retry_after=None)
    assert budget.rate == pytest.approx(2.0)


def test_a_held_budget_gives_no_slot_and_makes_none_up_afterwards() -> None:
    clock = FakeClock()
    budget = Budget(requests_per_minute=600, clock=clock, max_wait=3600, store=Store())
    assert budget.try_take()
    budget.hold()  # a scrape renders
    clock.now += 0.5
    assert not budget.try_take() and budget.ready_at() == math.inf
    budget.release()
    # One slot now, the next a tenth of a second later: the five held slots are gone.
    assert budget.try_take() and not budget.try_take()
    clock.now += 0.1
    assert budget.try_take()


async def test_acquire_waits_out_a_hold() -> None:
    clock = FakeClock()
    budget = Budget(requests_per_minute=600, clock=clock, max_wait=3600, store=Store())
    budget.hold()
    waiting = asyncio.create_task(budget.acquire())
    await clock.advance(5)
    assert not waiting.done()
    budget.release()
    await asyncio.wait_for(waiting, 1)
