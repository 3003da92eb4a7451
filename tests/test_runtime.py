"""The runtime's scrapes-first rule: polls wait while a scrape renders, at most half the time."""

from __future__ import annotations

import math

import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.server import RUNTIME, create_app
from tests.helpers import FakeClock


def held(runtime: object) -> list[bool]:
    return [s.budget.ready_at() == math.inf for s in runtime.schedulers()]  # type: ignore[attr-defined]


async def test_polls_wait_while_a_scrape_renders_but_at_most_half_the_time() -> None:
    raw = {
        "workspaces": [
            {"name": name, "unipost": {"api_key": "k", "base_url": "http://127.0.0.1:9"},
             "accounts": [{"id": f"sa_instagram_{name}"}]}
            for name in ("acme", "globex")
        ]
    }  # fmt: skip
    clock = FakeClock()
    app = create_app(parse_config(yaml.safe_dump(raw), {}), clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")):
        runtime = app[RUNTIME]
        with runtime.scrapes_first():
            assert held(runtime) == [True, True], "every workspace's polls wait"
            clock.now += 0.2  # a render of 200 ms
        assert held(runtime) == [False, False]
        clock.now += 0.1
        with runtime.scrapes_first():  # within 200 ms of the last hold: polls go on
            assert held(runtime) == [False, False]
        clock.now += 0.1
        with runtime.scrapes_first():
            assert held(runtime) == [True, True]
