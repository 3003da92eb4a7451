"""The workspace budget: where the pace of requests to UniPost is decided.

Every request (first attempts, retries, probes) takes a slot from one Budget.
Slots are spaced evenly at the current rate, so there are no bursts. The rate
starts at the configured `requests_per_minute` and learns the real limit:
a workspace refusal (429 `RATE_LIMITED`, or a 429 with no UniPost envelope)
blocks every request until `Retry-After` has passed and halves the rate (once
per refusal episode); a 429 about one account (`UPSTREAM_RATE_LIMITED`) does
neither; every other answer lets the rate climb back by 2% (plus 0.5% of the
budget); and when the `X-UniPost-RateLimit-*` headers say the bucket is nearly
empty, the rate is held at the bucket's refill rate so the exporter stops
before it is refused.
"""

from __future__ import annotations

import asyncio
import math

from exporter.client import RawResponse
from exporter.clock import Clock
from exporter.parse import (
    ApiError,
    ErrorKind,
    RateLimitHeaders,
    has_ratelimit_headers,
    parse_ratelimit_headers,
    parse_retry_after,
)
from exporter.store import Store

# Used when a 429 carries neither Retry-After nor a reset time.
DEFAULT_RETRY_AFTER = 30.0
DECREASE_FACTOR = 0.5
INCREASE_FACTOR = 1.02
INCREASE_STEP = 0.005
LOW_WATERMARK_FRACTION = 0.1
# How late (at most) a slot may be taken and still count as on time.
LATENESS_TOLERANCE = 0.02


