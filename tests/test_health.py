"""Account health: parsing every answer shape, the health cadence on an injected clock, and
what the exposition shows."""

from __future__ import annotations

import html
import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.parse import ApiError, ErrorKind, Health, classify_health
from exporter.server import create_app
from tests.fake_unipost import (
    API_KEY,
    FakeUniPost,
    Reply,
    error,
    health,
    recorded_answer,
    snapshot,
)
from tests.helpers import (
    SchedulerStack,
    make_config,
    parse_exposition,
    scrape,
    value,
    wait_until,
)


def answer(name: str) -> Health | ApiError:
    recorded = recorded_answer(name)
    return classify_health(recorded["status"], json.dumps(recorded["body"]).encode())


def body(**data: Any) -> bytes:
    return json.dumps({"data": {"status": "ok", **data}}).encode()


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_every_field() -> None:
    assert answer("health_degraded.json") == Health(
        status="degraded",
        token_expires_at=at("2026-12-03T10:12:00+00:00"),
        last_successful_post_at=at("2026-11-20T09:00:00+00:00"),
        last_error_code="token_expired",
        # Go's nanoseconds, read to the microsecond.
        last_error_at=at("2026-11-26T17:02:11.123456+00:00"),
        last_error_message='Token expired: "reconnect" \\ now\nplease',
    )


def test_no_optional_field() -> None:
    assert answer("health_minimal.json") == Health(status="ok")


def test_nulls_are_absent_fields() -> None:
    result = classify_health(
        200, body(token_expires_at=None, last_successful_post_at=None, last_error=None)
    )
    assert result == Health(status="ok")


def test_a_last_error_without_a_time_has_no_timestamp_but_keeps_its_words() -> None:
    result = classify_health(200, body(last_error={"code": "unknown", "message": "boom"}))
    assert isinstance(result, Health)
    assert (result.last_error_code, result.last_error_at) == ("unknown", None)
    assert result.last_error_message == "boom"


@pytest.mark.parametrize(
    ("status", "exported"),
    [
        ("paused", "paused"),
        ("Degraded!", "unknown"),
        ('x" evil{', "unknown"),
        ("a" * 65, "unknown"),
    ],
)
def test_an_unknown_status_is_exported_as_it_comes_only_if_it_is_a_safe_label(
    status: str, exported: str
) -> None:
    result = classify_health(200, json.dumps({"data": {"status": status}}).encode())
    assert isinstance(result, Health) and result.status == exported


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b'{"data": []}',
        b'{"data": {}}',
        b'{"data": {"status": "ok", "token_expires_at": "soon"}}',
        b'{"data": {"status": "ok", "last_error": "broken"}}',
    ],
)
def test_an_invalid_body_is_invalid_response(bad: bytes) -> None:
    result = classify_health(200, bad)
    assert isinstance(result, ApiError) and result.code == "INVALID_RESPONSE"
    assert result.kind is ErrorKind.INVALID


def test_errors_are_classified_as_everywhere() -> None:
    result = classify_health(404, b'{"error": {"code": "NOT_FOUND", "message": "gone"}}')
    assert isinstance(result, ApiError) and result.kind is ErrorKind.NOT_FOUND


# -- the cadence -------------------------------------------------------------------------------


class Stack(SchedulerStack):
    def __init__(self, config: Any, metrics: Any = snapshot, health_answer: Any = None) -> None:
        health_script = health_answer or (lambda a: health())
        super().__init__(config, FakeUniPost(metrics, health_script=health_script))

    def health_times(self, account_id: str) -> list[float]:
        return [t for t, a in self.client.health_calls if a == account_id]


