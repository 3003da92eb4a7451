"""The scheduler, driven by an injected clock: pacing, stretching, floors, backoff, fairness."""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter import landing
from exporter.listing import ListedAccount
from exporter.outcomes import JITTER, POLICIES
from exporter.parse import ErrorKind
from exporter.scheduler import Scheduler
from exporter.schema import Config, DiscoveryConfig
from exporter.simulator.model import TokenBucket as SimulatedBucket
from exporter.store import Store
from tests.fake_unipost import FakeUniPost, Reply, error, no_answer, snapshot, zero_filled
from tests.helpers import FakeClock, make_config, only, running, scrape, series, value


class Harness:
    def __init__(self, config: Config, respond: Any, latency: float = 0.0) -> None:
        self.clock = FakeClock()
        self.store = Store()
        self.fake = FakeUniPost(lambda account_id: respond(account_id, self.clock.monotonic()))
        self.client = self.fake.client(self.clock, latency)
        self.scheduler = Scheduler(
            *only(config), self.store, self.client, self.clock, rng=random.Random(7)
        )
        self.start = self.clock.now

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        async with running(self.scheduler):
            yield self

    def gaps(self, account_id: str) -> list[float]:
        times = self.client.times(account_id)
        return [b - a for a, b in itertools.pairwise(times)]

    def all_gaps(self) -> list[float]:
        times = [t for t, _ in self.client.calls]
        return [b - a for a, b in itertools.pairwise(times)]


def always_good(account_id: str, now: float) -> Any:
    return snapshot(account_id)


async def test_first_round_goes_out_as_fast_as_the_budget_allows_and_no_faster() -> None:
    ids = [f"sa_instagram_{i}" for i in range(10)]
    h = Harness(make_config(ids, requests_per_minute=60, interval="1h"), always_good)
    async with h.running():
        await h.clock.advance(9.5)
    assert [a for _, a in h.client.calls] == ids
    assert [t - h.start for t, _ in h.client.calls] == pytest.approx(list(range(10)))


async def test_each_account_keeps_its_own_cadence_and_jitter_only_lengthens() -> None:
    ids = [f"sa_instagram_{i}" for i in range(5)]
    h = Harness(make_config(ids, interval="1m"), always_good)
    async with h.running():
        await h.clock.advance(60 * 20)
    for account_id in ids:
        gaps = h.gaps(account_id)
        assert len(gaps) >= 17
        assert min(gaps) >= 60
        assert max(gaps) <= 66.01
        assert len({round(g, 3) for g in gaps}) > 1, "jitter spreads the polls"


async def test_platform_floor_is_never_undercut_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = make_config(
        [{"id": "sa_twitter_1", "interval": "1m"}, {"id": "sa_bluesky_2", "interval": "1m"}],
        floors={"twitter": "15m"},
    )
    h = Harness(config, always_good)
    async with h.running():
        await h.clock.advance(3600 * 3)
    assert min(h.gaps("sa_twitter_1")) >= 900
    assert max(h.gaps("sa_bluesky_2")) <= 66.01
    raised = [r for r in caplog.records if "floor" in r.getMessage()]
    assert len(raised) == 1
    assert raised[0].fields["account_id"] == "sa_twitter_1"  # type: ignore[attr-defined]
    samples = scrape(h.store)
    assert value(samples, "unipost_account_poll_interval_seconds", account_id="sa_twitter_1") == 900


async def test_floor_applies_once_the_api_reveals_the_platform() -> None:
    # The ID carries no platform; the first answer says twitter.
    config = make_config([{"id": "sa_8f2k", "interval": "1m"}], floors={"twitter": "15m"})
    h = Harness(config, lambda a, now: snapshot(a, platform="twitter"))
    async with h.running():
        await h.clock.advance(3600)
    assert min(h.gaps("sa_8f2k")) >= 900


