"""The exposition of a fixed store, compared to a checked-in file that promtool also checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.server import build_registry
from tests.helpers import fixed_store, require_binary

GOLDEN = Path(__file__).parent / "golden" / "metrics.prom"


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
