"""The benchmark still runs (small N). It asserts nothing about speed: benchmarks report
figures and ratios, tests do not time things."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_unipost import TokenBucket

ROOT = Path(__file__).parent.parent


def bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.process
def test_the_sweep_starts_the_exporter_both_ways_and_prints_its_table(tmp_path: Path) -> None:
    """`make bench` starts the exporter process from a YAML listing and from discovery at
    each size; a small size runs here, shortened (its hour-in runs are left to make bench:
    each waits for the exporter's 30 s save once more)."""
    figures = tmp_path / "figures.json"
    result = bench("bench.run", "--accounts", "300", "--seconds", "1.5", "--scrapes", "2",
                   "--refresh-interval", "1", "--no-hour", "--json", str(figures))  # fmt: skip
    table = " ".join(result.stdout.split())
    assert "| 300 yaml | 300 discovery |" in table
    assert "output vs prometheus_client | identical | identical" in table
    starts = json.loads(figures.read_text())
    assert [(s["accounts"], s["start"]) for s in starts] == [(300, "yaml"), (300, "discovery")]
    for start in starts:
        # Behaviour, not speed: the process started and stopped cleanly, polled every
        # account, saved its state, and its memory was read from /proc.
        assert "failed" not in start and start["exit_code"] == 0
        assert start["polls_per_account_min"] >= 1
        assert start["state_bytes"] > 0 and start["rss_mb_after_first_round"] > 0
    assert starts[1]["refreshes"] == 3


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


def test_the_benchmark_fake_judges_requests_it_read_late_as_if_read_on_arrival() -> None:
    """The fake's limiter (the judge of "requests refused") refuses a burst it reads on time,
    but not the same requests read at once after its own process was held: sent at the
    budget's pace, they only arrived together from where it stood."""
    now = [0.0]
    bucket = TokenBucket(rate=1000, burst=10, now=lambda: now[0])
    now[0] = 1.0
    assert [bucket.take() for _ in range(20)].count(False) == 10  # a burst of 20, on time
    now[0] = 2.0
    bucket.held(0.02)  # 20 ms unable to read: 20 requests at the pace queued meanwhile
    assert all(bucket.take() for _ in range(20))
    bucket.on_time()
    now[0] = 2.001
    assert [bucket.take() for _ in range(15)].count(False) == 5  # back to `burst`
