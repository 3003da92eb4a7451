"""The benchmark still runs (small N). It asserts nothing about speed: benchmarks report
figures and ratios, tests do not time things."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.process
def test_the_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--accounts", "200", "--rate", "200",
         "--seconds", "1", "--scrapes", "2", "--json", str(figures)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CPU per poll" in result.stdout
    assert "output vs prometheus_client | identical" in " ".join(result.stdout.split())
    assert figures.exists()
