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
def test_the_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = bench("bench.run", "--accounts", "200", "--rate", "200", "--seconds", "1",
                   "--scrapes", "2", "--json", str(figures))  # fmt: skip
    assert "CPU per poll" in result.stdout
    assert "output vs prometheus_client | identical" in " ".join(result.stdout.split())
    assert figures.exists()


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