async def test_when_intervals_ask_for_more_than_the_budget_every_interval_stretches_evenly() -> (
    None
):
    fast = [{"id": f"sa_instagram_{i}", "interval": "10s"} for i in range(10)]
    slow = [{"id": f"sa_youtube_{i}", "interval": "40s"} for i in range(20)]
    # Demand: 10/10s + 20/40s = 1.5 requests/s against a budget of 0.5/s: stretch 3.
    h = Harness(make_config(fast + slow, requests_per_minute=30), always_good)
    async with h.running():
        await h.clock.advance(1200)
    assert min(h.all_gaps()) >= 2.0 - 1e-9, "never faster than the budget"
    assert value(scrape(h.store), "unipost_exporter_interval_stretch_factor") == pytest.approx(3)
    fast_counts = [len(h.client.times(a["id"])) for a in fast]
    slow_counts = [len(h.client.times(a["id"])) for a in slow]
    assert min(slow_counts) >= 1, "none starves"
    # Stretching is proportional: the fast accounts keep 4x the slow ones' rate.
    ratio = (sum(fast_counts) / len(fast)) / (sum(slow_counts) / len(slow))
    assert 3.0 <= ratio <= 5.0
    assert max(fast_counts) - min(fast_counts) <= 2
    assert max(slow_counts) - min(slow_counts) <= 2
    # The budget is used, not wasted: at least 90% of 0.5 requests/s.
    assert len(h.client.calls) >= 0.9 * 0.5 * 1200


async def test_zero_filled_snapshots_back_off_exponentially_and_never_become_data() -> None:
    answers = iter([snapshot("sa_twitter_1", followers=500)])

    def respond(account_id: str, now: float) -> Any:
        return next(answers, None) or zero_filled(account_id, upstream_status=429)

    config = make_config(
        ["sa_twitter_1"], interval="15m", floors={"twitter": "15m"}, max_backoff="2h"
    )
    h = Harness(config, respond)
    async with h.running():
        await h.clock.advance(3600 * 12)
    gaps = h.gaps("sa_twitter_1")
    # ok, then failures: 2x, 4x, 8x the interval (capped at 2h), never below the floor.
    expected = [900, 1800, 3600, 7200, 7200]
    for gap, base in zip(gaps, expected, strict=False):
        assert base <= gap <= base * 1.1 + 1e-6
    samples = scrape(h.store)
    assert value(samples, "unipost_account_followers", account_id="sa_twitter_1") == 500
    assert value(samples, "unipost_account_status", status="upstream_failing") == 1
    failures = value(samples, "unipost_upstream_failures_total", upstream_status="429")
    assert failures == len(h.client.calls) - 1
    assert value(samples, "unipost_account_consecutive_failures") == failures


async def test_transient_failures_are_retried_within_a_poll_each_attempt_paced() -> None:
    answers = iter([error(502, "UPSTREAM_ERROR"), error(500, "INTERNAL_ERROR")])

    def respond(account_id: str, now: float) -> Any:
        return next(answers, None) or snapshot(account_id, followers=42)

    h = Harness(make_config(["sa_instagram_1"], requests_per_minute=60), respond)
    async with h.running():
        await h.clock.advance(59)
    assert len(h.client.calls) == 3
    assert min(h.all_gaps()) >= 1.0
    samples = scrape(h.store)
    assert value(samples, "unipost_account_followers") == 42
    assert value(samples, "unipost_account_status", status="ok") == 1
    assert value(samples, "unipost_api_errors_total", code="UPSTREAM_ERROR") == 1
    assert value(samples, "unipost_api_errors_total", code="INTERNAL_ERROR") == 1


async def test_a_poll_that_keeps_failing_stops_after_three_attempts_and_backs_off() -> None:
    h = Harness(
        make_config(["sa_instagram_1"], interval="1m"),
        lambda a, now: error(502, "UPSTREAM_ERROR"),
    )
    async with h.running():
        await h.clock.advance(100)
    assert len(h.client.calls) == 3
    samples = scrape(h.store)
    assert value(samples, "unipost_account_status", status="error") == 1
    assert value(samples, "unipost_api_errors_total", code="UPSTREAM_ERROR") == 3
    assert value(samples, "unipost_account_followers") is None
    async with h.running():
        await h.clock.advance(100)
    # Backed off to 2x the interval (plus jitter) from the end of the failed poll.
    times = h.client.times("sa_instagram_1")
    assert len(times) == 6
    assert 120 <= times[3] - times[2] <= 132 + 1e-6


