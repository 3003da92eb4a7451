"""The benchmark still runs (small N). It asserts nothing about speed: benchmarks report
figures and ratios, tests do not time things."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.process
def test_the_sweep_s_smallest_size_runs_and_prints_its_table(tmp_path: Path) -> None:
    """`make bench` sweeps 1,000, 10,000 and 100,000 accounts; the smallest runs here, as a
    sweep of its own (each size in a fresh process), shortened."""
    figures = tmp_path / "figures.json"
    result = bench("bench.run", "--accounts", "1000,1000", "--rate", "1000", "--seconds", "1",
                   "--scrapes", "2", "--json", str(figures))  # fmt: skip
    assert "1,000 accounts | 1,000 accounts" in " ".join(result.stdout.split())
    assert "output vs prometheus_client | identical | identical" in " ".join(result.stdout.split())
    sizes = json.loads(figures.read_text())
    assert [size["accounts"] for size in sizes] == [1000, 1000]
    for size in sizes:
        # Behaviour, not speed: an exact limiter replaying the exporter's own send times
        # refuses none of them (its pacing never exceeds the budget), and every account
        # was polled.
        assert size["refused_replay_sends"] == 0
        assert size["polls_per_account_min"] >= 1


@pytest.mark.process
def test_the_load_benchmark_runs_and_no_scrape_fails(tmp_path: Path) -> None:
    figures = tmp_path / "load.json"
    result = bench("bench.load", "--accounts", "100", "--interval", "1", "--scrapers", "5",
                   "--seconds", "2", "--json", str(figures))  # fmt: skip
    assert "polls/s vs plan" in result.stdout
    load = json.loads(figures.read_text())
    # Behaviour, not speed: every scrape answered, and none of the polls was refused.
    assert load["scrapes"] > 0 and load["failed_scrapes"] == 0
    assert load["refused_429"] == 0


@pytest.mark.process
def test_the_health_memory_benchmark_runs_until_every_account_s_health_was_read() -> None:
    result = bench("bench.health_memory", "--accounts", "300")
    figures = json.loads(result.stdout.splitlines()[0])
    assert figures["accounts"] == 300
    assert figures["rss_mb_with_health"] > 0 and figures["rss_mb_after_first_round"] > 0
    assert "once every account's health was read" in result.stdout