async def test_health_has_its_own_cadence_not_the_metrics_one() -> None:
    config = make_config(["sa_instagram_1"], interval="1m", health_interval="1h")
    s = Stack(config)
    async with s.running():
        await s.clock.advance(3 * 3600 + 60)
    health_times = s.health_times("sa_instagram_1")
    assert len(health_times) >= 3  # at start, then about hourly
    gaps = [b - a for a, b in itertools.pairwise(health_times)]
    assert all(3600 <= gap <= 3600 * 1.1 + 1e-6 for gap in gaps), gaps
    assert len(s.client.times("sa_instagram_1")) >= 170  # metrics every minute or so


async def test_health_is_off_at_0s_and_per_account() -> None:
    config = make_config(
        ["sa_instagram_1", {"id": "sa_instagram_2", "health_interval": "10m"}],
        interval="1m",
        health_interval="0s",
    )
    s = Stack(config)
    async with s.running():
        await s.clock.advance(3600)
    assert s.health_times("sa_instagram_1") == []
    assert len(s.health_times("sa_instagram_2")) == 6
    samples = scrape(s.store)
    assert value(samples, "unipost_account_health_status", account_id="sa_instagram_1") is None
    assert value(samples, "unipost_account_health_status", account_id="sa_instagram_2") == 1


async def test_health_reads_share_the_budget_and_never_delay_a_due_metrics_poll() -> None:
    # 60 requests a minute: the metrics polls of 50 accounts at 1m want 50 of them, the
    # health reads (every 1m too here) another 50: the budget is the bottleneck.
    ids = [f"sa_instagram_{i}" for i in range(50)]
    s = Stack(make_config(ids, requests_per_minute=60, interval="1m", health_interval="1m"))
    async with s.running():
        await s.clock.advance(600)
    metrics = [t for t, _ in s.client.calls]
    reads = [t for t, _ in s.client.health_calls]
    # Every request took a slot of the one budget: never more than one a second.
    times = sorted(metrics + reads)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0 - 1e-6
    # The first round of metrics polls went first, all of it, before any health read.
    assert sorted(metrics)[49] < min(reads)
    # Both stretch by the same factor, and the metrics polls keep their share.
    assert value(scrape(s.store), "unipost_exporter_interval_stretch_factor") == pytest.approx(
        100 / 60
    )
    assert len(metrics) >= len(reads)


async def test_a_health_401_pauses_the_workspace_and_a_404_is_not_found() -> None:
    config = make_config(["sa_instagram_1", "sa_instagram_gone"], health_interval="10m")

    def health_answer(account_id: str) -> Reply:
        return error(404, "NOT_FOUND") if account_id == "sa_instagram_gone" else health()

    s = Stack(config, health_answer=health_answer)
    async with s.running():
        await s.clock.advance(5)
        samples = scrape(s.store)
        assert value(samples, "unipost_account_status", account_id="sa_instagram_gone",
                     status="not_found") == 1  # fmt: skip
        # UniPost now rejects the key; a health read is the first to hear it.
        s.fake.health_script = lambda a: error(401, "UNAUTHORIZED")
        s.fake.script = lambda a: error(401, "UNAUTHORIZED")
        await s.clock.advance(600)
        samples = scrape(s.store)
    assert value(samples, "unipost_account_status", account_id="sa_instagram_1",
                 status="unauthorized") == 1  # fmt: skip


async def test_other_health_failures_are_counted_and_wait_for_the_next_slot() -> None:
    answers = iter([error(500, "INTERNAL_ERROR"), Reply(raw=b"<html>")])
    s = Stack(
        make_config(["sa_instagram_1"], interval="1m", health_interval="10m"),
        health_answer=lambda a: next(answers, None) or health(),
    )
    async with s.running():
        await s.clock.advance(25 * 60)
    assert len(s.health_times("sa_instagram_1")) == 3  # no retry inside the slot
    samples = scrape(s.store)
    for code in ("INTERNAL_ERROR", "INVALID_RESPONSE"):
        assert value(samples, "unipost_api_errors_total", code=code) == 1
    assert value(samples, "unipost_account_health_status", status="ok") == 1
    assert value(samples, "unipost_account_status", status="ok") == 1


