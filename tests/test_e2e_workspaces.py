"""Several workspaces: two simulated UniPost workspaces on loopback, one exporter, each with its
own key, budget and limiter; read through /metrics, the landing page and the logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.server import create_app
from exporter.simulator import Scenario, SimAccount, Simulator
from tests.helpers import (
    Samples,
    parse_exposition,
    scrape_until,
    series,
    statuses,
    value,
    wait_until,
)

ACME_KEY = "up_live_acme_SECRET"
GLOBEX_KEY = "up_live_globex_SECRET"
ACME_IDS = ["sa_instagram_a1", "sa_youtube_a2", "sa_instagram_shared"]
GLOBEX_IDS = ["sa_instagram_g1", "sa_instagram_g2", "sa_instagram_shared"]
RPM = 600
INTERVAL = 1.0
# Polls per account the pace is read from: it is read from the gaps between the polls
# UniPost received, not from a count of whole polls in a window of time, which moves by a
# quarter on where the window falls.
POLLS_MEASURED = 4
# Polls per second a workspace of three accounts plans at a 1s interval: jitter lengthens
# each interval by up to 10%, 5% on average.
PLAN = 3 / (INTERVAL * 1.05)


def scenario(key: str, ids: list[str], **limits: Any) -> Scenario:
    accounts = tuple(SimAccount(id=i, platform=i.split("_")[1], name=i.upper()) for i in ids)
    # With the workspace limiter on GETs and its headers, as a later UniPost may send them:
    # the tests below are about each workspace learning its own limit.
    return Scenario(
        accounts=accounts,
        api_key=key,
        upstream_error_rate=0.0,
        rate_limit_headers=True,
        **limits,
    )


class Arrivals:
    """When the simulated UniPost answered each account's metrics with 200, by its clock."""

    def __init__(self, app: web.Application) -> None:
        self.times: dict[str, list[float]] = {}
        app.on_response_prepare.append(self._record)

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        if response.status == 200 and request.path.endswith("/metrics"):
            account = request.match_info["account_id"]
            self.times.setdefault(account, []).append(asyncio.get_running_loop().time())

    def rate(self, start: float, end: float) -> float:
        """Polls per second in [start, end], summed over accounts, each from its mean gap."""
        total = 0.0
        for times in self.times.values():
            inside = [t for t in times if start <= t <= end]
            if len(inside) >= 2:
                total += (len(inside) - 1) / (inside[-1] - inside[0])
        return total


@dataclass
class Stack:
    acme: Simulator
    globex: Simulator
    client: TestClient[Any, Any]
    arrivals: dict[str, Arrivals]

    async def scrape(self) -> Samples:
        response = await self.client.get("/metrics")
        assert response.status == 200
        return parse_exposition(await response.text())

    async def until(self, check: Any, seconds: float = 10) -> Samples:
        return await scrape_until(
            self.scrape, check, seconds, lambda s: series(s, "unipost_account_status")
        )

    async def polls_per_second(self, workspace: str) -> float:
        """Good answers the workspace's UniPost gave per second, from now until every one of
        its accounts has had POLLS_MEASURED more."""
        loop = asyncio.get_running_loop()
        start, arrivals = loop.time(), self.arrivals[workspace]
        ids = ACME_IDS if workspace == "acme" else GLOBEX_IDS

        def measured() -> bool:
            times = arrivals.times
            return all(sum(t >= start for t in times.get(i, ())) >= POLLS_MEASURED for i in ids)

        await wait_until(measured, seconds=20, what=f"{POLLS_MEASURED} polls of {ids}")
        return arrivals.rate(start, loop.time())


def all_ok(workspace: str, ids: list[str]) -> Any:
    return lambda samples: statuses(samples, workspace=workspace) == dict.fromkeys(ids, "ok")


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, **acme_limits: Any) -> AsyncIterator[Stack]:
    acme = Simulator(scenario(ACME_KEY, ACME_IDS, **acme_limits))
    globex = Simulator(scenario(GLOBEX_KEY, GLOBEX_IDS))
    key_file = tmp_path / "globex"
    key_file.write_text(GLOBEX_KEY + "\n")
    acme_app, globex_app = acme.app(), globex.app()
    arrivals = {"acme": Arrivals(acme_app), "globex": Arrivals(globex_app)}
    async with (
        TestServer(acme_app, host="127.0.0.1") as acme_server,
        TestServer(globex_app, host="127.0.0.1") as globex_server,
    ):
        raw = {
            "polling": {"interval": "1s", "max_backoff": "5s"},
            "workspaces": [
                {
                    "name": "acme",
                    "unipost": {
                        "base_url": str(acme_server.make_url("")).rstrip("/"),
                        "api_key": "${ACME_KEY}",
                        "requests_per_minute": RPM,
                        "timeout": "2s",
                    },
                    "accounts": [
                        {"id": ACME_IDS[0], "labels": {"team": "growth"}},
                        *({"id": i} for i in ACME_IDS[1:]),
                    ],
                },
                {
                    "name": "globex",
                    "unipost": {
                        "base_url": str(globex_server.make_url("")).rstrip("/"),
                        "api_key_file": str(key_file),
                        "requests_per_minute": RPM,
                        "timeout": "2s",
                    },
                    "accounts": [{"id": GLOBEX_IDS[0]}],
                    # The rest are discovered, as in the example.
                    "discovery": {"enabled": True, "refresh_interval": "1m"},
                },
            ],
        }
        config = parse_config(yaml.safe_dump(raw), {"ACME_KEY": ACME_KEY})
        async with TestClient(TestServer(create_app(config), host="127.0.0.1")) as client:
            yield Stack(acme, globex, client, arrivals)


