"""`--demo`: the built-in simulator on loopback and the exporter polling it, no config needed."""

from __future__ import annotations

from dataclasses import replace

import yaml

from exporter import platforms
from exporter.config import parse_config
from exporter.options import Options
from exporter.process import serve
from exporter.schema import Config
from exporter.simulator import Scenario, demo_scenario, start_simulator

# One simulated hour per second, so a day's follower growth shows in half a minute.
DEMO_TIME_SCALE = 3600.0


def demo_config(scenario: Scenario, base_url: str) -> Config:
    """Short intervals, so a newcomer sees every status within seconds."""
    accounts = [{"id": a.id, "labels": {"team": _team(a.platform)}} for a in scenario.accounts]
    raw = {
        "unipost": {
            "base_url": base_url,
            "api_key": scenario.api_key,
            "requests_per_minute": 600,
            "timeout": "2s",
        },
        "polling": {
            "interval": "3s",
            # The simulator's X window is shorter too: polling respects it, as in production.
            "platform_intervals": {"twitter": "5s"},
            "max_backoff": "30s",
            # Health reads cost no platform quota: often enough to see every state at once.
            "health_interval": "10s",
            # The workspace reads, also from UniPost's database: the queue, the month's posts
            # and the analytics change within seconds of simulated time.
            "usage_interval": "10s",
            "delivery_interval": "5s",
            "analytics_interval": "30s",
        },
        "accounts": accounts,
        # The listing fills in account names (the accounts above keep their team labels).
        "discovery": {"enabled": True, "refresh_interval": "1m"},
    }
    return parse_config(yaml.safe_dump(raw), {})


def _team(platform: str) -> str:
    known = platforms.PLATFORMS.get(platform)
    return known.kind if known else "other"


async def serve_demo(options: Options) -> int:
    """Start the simulator on a free loopback port, then serve the exporter against it."""
    scenario = replace(
        demo_scenario(),
        time_scale=DEMO_TIME_SCALE,
        upstream_error_rate=0.02,
        x_window=5.0,
        rate_limit_capacity=120,
        rate_limit_refill_per_second=20.0,
    )
    runner, base_url = await start_simulator(scenario, "127.0.0.1", 0)
    note = (
        f"This exporter polls the built-in UniPost simulator at {base_url}, not the real "
        "UniPost: every account and number here is simulated "
        f"(one simulated hour per second)."
    )

    async def reloaded() -> Config:
        return demo_config(scenario, base_url)

    try:
        demo = replace(
            options,
            demo_note=note,
            # A reload re-applies the built-in config: there is no file to edit.
            loader=reloaded,
            banner="DEMO MODE: polling the built-in UniPost simulator, not the real UniPost",
        )
        return await serve(demo_config(scenario, base_url), demo)
    finally:
        await runner.cleanup()