async def test_after_a_429_nothing_leaves_before_retry_after_and_the_pace_drops() -> None:
    first = [True]

    def respond(account_id: str, now: float) -> Any:
        if first[0]:
            first[0] = False
            return error(429, "RATE_LIMITED", headers={"Retry-After": "30"})
        return snapshot(account_id)

    ids = [f"sa_instagram_{i}" for i in range(5)]
    h = Harness(make_config(ids, requests_per_minute=60, interval="10m"), respond)
    async with h.running():
        await h.clock.advance(0.5)
        assert value(scrape(h.store), "unipost_exporter_budget_requests_per_minute") == 30
        await h.clock.advance(60)
    times = [t - h.start for t, _ in h.client.calls]
    assert times[0] == 0
    assert times[1] >= 30
    # The refused account is asked again (it is the most overdue), and every account is served.
    assert {a for _, a in h.client.calls} == set(ids)
    assert len(h.client.calls) == 6
    assert value(scrape(h.store), "unipost_api_errors_total", code="RATE_LIMITED") == 1


class LimitedServer:
    """A server behind the simulator's workspace limiter: `rate` requests/s refill,
    `capacity` burst, with or without its X-UniPost-RateLimit-* headers."""

    def __init__(self, rate: float, capacity: float, clock: FakeClock, headers: bool) -> None:
        self.bucket = SimulatedBucket(rate, capacity, clock.monotonic)
        self.clock, self.headers = clock, headers
        self.answers: list[tuple[float, int]] = []

    def __call__(self, account_id: str, now: float) -> Any:
        allowed = self.bucket.take()
        headers = self.bucket.headers(self.clock.wall(), refused=not allowed)
        if not self.headers:
            headers = {k: v for k, v in headers.items() if k == "Retry-After"}
        self.answers.append((now, 200 if allowed else 429))
        if not allowed:
            return error(429, "RATE_LIMITED", headers=headers)
        reply = snapshot(account_id)
        reply.headers = headers
        return reply


@pytest.mark.parametrize("headers", [True, False], ids=["with-headers", "without-headers"])
async def test_a_budget_five_times_the_servers_limit_draws_few_429s(headers: bool) -> None:
    clock = FakeClock()
    ids = [f"sa_instagram_{i}" for i in range(200)]
    config = make_config(ids, requests_per_minute=300, interval="10s")
    bucket = LimitedServer(rate=1.0, capacity=20, clock=clock, headers=headers)
    h = Harness(config, bucket)
    h.clock = clock
    h.client.clock = clock
    h.scheduler = Scheduler(*only(config), h.store, h.client, clock, rng=random.Random(1))
    async with h.running():
        await clock.advance(1800)
    late = [status for t, status in bucket.answers if t - h.start > 30]
    refused = late.count(429) / len(late)
    assert refused < 0.10, f"{refused:.1%} of requests after the first 30s were refused"
    # ... and the server's capacity is still mostly used.
    assert late.count(200) >= 0.7 * (1800 - 30) * 1.0


async def test_401_pauses_the_workspace_with_one_probe_per_step() -> None:
    key_valid = [False]

    def respond(account_id: str, now: float) -> Any:
        return snapshot(account_id) if key_valid[0] else error(401, "UNAUTHORIZED")

    ids = [f"sa_instagram_{i}" for i in range(5)]
    h = Harness(make_config(ids, requests_per_minute=60, interval="1m"), respond)
    async with h.running():
        await h.clock.advance(1)
        samples = scrape(h.store)
        assert len(series(samples, "unipost_account_status", status="unauthorized")) == 5
        await h.clock.advance(60 + 120 + 240 - 2)
        # First request, then one probe after 60s and one after a further 120s.
        assert [round(t - h.start) for t, _ in h.client.calls] == [0, 60, 180]
        key_valid[0] = True
        await h.clock.advance(240 + 10)
    times = [round(t - h.start, 1) for t, _ in h.client.calls]
    assert times[:8] == [0, 60, 180, 420, 421, 422, 423, 424], "then the others, paced"
    samples = scrape(h.store)
    assert len(series(samples, "unipost_account_status", status="ok")) == 5


