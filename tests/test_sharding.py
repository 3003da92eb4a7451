"""Horizontal sharding: a stable split of the accounts, and replicas that together fit the
workspace budget."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from exporter.config import parse_config
from exporter.sharding import Shard, fnv1a_32, ordinal_from_hostname
from tests.helpers import ROOT, Samples, free_port, parse_exposition, series, value


def test_fnv1a_32_matches_the_reference_vectors() -> None:
    assert fnv1a_32("") == 0x811C9DC5
    assert fnv1a_32("a") == 0xE40C292C
    assert fnv1a_32("foobar") == 0xBF9CF968


def test_every_account_belongs_to_exactly_one_shard_and_the_split_is_even() -> None:
    ids = [f"sa_instagram_{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(account_id)] for account_id in ids]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(1 for o in owners if o == [i]) for i in range(3)]
    assert min(counts) > 900


def test_a_shard_polls_its_accounts_with_its_share_of_the_budget() -> None:
    config = parse_config(
        yaml.safe_dump(
            {
                "unipost": {"api_key": "k", "requests_per_minute": 90},
                "accounts": [{"id": f"sa_x_{i}"} for i in range(30)],
            }
        ),
        {},
    )
    parts = [Shard(i, 3).apply(config) for i in range(3)]
    assert [p.workspaces[0].unipost.requests_per_minute for p in parts] == [30, 30, 30]
    assert sorted(a.id for p in parts for a in p.workspaces[0].accounts) == sorted(
        a.id for a in config.workspaces[0].accounts
    )


@pytest.mark.parametrize(
    ("hostname", "ordinal"), [("unipost-exporter-0", 0), ("unipost-exporter-12", 12)]
)
def test_the_ordinal_comes_from_a_statefulset_hostname(hostname: str, ordinal: int) -> None:
    assert ordinal_from_hostname(hostname) == ordinal


def test_bad_shard_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="need 0 <= shard < total-shards"):
        Shard(3, 3)
    with pytest.raises(ValueError, match="does not end in -<ordinal>"):
        ordinal_from_hostname("exporter")


@pytest.mark.process
async def test_three_shards_cover_every_account_once_and_cause_no_429(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    accounts = [{"id": f"sa_instagram_{i}", "platform": "instagram"} for i in range(30)]
    # The workspace allows 6 requests/s; the budget says so; three replicas share it.
    scenario.write_text(
        yaml.safe_dump(
            {
                "upstream_error_rate": 0,
                "rate_limit_capacity": 6,
                "rate_limit_refill_per_second": 6,
                "accounts": accounts,
            }
        )
    )
    sim_port = free_port()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "exporter", "simulate",
            f"--web.listen-address=127.0.0.1:{sim_port}", f"--scenario.file={scenario}",
            cwd=ROOT, stderr=asyncio.subprocess.DEVNULL,
        )
    ]  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "unipost": {
                    "base_url": f"http://127.0.0.1:{sim_port}",
                    "api_key": "up_test_simulator",
                    "requests_per_minute": 360,
                },
                "polling": {"interval": "1s"},
                "accounts": [{"id": a["id"]} for a in accounts],
            }
        )
    )
    ports = [free_port() for _ in range(3)]
    for shard, port in enumerate(ports):
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "exporter", f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}", f"--shard={shard}", "--total-shards=3",
                f"--storage.path={tmp_path / f'state-{shard}'}",
                cwd=ROOT, stderr=asyncio.subprocess.DEVNULL,
            )
        )  # fmt: skip
    try:
        owned: list[set[str]] = []
        async with aiohttp.ClientSession() as session:

            async def scrape_all() -> list[Samples]:
                out = []
                for port in ports:
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                            out.append(parse_exposition(await response.text()))
                    except aiohttp.ClientConnectionError:
                        out.append({})  # not listening yet
                return out

            # Until every account has data (30 accounts at 6 requests/s: a round is 5 s).
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                scraped = await scrape_all()
                polled = sum(len(series(x, "unipost_account_followers")) for x in scraped)
                if polled == 30:
                    break
                assert asyncio.get_running_loop().time() < deadline, f"{polled} of 30 polled"
                await asyncio.sleep(0.2)
            for shard, samples in enumerate(scraped):
                assert value(samples, "unipost_exporter_shard") == shard
                assert value(samples, "unipost_exporter_total_shards") == 3
                assert value(samples, "unipost_exporter_budget_requests_per_minute") == 120
                assert not value(samples, "unipost_api_requests_total", status_code="429")
                owned.append(
                    {s["account_id"] for s in series(samples, "unipost_account_followers")}
                )
            # The workspace's own reads: shard 0 alone, so nothing is doubled.
            reading = [bool(series(x, "unipost_workspace_read_interval_seconds")) for x in scraped]
            assert reading == [True, False, False]
            assert not [x for x in scraped[1:] if series(x, "unipost_api_requests_total",
                                                         endpoint="delivery_jobs")]  # fmt: skip

    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in processes))
    assert sum(len(o) for o in owned) == 30
    assert set().union(*owned) == {a["id"] for a in accounts}
