"""A real Prometheus loads the rules and scrapes the exporter polling the simulator (--demo);
every dashboard query and every rule is then checked against it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.helpers import finish, free_port, real_prometheus, spawn

pytestmark = [pytest.mark.promtool, pytest.mark.process]
ROOT = Path(__file__).parent.parent
FAILING = "sa_twitter_noscope"  # zero-filled 403 on every poll (an X tier without access)
HEALTHY = "sa_tiktok_brand"
THROTTLED = "sa_tiktok_shop"  # TikTok throttles this one account: 429 UPSTREAM_RATE_LIMITED
# Accounts with counts their platform does not provide (the "missing counts" panel).
PARTIAL = "sa_youtube_hidden|sa_threads_studio"
SUBSTITUTIONS = {
    "$__rate_interval": "10s",
    "$__interval": "1s",
    # "All": the demo runs the single-workspace form, whose series have no workspace label.
    "$workspace": ".*",
    "$platform": ".*",
    "$team": ".*",
    # Healthy, failing and partial accounts, as a multi-value selection renders them.
    "$account": f"{HEALTHY}|{FAILING}|{PARTIAL}",
}


class Prometheus:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def api(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.base}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[Any]:
        result: list[Any] = (await self.api("query", query=expr))["result"]
        return result


def with_fast_groups(source: Path, target: Path) -> Path:
    """The same rules, evaluated every second (recording groups say 1m for production)."""
    rules = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    target.write_text(yaml.safe_dump(rules))
    return target


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[Prometheus]:
    exporter_port = free_port()
    exporter = await spawn("--demo", "--web.listen-address", f"127.0.0.1:{exporter_port}")
    rule_files = [
        with_fast_groups(ROOT / "prometheus" / name, tmp_path / name)
        for name in ("alerts.yml", "recording.yml")
    ]
    try:
        async with (
            real_prometheus(tmp_path, exporter_port, rule_files) as base,
            aiohttp.ClientSession() as session,
        ):
            yield Prometheus(session, base)
    finally:
        await finish(exporter)


async def wait_for(prom: Prometheus, what: str, check: Any, seconds: float = 45) -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (aiohttp.ClientError, AssertionError):
            pass
        await asyncio.sleep(0.5)
    pytest.fail(f"{what} did not happen in {seconds}s (last: {last})")


def substitute(expr: str) -> str:
    for variable, replacement in SUBSTITUTIONS.items():
        expr = expr.replace(variable, replacement)
    assert "$" not in expr.replace('"$1"', ""), f"unsubstituted variable in {expr}"
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                out.append((f"{path.name}: variable {variable['name']}", variable["query"]))
    return out


async def test_rules_dashboards_and_alerts_against_a_real_prometheus(
    prometheus: Prometheus,
) -> None:
    async def alert_pending() -> list[Any]:
        alerts = (await prometheus.api("alerts"))["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "UniPostUpstreamFailing"]

    async def growth() -> list[Any]:
        return await prometheus.query("account:unipost_account_followers:delta1d_ratio")

    async def failing_account_alerted() -> bool:
        return FAILING in {a["labels"]["account_id"] for a in await alert_pending()}

    await wait_for(prometheus, "the upstream-failure alert", failing_account_alerted)
    await wait_for(prometheus, "recorded growth", growth)

    # Every rule is loaded and healthy.
    groups = (await prometheus.api("rules"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 25
    for rule in rules:
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule["name"]

    # Every dashboard query is accepted, and returns data.
    empty: set[str] = set()
    with_data: set[str] = set()
    for where, expr in dashboard_queries():
        label_values = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
        if label_values:
            result = await prometheus.query(substitute(label_values.group(1)))
            values = {r["metric"].get(label_values.group(2)) for r in result}
            if where.endswith("team"):
                assert values == {"social", "video", "other"}, where
            if where.endswith("workspace"):
                assert values == {None}, "the single-workspace form has no workspace label"
                continue
            assert values - {None}, where
            continue
        query_result = re.fullmatch(r"query_result\((.*)\)", expr)
        if query_result:
            expr = query_result.group(1)
        if await prometheus.query(substitute(expr)):
            with_data.add(where)
        else:
            empty.add(where)
    # A panel shows data when any of its queries does.
    assert empty - with_data == set(), "panels that should show data are empty"

    # The upstream-failure alert is pending (or firing) for the failing account and the one
    # its platform throttles, and for no other.
    alerts = await alert_pending()
    assert {a["labels"]["account_id"] for a in alerts} <= {FAILING, THROTTLED}
    assert FAILING in {a["labels"]["account_id"] for a in alerts}
    assert {a["state"] for a in alerts} <= {"pending", "firing"}

    # The demo's token expiring in 3 days and its expired one are both caught.
    async def token_alerts() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for alert in (await prometheus.api("alerts"))["alerts"]:
            name = alert["labels"]["alertname"]
            if name.startswith("UniPostAccountToken"):
                found.setdefault(name, set()).add(alert["labels"]["account_id"])
        return found if len(found) == 2 else {}

    tokens = await wait_for(prometheus, "the token alerts", token_alerts)
    assert tokens == {
        "UniPostAccountTokenExpiringSoon": {"sa_youtube_channel"},
        "UniPostAccountTokenExpired": {"sa_twitter_legacy"},
    }

    # The workspace: the demo's dead delivery job is alerted, and the engagement rate is
    # recorded only where the platform provides impressions (X and Threads in the demo).
    async def dead_job_alert() -> list[Any]:
        alerts = (await prometheus.api("alerts"))["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "UniPostDeliveryJobsDead"]

    await wait_for(prometheus, "the dead delivery job alert", dead_job_alert)
    rates = await prometheus.query("platform:unipost_analytics_engagement_rate:ratio")
    assert {r["metric"]["platform"] for r in rates} == {"twitter", "threads"}
    assert all(0 < float(r["value"][1]) < 1 for r in rates)
