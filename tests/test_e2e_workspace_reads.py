"""The workspace reads end to end: the exporter's app over real HTTP on loopback against the
fake UniPost, scraped as Prometheus does."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.server import create_app
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, error
from tests.helpers import parse_exposition, scrape_until, value

ENDPOINTS = (
    "usage", "delivery_jobs", "analytics_by_platform", "analytics_summary", "analytics_platforms",
)  # fmt: skip


async def test_each_read_is_counted_by_endpoint_and_nothing_else_is_called() -> None:
    async with FakeUniPost() as fake:
        raw = {
            "unipost": {"base_url": fake.base_url, "api_key": API_KEY, "timeout": "2s",
                        "requests_per_minute": 600},
            "polling": {"interval": "1m", "usage_interval": "1s", "delivery_interval": "1s",
                        "analytics_interval": "1s"},
            "accounts": [{"id": "sa_instagram_1"}],
        }  # fmt: skip
        # The queue's read fails with UniPost's own 500, retried; usage's body is a proxy's.
        fake.workspace_replies["delivery_jobs"] = error(500, "INTERNAL_ERROR", "db down")
        fake.workspace_replies["usage"] = Reply(502, raw=b"error code: 502")
        app = create_app(parse_config(yaml.safe_dump(raw), {}))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:

            async def scrape() -> Any:
                return parse_exposition(await (await client.get("/metrics")).text())

            def counted(samples: Any) -> bool:
                return all(
                    value(samples, "unipost_api_requests_total", endpoint=endpoint)
                    for endpoint in ENDPOINTS
                    if endpoint not in ("usage", "delivery_jobs")
                ) and bool(
                    value(samples, "unipost_workspace_read_errors_total", read="delivery_jobs")
                )

            samples = await scrape_until(scrape, counted)
            body = await (await client.get("/metrics")).text()
            page = await (await client.get("/")).text()
    assert value(samples, "unipost_api_requests_total", endpoint="analytics_summary",
                 status_code="200")  # fmt: skip
    assert value(samples, "unipost_api_requests_total", endpoint="delivery_jobs",
                 status_code="500")  # fmt: skip
    assert value(samples, "unipost_workspace_read_errors_total", read="delivery_jobs",
                 code="INTERNAL_ERROR")  # fmt: skip
    # A 502 with no envelope (the hosting edge): counted by its status.
    assert value(samples, "unipost_workspace_read_errors_total", read="usage",
                 code="UPSTREAM_ERROR")  # fmt: skip
    assert value(samples, "unipost_api_request_duration_seconds_count", endpoint="usage")
    # Nothing but the documented reads: never a per-post analytics call nor a refresh.
    assert fake.unexpected == []
    assert {endpoint for _, endpoint in fake.workspace_reads} == set(ENDPOINTS)
    # The key never shows.
    assert API_KEY not in body and API_KEY not in page
