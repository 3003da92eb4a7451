"""client.py at the HTTP boundary (aioresponses): what UniPost receives, and what is counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aioresponses import aioresponses

from exporter import __version__
from exporter.client import UniPostClient, make_session
from exporter.schema import UniPostConfig
from exporter.store import ApiStats, Store
from tests.helpers import scrape, value

BASE = "https://api.unipost.test"
KEY = "up_live_client_test_key"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    session = make_session(UniPostConfig(api_key=KEY, base_url=BASE, timeout=2))
    yield session
    await session.close()


async def test_requests_carry_the_key_the_user_agent_and_an_escaped_id(
    session: aiohttp.ClientSession,
) -> None:
    stats = ApiStats()
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/v1/accounts/sa_we%2Fird%20id/metrics", status=200, body=b"{}")
        raw = await UniPostClient(session, stats, BASE).get_account_metrics("sa_we/ird id")
        ((method, url), calls) = next(iter(mocked.requests.items()))
    assert raw.status == 200
    assert method == "GET"
    assert str(url) == f"{BASE}/v1/accounts/sa_we%2Fird%20id/metrics"
    headers = {**session.headers, **(calls[0].kwargs.get("headers") or {})}
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["User-Agent"] == f"unipost-exporter/{__version__}"


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (TimeoutError(), "TIMEOUT"),
        (aiohttp.ClientConnectionError("refused"), "CONNECTION_ERROR"),
        (aiohttp.ServerDisconnectedError(), "CONNECTION_ERROR"),
    ],
)
async def test_no_answer_is_counted_as_status_error(
    session: aiohttp.ClientSession, exception: Exception, code: str
) -> None:
    store = Store()
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/v1/accounts/a/metrics", exception=exception)
        raw = await UniPostClient(session, store.api, BASE).get_account_metrics("a")
    assert (raw.status, raw.transport_error) == (None, code)
    samples = scrape(store)
    assert value(samples, "unipost_api_requests_total", status_code="error") == 1
    assert value(samples, "unipost_api_request_duration_seconds_count") == 1


async def test_every_answer_is_counted_by_status(session: aiohttp.ClientSession) -> None:
    store = Store()
    client = UniPostClient(session, store.api, BASE)
    with aioresponses() as mocked:
        for status in (200, 200, 429, 502):
            mocked.get(f"{BASE}/v1/accounts/a/metrics", status=status, body=b"{}")
        for _ in range(4):
            await client.get_account_metrics("a")
    samples = scrape(store)
    for status, count in (("200", 2), ("429", 1), ("502", 1)):
        assert (
            value(
                samples,
                "unipost_api_requests_total",
                endpoint="account_metrics",
                status_code=status,
            )
            == count
        )