class Budget:
    """One workspace's request budget, paced evenly and adapted to the server's limit.

    It reports its pace, and the limiter headers it learned from, into the workspace's store.
    """

    def __init__(
        self, requests_per_minute: float, clock: Clock, max_wait: float, store: Store
    ) -> None:
        self.configured_rate = requests_per_minute / 60.0
        self._store = store
        self.rate = self.configured_rate
        # Never slower than one request a minute (or the configured rate, if lower).
        self.min_rate = min(self.configured_rate, 1 / 60.0)
        self.max_wait = max_wait
        self.blocked_until = -math.inf
        self._clock = clock
        self._next_slot = -math.inf
        self._lock = asyncio.Lock()
        self._holds = 0  # scrapes rendering now: no request goes out meanwhile
        self._unheld = asyncio.Event()
        self._unheld.set()

    @property
    def rate(self) -> float:
        """The pace now, in requests per second."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = value
        self._store.budget_requests_per_minute = value * 60

    def reconfigure(self, requests_per_minute: float, max_wait: float) -> None:
        """A reloaded config: a changed budget applies at once; an unchanged one keeps
        everything learned from UniPost."""
        self.max_wait = max_wait
        rate = requests_per_minute / 60.0
        if rate == self.configured_rate:
            return
        self.configured_rate = self.rate = rate
        self.min_rate = min(rate, 1 / 60.0)
        # The next slot follows the new pace, not one spaced at the old one.
        self._next_slot = min(self._next_slot, self._clock.monotonic() + 1.0 / rate)

    def forget_refusals(self) -> None:
        """A new connection to UniPost: what the old one refused no longer holds."""
        self.blocked_until = -math.inf
        self.rate = self.configured_rate

    async def acquire(self) -> None:
        """Wait for the next slot; callers are served in order of arrival."""
        if not self._lock.locked() and self._take():
            return  # a free slot and nobody queued: no lock, no sleep
        async with self._lock:
            while not self._take():
                if self._holds:
                    await self._unheld.wait()
                else:
                    await self._clock.sleep(self.ready_at() - self._clock.monotonic())

    def hold(self) -> None:
        """A scrape renders: no slot is given until release(). The slots meanwhile are not
        made up afterwards (the pace has no bursts)."""
        self._holds += 1
        self._unheld.clear()

    def release(self) -> None:
        self._holds -= 1
        if not self._holds:
            self._unheld.set()

    def ready_at(self) -> float:
        """When the next slot can be taken (monotonic seconds; infinite while held)."""
        if self._holds:
            return math.inf
        return max(self._next_slot, self.blocked_until)

    def try_take(self) -> bool:
        """Take a slot now if one is free and no caller of acquire() is queued for it."""
        return not self._lock.locked() and self._take()

    def _take(self) -> bool:
        now = self._clock.monotonic()
        if self.ready_at() > now:
            return False
        # A slot a little in the past was missed only by event-loop lateness: keep its place
        # so the average pace holds. After a real pause, start from now: no catch-up burst.
        start = self._next_slot if self._next_slot >= now - self._tolerance() else now
        self._next_slot = start + 1.0 / self.rate
        return True

    def _tolerance(self) -> float:
        return min(2.0 / self.rate, LATENESS_TOLERANCE)

    def learn(self, raw: RawResponse, outcome: object) -> None:
        """Learn the workspace limiter's state from an answer and what it meant."""
        if raw.status is None:
            return
        # Only UniPost's own limiter speaks for the workspace: a platform's 429 about one
        # account (UPSTREAM_RATE_LIMITED) must not pause or slow every other account.
        refused = isinstance(outcome, ApiError) and outcome.kind is ErrorKind.RATE_LIMITED
        if not refused and not has_ratelimit_headers(raw.headers):
            # The common answer: the real server's metrics, health and accounts routes send
            # no limiter headers. Nothing to record and no Date to read, only the pace to
            # let climb back (~4 us less a poll than reading every header).
            self._recover()
            return
        headers = parse_ratelimit_headers(raw.headers)
        self._store.api.record_ratelimit(headers)
        retry_after = None
        if refused:
            # An HTTP-date Retry-After is read against the server's Date, not our clock.
            now = headers.server_now(self._clock.wall())
            retry_after = parse_retry_after(raw.headers.get("Retry-After"), now)
        self.observe(refused, headers, retry_after)

    def observe(self, refused: bool, headers: RateLimitHeaders, retry_after: float | None) -> None:
        """Learn from one answer; `refused`: UniPost's workspace limiter said RATE_LIMITED.

        A 429 about one account (a platform throttle) is not a refusal: it says nothing
        about the workspace's limit.
        """
        now = self._clock.monotonic()
        if refused:
            wait = retry_after
            if wait is None and headers.reset is not None:
                wait = headers.reset - headers.server_now(self._clock.wall())
            if wait is None or wait <= 0:
                wait = DEFAULT_RETRY_AFTER
            if now >= self.blocked_until:
                # One decrease per refusal episode: the other requests already in flight when
                # UniPost began refusing say nothing new, and halving for each of them would
                # collapse the pace to the floor.
                self.rate = max(self.min_rate, self.rate * DECREASE_FACTOR)
            self.blocked_until = max(self.blocked_until, now + min(wait, self.max_wait))
            return
        refill = self._refill_rate_if_low(headers)
        if refill is not None:
            self.rate = max(self.min_rate, min(self.rate, refill))
        else:
            self._recover()

    def _recover(self) -> None:
        """An answer that was not a refusal: the pace climbs back toward the configured one,
        multiplicatively, plus a small constant so a pace near the floor recovers in minutes
        rather than hours."""
        if self._rate < self.configured_rate:
            self.rate = min(
                self.configured_rate,
                self._rate * INCREASE_FACTOR + self.configured_rate * INCREASE_STEP,
            )

    def _refill_rate_if_low(self, headers: RateLimitHeaders) -> float | None:
        limit, remaining, reset = headers.limit, headers.remaining, headers.reset
        if limit is None or remaining is None or reset is None or limit <= 0:
            return None
        if remaining > max(1.0, LOW_WATERMARK_FRACTION * limit):
            return None
        until_full = reset - headers.server_now(self._clock.wall())
        if until_full <= 0 or remaining >= limit:
            return None
        # A token bucket that is full again in `until_full` seconds refills at this rate.
        return (limit - remaining) / until_full