async def test_a_probe_without_an_answer_keeps_the_workspace_paused() -> None:
    answers = iter([error(401, "UNAUTHORIZED"), no_answer("TIMEOUT")])

    def respond(account_id: str, now: float) -> Any:
        return next(answers, None) or snapshot(account_id)

    h = Harness(make_config(["sa_instagram_1"], requests_per_minute=60, interval="1h"), respond)
    async with h.running():
        await h.clock.advance(200)
    assert [round(t - h.start) for t, _ in h.client.calls] == [0, 60, 180]
    assert value(scrape(h.store), "unipost_account_status", status="ok") == 1


async def test_no_retry_leaves_while_the_workspace_is_paused() -> None:
    def respond(account_id: str, now: float) -> Any:
        if account_id == "sa_instagram_flaky":
            return error(502, "UPSTREAM_ERROR")
        return error(403, "FORBIDDEN")

    ids = ["sa_instagram_flaky", "sa_instagram_revoked"]
    h = Harness(make_config(ids, requests_per_minute=600, interval="1m"), respond)
    async with h.running():
        await h.clock.advance(59)
    times = [(round(t - h.start, 1), a) for t, a in h.client.calls]
    revoked_at = next(t for t, a in times if a == "sa_instagram_revoked")
    # The 403 pauses everything for 60s: the flaky account's pending retries are abandoned
    # instead of going out during the pause (one may have left before the 403 came back).
    assert [a for t, a in times if t > revoked_at] == []
    assert times[0] == (0.0, "sa_instagram_flaky")
    samples = scrape(h.store)
    assert len(series(samples, "unipost_account_status", status="unauthorized")) == 2


@pytest.mark.parametrize(
    ("reply", "status", "recheck", "keeps_values"),
    [
        (error(404, "NOT_FOUND"), "not_found", 3600, False),
        (error(409, "ACCOUNT_DISCONNECTED"), "disconnected", 3600, True),
        (error(409, "NEEDS_RECONNECT"), "needs_reconnect", 3600, True),
        (error(501, "NOT_SUPPORTED"), "not_supported", 86400, True),
        (error(418, "TEAPOT"), "error", 3600, True),
    ],
)
async def test_persistent_errors_set_the_status_and_recheck_rarely(
    reply: Any, status: str, recheck: float, keeps_values: bool
) -> None:
    answers = iter([snapshot("sa_instagram_1", followers=7)])

    def respond(account_id: str, now: float) -> Any:
        return next(answers, None) or reply

    h = Harness(make_config(["sa_instagram_1"], interval="1m"), respond)
    async with h.running():
        await h.clock.advance(61 + recheck * 1.1 + 1)
    gaps = h.gaps("sa_instagram_1")
    assert recheck <= gaps[1] <= recheck * 1.1 + 1e-6
    assert len(h.client.calls) == 3, "one attempt each: persistent errors are not retried"
    samples = scrape(h.store)
    assert value(samples, "unipost_account_status", status=status) == 1
    assert len(series(samples, "unipost_account_status")) == 1
    assert (value(samples, "unipost_account_followers") == 7) is keeps_values
    assert (value(samples, "unipost_account_last_success_timestamp_seconds") is not None) is (
        keeps_values
    )


async def test_a_slow_account_never_delays_the_others() -> None:
    def respond(account_id: str, now: float) -> Reply:
        reply = snapshot(account_id)
        reply.delay = 45.0 if account_id == "sa_instagram_slow" else 0.0
        return reply

    ids = ["sa_instagram_slow", "sa_instagram_a", "sa_instagram_b"]
    h = Harness(make_config(ids, requests_per_minute=60, interval="10s"), respond)
    h.scheduler = Scheduler(
        *only(make_config(ids, requests_per_minute=60, interval="10s")),
        h.store,
        h.client,
        h.clock,
        rng=random.Random(3),
    )
    async with h.running():
        await h.clock.advance(44)
    assert len(h.client.times("sa_instagram_slow")) == 1
    assert len(h.client.times("sa_instagram_a")) >= 4
    # On its cadence (10s + up to 10% jitter, planned from each due time); a single gap may
    # differ by the wait for a budget slot (1s each here, three accounts).
    gaps = h.gaps("sa_instagram_a")
    assert sum(gaps) / len(gaps) <= 11.01
    assert max(gaps) <= 11.01 + 2