# -- end to end ----------------------------------------------------------------------------------

MESSAGE = 'Token expired: "reconnect" \\ the account\nthen retry'


def e2e_health(account_id: str) -> Reply:
    return {
        "sa_twitter_expiring": health(
            token_expires_at="2026-11-30T10:00:00Z", last_successful_post_at="2026-11-26T08:00:00Z"
        ),
        "sa_instagram_degraded": health(
            status="degraded",
            token_expires_at=None,
            last_successful_post_at=None,
            last_error={
                "code": "token_expired",
                "message": MESSAGE,
                "occurred_at": "2026-11-26T17:02:11.5Z",
            },
        ),
        "sa_threads_gone": health(status="disconnected", last_successful_post_at=None),
    }.get(account_id) or health(token_expires_at=None, last_successful_post_at=None)


async def test_health_end_to_end(tmp_path: Path) -> None:
    ids = ["sa_twitter_expiring", "sa_instagram_degraded", "sa_threads_gone", "sa_tiktok_bare"]
    async with FakeUniPost(snapshot, health_script=e2e_health) as fake:
        raw = {
            "unipost": {"base_url": fake.base_url, "api_key": API_KEY, "timeout": "2s",
                        "requests_per_minute": 600},
            "polling": {"interval": "1s", "health_interval": "3s",
                        "platform_intervals": {"twitter": "1s"}},
            "accounts": [{"id": i} for i in ids],
        }  # fmt: skip
        app = create_app(parse_config(yaml.safe_dump(raw), {}))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            # Health on its own cadence: two reads every 3 s, while polls go every second.
            def read_enough() -> bool:
                return all(fake.requested(i, "health") >= 2 and fake.requested(i) >= 6 for i in ids)

            await wait_until(read_enough, seconds=20, what="2 health reads and 6 polls each")
            text = await (await client.get("/metrics")).text()
            page = await (await client.get("/")).text()
    samples = parse_exposition(text)

    def v(name: str, account_id: str, **labels: str) -> float | None:
        return value(samples, f"unipost_account_{name}", account_id=account_id, **labels)

    assert v("health_status", "sa_twitter_expiring", status="ok") == 1
    assert v("token_expiry_timestamp_seconds", "sa_twitter_expiring") == at(
        "2026-11-30T10:00:00+00:00"
    )
    assert v("last_successful_post_timestamp_seconds", "sa_twitter_expiring") == at(
        "2026-11-26T08:00:00+00:00"
    )
    assert v("last_post_error_timestamp_seconds", "sa_twitter_expiring") is None
    assert v("health_status", "sa_instagram_degraded", status="degraded") == 1
    assert v(
        "last_post_error_timestamp_seconds", "sa_instagram_degraded", code="token_expired"
    ) == (at("2026-11-26T17:02:11.5+00:00"))
    assert v("token_expiry_timestamp_seconds", "sa_instagram_degraded") is None
    assert v("health_status", "sa_threads_gone", status="disconnected") == 1
    assert v("health_status", "sa_tiktok_bare", status="ok") == 1
    for name in ("token_expiry", "last_successful_post", "last_post_error"):
        assert v(f"{name}_timestamp_seconds", "sa_tiktok_bare") is None
    # One status series per account.
    assert len([k for k in samples if k[0] == "unipost_account_health_status"]) == 4
    # The platform's words never reach /metrics; the page shows them, escaped.
    for part in ("Token expired", '"reconnect"', "then retry"):
        assert part not in text
    assert html.escape(MESSAGE) in page
    # Health on its own cadence: every 3 s, while metrics go every second.
    for account_id in ids:
        reads, polls = fake.requested(account_id, "health"), fake.requested(account_id)
        assert 2 <= reads <= 3 and polls >= 6, (account_id, reads, polls)
    requests = value(samples, "unipost_api_requests_total", endpoint="account_health",
                     status_code="200")  # fmt: skip
    assert requests is not None and requests >= 8
