"""The README and docs/: every link lands, and every command they show is run, here or by
the test (or CI step) named for it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import landing
from tests.helpers import ROOT, markdown_anchors

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = re.compile(
    r"^(?:make|unipost-exporter|python|docker|promtool|kubectl|curl|cp|export|pytest"
    r"|UPDATE_GOLDEN=\S+)\b"
)
DEMO = "tests/test_demo.py::test_demo_shows_every_kind_of_account_within_15_seconds"
SIMULATE = "tests/test_demo.py::test_the_simulator_runs_on_its_own"
INVENTORY = "tests/test_inventory.py::test_"
PROCESS = "tests/test_cli.py::test_the_process_serves_logs_in_logfmt_and_stops_on_sigterm"
RULES = "tests/test_dashboards_and_rules.py::"
GOLDEN = "tests/test_golden.py::"
BENCH = "tests/test_bench_smoke.py::"
NO_DOCKER = (
    "not run: CI has no Docker daemon, and no registry to pull the base image from; "
    "hadolint checks the Dockerfile (tests/test_dockerfile.py)"
)
# Who runs each documented command: a test ("file::function"), "CI" (.ci/run), "here" (a
# test in this module), or why it cannot run in this project's CI at all.
RUN_BY: list[tuple[str, str]] = [
    (r"make test|pytest|promtool", "CI"),
    (r"make demo|unipost-exporter --demo", DEMO),
    (r"unipost-exporter simulate\b.*|make simulate|python -m exporter\.simulator", SIMULATE),
    (r"make accounts( ARGS=.*)?|unipost-exporter accounts\b.*", INVENTORY),
    (r"make run( CONFIG=\S+)?", "here"),
    (r"cp config\.example\.yaml config\.yaml|export UNIPOST_API_KEY=\S+", "here"),
    (r"unipost-exporter( --config\.file \S+)? --config\.check", "here"),
    (r"unipost-exporter --config\.file \S+", PROCESS),
    (r"promtool check config", RULES + "test_promtool_accepts_the_prometheus_config_compose_uses"),
    (r"promtool test rules", RULES + "test_promtool_unit_tests_for_the_alerts_pass"),
    (r"promtool check metrics", GOLDEN + "test_promtool_accepts_the_golden_file"),
    (r"make dashboards|make prometheusrule", "here"),
    (r"UPDATE_GOLDEN=1 pytest tests/test_golden\.py", GOLDEN + "test_exposition_matches"),
    (r"make bench|python -m (bench\.run|tests\.fake_unipost).*", BENCH + "test_the_sweep_starts"),
    (r"make bench-load|python -m bench\.load.*", BENCH + "test_the_load_benchmark_runs"),
    (r"docker(-compose\.yml| build| run| compose).*", NO_DOCKER),
]  # fmt: skip


def documented_commands() -> set[str]:
    """Shell lines of ```sh blocks, and inline code that starts with a program."""
    commands = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:sh|bash|shell|console)\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #", 1)[0].strip()
                if line:
                    commands.add(" ".join(line.split()))
        # Inline code may wrap across a line: its words, joined again.
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", text):
            span = " ".join(span.split())
            if PROGRAMS.match(span):
                commands.add(span)
    return commands


def runner(command: str) -> str | None:
    return next((who for pattern, who in RUN_BY if re.fullmatch(pattern, command)), None)


def test_every_documented_command_is_run_by_a_test_or_ci() -> None:
    commands = documented_commands()
    assert len(commands) >= 20, commands
    unrun = sorted(c for c in commands if runner(c) is None)
    assert not unrun, f"documented but run by nothing: {unrun}"
    for command in commands:
        who = runner(command)
        assert who is not None
        if "::" in who:
            path, function = who.split("::")
            source = (ROOT / path).read_text()
            assert re.search(rf"def {function}\w*\(", source), (command, who)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_link_in_the_docs_lands() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"https?://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in markdown_anchors(file), f"{page.name}: {target}"


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.process
def test_the_first_real_run_as_the_readme_shows_it(tmp_path: Path) -> None:
    # cp config.example.yaml config.yaml; export UNIPOST_API_KEY=...; then the check and
    # `make run CONFIG=...` (with --config.check, so it validates and exits instead of polling).
    config = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.example.yaml", config)
    env = {"UNIPOST_API_KEY": "up_live_docs_example"}
    check = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--config.check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout
    args = "ARGS=--config.check --web.listen-address 127.0.0.1:9999"
    run = make("run", f"CONFIG={config}", args, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{config}: OK" in run.stdout
    # The address it will really serve, from ARGS.
    assert "would serve http://127.0.0.1:9999/" in run.stdout
    assert "up_live_docs_example" not in run.stdout + run.stderr
    # A bad config: the problem, no address, a non-zero exit.
    config.write_text(config.read_text().replace("interval: 5m", "interval: soon"))
    bad = make("run", f"CONFIG={config}", env=env)
    assert bad.returncode != 0
    assert "polling.interval" in bad.stderr and "would serve" not in bad.stdout


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("dashboards", "grafana/generate.py"),
        ("prometheusrule", "prometheusrule.py"),
        ("simulate", "unipost-exporter simulate"),
        ("accounts", "unipost-exporter accounts --config.file config.example.yaml"),
    ],
)
def test_make_targets_run_what_the_tests_run(target: str, command: str) -> None:
    # The tests run these commands (or compare a generator's output with the committed
    # files); `make -n` shows the documented target runs that very command.
    dry = make("-n", target, "CONFIG=config.example.yaml")
    assert dry.returncode == 0, dry.stderr
    assert command in dry.stdout


def test_every_runbook_link_of_the_landing_page_lands() -> None:
    runbook = ROOT / "docs" / "runbook.md"
    assert landing.RUNBOOK.endswith("/blob/main/docs/runbook.md")
    for _advice, anchor in landing.ADVICE.values():
        if anchor:
            assert anchor in markdown_anchors(runbook), anchor