async def test_a_real_zero_is_exported_as_zero() -> None:
    h = Harness(make_config(["sa_instagram_1"]), lambda a, now: snapshot(a, followers=0))
    async with h.running():
        await h.clock.advance(1)
    samples = scrape(h.store)
    assert value(samples, "unipost_account_followers") == 0
    assert value(samples, "unipost_account_status", status="ok") == 1


async def test_a_platform_throttling_one_account_backs_off_that_account_alone() -> None:
    throttled = "sa_tiktok_1"

    def respond(account_id: str, now: float) -> Any:
        if account_id == throttled:  # TikTok's per-account throttle: no Retry-After
            return error(429, "UPSTREAM_RATE_LIMITED")
        return snapshot(account_id)

    ids = [throttled, "sa_instagram_2", "sa_instagram_3"]
    h = Harness(make_config(ids, requests_per_minute=60, interval="1m", max_backoff="1h"), respond)
    async with h.running():
        for _ in range(60):
            await h.clock.advance(30)
            # The workspace's pace never moves.
            assert value(scrape(h.store), "unipost_exporter_budget_requests_per_minute") == 60
    # Healthy accounts keep their cadence: ~30 polls in 30 minutes (interval 1m + jitter).
    for healthy in ids[1:]:
        assert len(h.client.times(healthy)) >= 27
        assert max(h.gaps(healthy)) <= 66.01
    # The throttled one backs off exponentially from its interval, one request per poll.
    gaps = h.gaps(throttled)
    for gap, base in zip(gaps, [120, 240, 480, 960], strict=False):
        assert base <= gap <= base * 1.1 + 1e-6
    samples = scrape(h.store)
    assert statuses_of(samples) == {
        throttled: "upstream_failing",
        "sa_instagram_2": "ok",
        "sa_instagram_3": "ok",
    }
    errors = value(samples, "unipost_api_errors_total", code="UPSTREAM_RATE_LIMITED")
    assert errors == len(h.client.times(throttled))
    assert value(samples, "unipost_account_consecutive_failures", account_id=throttled) == errors


def statuses_of(samples: Any) -> dict[str, str]:
    return {s["account_id"]: s["status"] for s in series(samples, "unipost_account_status")}


async def test_a_429_without_a_uniPost_envelope_still_slows_the_workspace() -> None:
    first = [True]

    def respond(account_id: str, now: float) -> Any:
        if first[0]:
            first[0] = False
            return Reply(429, raw=b"<html>Too Many Requests</html>")
        return snapshot(account_id)

    h = Harness(make_config(["sa_instagram_1", "sa_instagram_2"], requests_per_minute=60), respond)
    async with h.running():
        await h.clock.advance(0.5)
        assert value(scrape(h.store), "unipost_exporter_budget_requests_per_minute") == 30
        await h.clock.advance(20)
    assert len(h.client.calls) == 1  # blocked for the default Retry-After (30 s)


@pytest.mark.parametrize(
    "failure",
    [error(502, "UPSTREAM_ERROR"), no_answer("TIMEOUT")],
    ids=["5xx", "timeout"],
)
async def test_a_failed_x_call_is_retried_at_the_next_floor_slot_not_inside_the_poll(
    failure: Reply,
) -> None:
    answers = iter([failure, failure, failure])

    def respond(account_id: str, now: float) -> Any:
        return next(answers, None) or snapshot(account_id, followers=7)

    config = make_config(["sa_twitter_1"], interval="5m", floors={"twitter": "15m"})
    h = Harness(config, respond)
    async with h.running():
        await h.clock.advance(60)
        # One request, no in-poll retry: the failed call already spent X's window.
        assert len(h.client.calls) == 1
        await h.clock.advance(3600 * 3)
    gaps = h.gaps("sa_twitter_1")
    # Two retries one floor apart (as the in-poll retries elsewhere), then the usual backoff
    # (2^3 x the interval), then the interval again after the success.
    for gap, base in zip(gaps, [900, 900, 7200, 900], strict=False):
        assert base <= gap <= base * 1.1 + 1e-6, gaps
    assert min(gaps) >= 900  # never below the floor
    assert value(scrape(h.store), "unipost_account_followers") == 7