PER_ACCOUNT = (
    "unipost_account_",
    "unipost_upstream_failures_total",
    "unipost_api_errors_total",
)
API_WIDE = (
    "unipost_api_requests_total",
    "unipost_api_request_duration_seconds",
    "unipost_api_ratelimit_",
    "unipost_exporter_budget_requests_per_minute",
    "unipost_exporter_interval_stretch_factor",
    # The workspace reads' series.
    "unipost_plan_",
    "unipost_usage_",
    "unipost_delivery_jobs",
    "unipost_analytics_",
    "unipost_workspace_read_",
)


async def test_every_series_carries_its_workspace(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        samples = await s.until(
            lambda x: all_ok("acme", ACME_IDS)(x) and all_ok("globex", GLOBEX_IDS)(x)
        )
        for (name, labels), _ in samples.items():
            workspace = dict(labels).get("workspace")
            if name.startswith(PER_ACCOUNT + API_WIDE):
                assert workspace in ("acme", "globex"), f"{name}{dict(labels)} has no workspace"
            else:
                assert workspace is None, f"{name} is process-wide, not per workspace"
        # The same account ID in two workspaces is two accounts.
        shared = series(samples, "unipost_account_info", account_id="sa_instagram_shared")
        assert sorted(s["workspace"] for s in shared) == ["acme", "globex"]
        # Static labels and discovered names keep working inside a workspace.
        assert series(samples, "unipost_account_followers", team="growth") == [
            {
                "account_id": "sa_instagram_a1",
                "platform": "instagram",
                "team": "growth",
                "workspace": "acme",
            }
        ]
        assert value(
            samples, "unipost_account_info", workspace="globex", account_name="SA_INSTAGRAM_G2"
        )
        # Each workspace's own reads, under its name.
        for workspace in ("acme", "globex"):
            interval = value(samples, "unipost_workspace_read_interval_seconds",
                             workspace=workspace, read="delivery_jobs")  # fmt: skip
            assert interval == 60
        for workspace in ("acme", "globex"):
            budget = value(
                samples, "unipost_exporter_budget_requests_per_minute", workspace=workspace
            )
            assert budget == RPM
        page = await (await s.client.get("/")).text()
        assert "<th>workspace</th>" in page
        # The row names the workspace, then the account (its name, and its ID under it).
        assert re.search(
            r"<tr[^>]*><td>globex</td><td>[^<]*(<br><span class=id>)?sa_instagram_g2", page
        )
        assert ACME_KEY not in page and GLOBEX_KEY not in page


async def test_a_revoked_key_pauses_only_its_workspace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with stack(tmp_path) as s:
        await s.until(lambda x: all_ok("acme", ACME_IDS)(x) and all_ok("globex", GLOBEX_IDS)(x))
        before = await s.polls_per_second("globex")

        s.acme.api_key = "up_live_acme_ROTATED"  # acme's key is revoked
        samples = await s.until(
            lambda x: statuses(x, workspace="acme") == dict.fromkeys(ACME_IDS, "unauthorized")
        )
        assert statuses(samples, workspace="globex") == dict.fromkeys(GLOBEX_IDS, "ok")
        after = await s.polls_per_second("globex")
        samples = await s.scrape()

    # Globex keeps its full speed.
    assert after >= 0.8 * PLAN, (before, after)
    assert after >= 0.85 * before, (before, after)
    assert statuses(samples, workspace="globex") == dict.fromkeys(GLOBEX_IDS, "ok")
    refused = value(
        samples,
        "unipost_api_requests_total",
        workspace="acme",
        status_code="401",
        endpoint="account_metrics",
    )
    # Acme is paused: after the first refusals, one probe per pause step (5s max here).
    assert refused is not None and refused <= len(ACME_IDS) + 2
    assert not series(samples, "unipost_api_requests_total", workspace="globex", status_code="401")
    rejected = [r for r in caplog.records if r.getMessage().startswith("UniPost rejected")]
    assert [r.fields["workspace"] for r in rejected] == ["acme"]  # type: ignore[attr-defined]


async def test_rate_limiting_in_one_workspace_never_slows_another(tmp_path: Path) -> None:
    # Acme's UniPost allows one request a second, a third of what acme's budget asks for.
    async with stack(tmp_path, rate_limit_capacity=2, rate_limit_refill_per_second=1.0) as s:
        await s.until(lambda x: all_ok("globex", GLOBEX_IDS)(x))
        await s.until(
            lambda x: (
                (value(x, "unipost_exporter_budget_requests_per_minute", workspace="acme") or RPM)
                < RPM
            )
        )
        rate = await s.polls_per_second("globex")
        samples = await s.scrape()

    assert rate >= 0.8 * PLAN
    assert value(samples, "unipost_exporter_budget_requests_per_minute", workspace="globex") == RPM
    assert not series(samples, "unipost_api_requests_total", workspace="globex", status_code="429")
    # Each workspace learned its own limiter from its own headers; acme's pace came down
    # (here from the headers alone, before any 429), globex's did not move.
    assert value(samples, "unipost_api_ratelimit_limit", workspace="acme") == 2
    assert value(samples, "unipost_api_ratelimit_limit", workspace="globex") == 120
    acme_pace = value(samples, "unipost_exporter_budget_requests_per_minute", workspace="acme")
    assert acme_pace is not None and acme_pace < RPM
