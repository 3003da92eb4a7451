"""The exposition of a fixed store, compared to a checked-in file that promtool also checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.parse import Snapshot
from exporter.server import build_registry
from exporter.store import AccountState, Store
from tests.helpers import require_binary

GOLDEN = Path(__file__).parent / "golden" / "metrics.prom"


def fixed_store() -> Store:
    store = Store()
    good = Snapshot(
        platform="twitter",
        followers=12480,
        following=327,
        posts=2841,
        platform_values=(("listed_count", 41.0), ("tweet_count", 2841.0)),
        fetched_at=1777401000.0,
    )
    accounts = [
        AccountState(
            "sa_twitter_1", "twitter", (("team", "growth"),), 900.0, status="ok", snapshot=good
        ),
        AccountState(
            "sa_twitter_2",
            "twitter",
            (),
            900.0,
            status="upstream_failing",
            upstream_failures={"429": 3, "403": 1},
            consecutive_failures=2,
        ),
        AccountState(
            'sa_odd"\\\nid',
            "unknown",
            (("team", 'quote " backslash \\ newline \n'),),
            300.0,
            status="pending",
            account_name='Studio "Alex"',
        ),
        AccountState(
            "sa_youtube_5",
            "youtube",
            (),
            300.0,
            status="ok",
            # A channel that hides its subscribers: no followers or following series.
            snapshot=Snapshot(
                platform="youtube",
                followers=None,
                following=None,
                posts=312,
                platform_values=(("view_count", 18234001.0),),
                fetched_at=1777401000.5,
                platform_flags=(
                    ("following_count_supported", 0.0),
                    ("hidden_subscriber_count", 1.0),
                    ("post_count_public_only", 1.0),
                    ("subscriber_count_rounded", 1.0),
                ),
                unavailable=(
                    ("followers", "hidden by the channel"),
                    ("following", "YouTube does not provide it"),
                ),
            ),
        ),
        AccountState(
            "sa_linkedin_4",
            "linkedin",
            (),
            300.0,
            status="not_supported",
            api_errors={"NOT_SUPPORTED": 1},
        ),
    ]
    for account in accounts:
        store.accounts[account.id] = account
    store.api.record_request("account_metrics", "200", 0.12)
    store.api.record_request("account_metrics", "200", 0.7)
    store.api.record_request("account_metrics", "501", 0.04)
    store.api.record_request("account_metrics", "error", 10.0)
    store.api.ratelimit_limit = 60
    store.api.ratelimit_remaining = 57
    store.api.ratelimit_reset = 1777401060
    store.budget_requests_per_minute = 60
    return store


def render() -> bytes:
    return generate_latest(build_registry([fixed_store()], with_process_metrics=False))


def test_exposition_matches_the_golden_file() -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_bytes(render())
    assert render().decode() == GOLDEN.read_text()


@pytest.mark.promtool
def test_promtool_accepts_the_golden_file() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=GOLDEN.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    # promtool prints lint findings (e.g. naming) even when it exits 0: there must be none.
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""