async def test_an_account_listed_as_broken_is_not_polled_until_it_is_listed_active() -> None:
    reconnected = [False]

    def respond(account_id: str, now: float) -> Any:
        if account_id == "sa_instagram_2" and not reconnected[0]:
            return error(409, "NEEDS_RECONNECT")
        return snapshot(account_id)

    h = Harness(make_config(["sa_instagram_1"], interval="1m"), respond)
    broken = [
        ListedAccount("sa_instagram_1", "instagram", "studio", "active"),
        ListedAccount("sa_instagram_2", "instagram", "shop", "reconnect_required"),
    ]
    fixed = [broken[0], ListedAccount("sa_instagram_2", "instagram", "shop", "active")]
    discovery = DiscoveryConfig(enabled=True)
    async with h.running():
        await h.scheduler.accounts.sync_listing(broken, discovery)
        await h.clock.advance(30 * 60)
        samples = scrape(h.store)
        assert statuses_of(samples) == {"sa_instagram_1": "ok", "sa_instagram_2": "needs_reconnect"}
        # No platform call for the account the listing already calls broken...
        assert h.client.times("sa_instagram_2") == []
        # ...and a refresh that lists it the same way does not poll it either.
        await h.scheduler.accounts.sync_listing(broken, discovery)
        await h.clock.advance(60)
        assert h.client.times("sa_instagram_2") == []
        # It is re-checked at the hourly pace.
        await h.clock.advance(40 * 60)
        assert len(h.client.times("sa_instagram_2")) == 1
        await h.scheduler.accounts.sync_listing(broken, discovery)
        await h.clock.advance(10 * 60)
        assert len(h.client.times("sa_instagram_2")) == 1
        # Reconnected and listed active again: polled at once.
        reconnected[0] = True
        await h.scheduler.accounts.sync_listing(fixed, discovery)
        await h.clock.advance(2)
        assert len(h.client.times("sa_instagram_2")) == 2
        assert statuses_of(scrape(h.store))["sa_instagram_2"] == "ok"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (snapshot("sa_instagram_1"), None),
        (error(404, "NOT_FOUND"), ErrorKind.NOT_FOUND),
        (error(409, "ACCOUNT_DISCONNECTED"), ErrorKind.DISCONNECTED),
        (error(409, "NEEDS_RECONNECT"), ErrorKind.NEEDS_RECONNECT),
        (error(400, "BAD_REQUEST"), ErrorKind.PERSISTENT),
        (error(501, "NOT_SUPPORTED"), ErrorKind.NOT_SUPPORTED),
    ],
    ids=lambda v: getattr(v, "name", None) or "",
)
async def test_what_an_account_costs_is_how_often_it_is_polled(
    answer: Reply, kind: ErrorKind | None
) -> None:
    # One table decides both: a drift between the re-check delay and the demand the stretch
    # factor counts fails here.
    h = Harness(make_config(["sa_instagram_1"], interval="1m"), lambda a, now: answer)
    async with h.running():
        await h.clock.advance(1)
    account = h.store.accounts["sa_instagram_1"]
    assert account.metrics_due is not None
    delay = account.metrics_due - h.clock.monotonic()
    period = 1 / h.store.accounts["sa_instagram_1"].demand
    assert period <= delay + 1 <= period * (1 + JITTER) + 1
    if kind is not None:
        assert period == max(60, POLICIES[kind].recheck or 0)


async def test_the_landing_page_shows_a_count_s_change_until_the_next_poll() -> None:
    followers = iter([100, 100, 112, 112])

    def counts(account_id: str, now: float) -> Any:
        stamp = f"2026-11-27T10:{int(now) // 60 % 60:02d}:{int(now) % 60:02d}Z"
        return snapshot(account_id, followers=next(followers), fetched_at=stamp)

    h = Harness(make_config(["sa_instagram_1"], interval="1m"), counts)
    shown = []
    async with h.running():
        for _ in range(4):
            await h.clock.advance(61)
            text, _ = landing.render([h.store], h.clock.wall(), h.clock.monotonic())
            shown.append("(+12)" in text)
    assert len(h.client.calls) == 4
    assert shown == [False, False, True, False]
    # An equal snapshot before shows no change: it is not kept (scheduler._keep).
    assert h.store.accounts["sa_instagram_1"].previous is None
