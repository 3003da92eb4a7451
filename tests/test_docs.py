"""The README and docs/: every link lands, and every command they show is run by the test
(or CI step) named for it, which this checks runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
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
INVENTORY = "tests/test_inventory.py::test_a_table_of_what_the_key_can_see"
INVENTORY_YAML = "tests/test_inventory.py::test_yaml_that_pastes_into_a_valid_config"
PROCESS = "tests/test_cli.py::test_the_process_serves_logs_in_logfmt_and_stops_on_sigterm"
FIRST_RUN = "tests/test_docs.py::test_the_first_real_run_as_the_readme_shows_it"
RULES = "tests/test_dashboards_and_rules.py::"
GOLDEN = "tests/test_exposition_golden.py::"
BENCH = "tests/test_bench_smoke.py::"
NO_DOCKER = (
    "not run: CI has no Docker daemon, and no registry to pull the base image from; "
    "hadolint checks the Dockerfile (tests/test_dockerfile.py)"
)


@dataclass(frozen=True)
class Runner:
    """Who runs a documented command: a test, whose source must contain `runs` (what it
    runs of the command); for a make target, `make -n` must show it runs `via`. `test` is
    "CI" for what .ci/run runs, or why nothing here can run it."""

    test: str
    runs: str = ""
    via: str = ""


# Each documented command, and who runs it.
RUN_BY: list[tuple[str, Runner]] = [
    (r"make test", Runner("CI")),
    (r"make demo", Runner(DEMO, runs='"--demo"', via="unipost-exporter --demo")),
    (r"unipost-exporter --demo", Runner(DEMO, runs='"--demo"')),
    (r"make simulate", Runner(SIMULATE, runs='"simulate"', via="unipost-exporter simulate")),
    (r"unipost-exporter simulate\b.*", Runner(SIMULATE, runs='"simulate"')),
    (r"python -m exporter\.simulator", Runner(SIMULATE, runs='"exporter.simulator"')),
    (r"make accounts", Runner(INVENTORY, runs="await accounts(", via="unipost-exporter accounts")),
    (
        r'make accounts ARGS="--output yaml"',
        Runner(INVENTORY_YAML, runs='"--output", "yaml"', via="unipost-exporter accounts"),
    ),
    (r"unipost-exporter accounts( --config\.file \S+)?", Runner(INVENTORY, runs="await accounts(")),
    (
        r"unipost-exporter accounts .*--output yaml.*",
        Runner(INVENTORY_YAML, runs='"--output", "yaml"'),
    ),
    (r"make run( CONFIG=\S+)?", Runner(FIRST_RUN, runs='make("run"')),
    (r"cp config\.example\.yaml config\.yaml", Runner(FIRST_RUN, runs='"config.example.yaml"')),
    (r"export UNIPOST_API_KEY=\S+", Runner(FIRST_RUN, runs='"UNIPOST_API_KEY"')),
    (
        r"unipost-exporter( --config\.file \S+)? --config\.check",
        Runner(FIRST_RUN, runs='"--config.check"'),
    ),
    (r"unipost-exporter --config\.file \S+", Runner(PROCESS, runs="start_process(")),
    (
        r"promtool check config",
        Runner(
            RULES + "test_promtool_accepts_the_prometheus_config_compose_uses",
            runs='"check", "config"',
        ),
    ),
    (
        r"promtool test rules",
        Runner(RULES + "test_promtool_unit_tests_for_the_alerts_pass", runs='"test", "rules"'),
    ),
    (
        r"promtool check metrics",
        Runner(GOLDEN + "test_promtool_accepts_the_golden_file", runs='"check", "metrics"'),
    ),
    (
        r"make dashboards",
        Runner(
            RULES + "test_committed_dashboards_are_what_the_code_generates",
            runs="load_generator().render()",
            via="grafana/generate.py",
        ),
    ),
    (
        r"make prometheusrule",
        Runner(
            "tests/test_kubernetes.py::test_the_prometheusrule_holds_exactly_the_projects_rules",
            runs="module.render()",
            via="deploy/kubernetes/prometheusrule.py",
        ),
    ),
    (
        r"UPDATE_GOLDEN=1 pytest tests/test_exposition_golden\.py",
        Runner(GOLDEN + "test_exposition_matches_the_golden_file", runs='"UPDATE_GOLDEN"'),
    ),
    (
        r"make bench",
        Runner(
            BENCH + "test_the_sweep_starts_the_exporter_both_ways_and_prints_its_table",
            runs='"bench.run"',
            via="bench.run",
        ),
    ),
    (
        r"python -m bench\.run.*",
        Runner(
            BENCH + "test_the_sweep_starts_the_exporter_both_ways_and_prints_its_table",
            runs='"bench.run"',
        ),
    ),
    (
        r"python -m tests\.fake_unipost.*",
        Runner(
            BENCH + "test_the_sweep_starts_the_exporter_both_ways_and_prints_its_table",
            runs='"bench.run"',
        ),
    ),
    (
        r"make bench-load",
        Runner(
            BENCH + "test_the_load_benchmark_runs_and_no_scrape_fails",
            runs='"bench.load"',
            via="bench.load",
        ),
    ),
    (
        r"python -m bench\.load.*",
        Runner(BENCH + "test_the_load_benchmark_runs_and_no_scrape_fails", runs='"bench.load"'),
    ),
    (r"docker(-compose\.yml| build| run| compose).*", Runner(NO_DOCKER)),
]


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
            if PROGRAMS.match(span) and " " in span:  # a bare name (`promtool`) is no command
                commands.add(span)
    return commands


def runner(command: str) -> Runner | None:
    return next((who for pattern, who in RUN_BY if re.fullmatch(pattern, command)), None)


def source_of(test: str) -> str:
    """The source of the test function `file::name`, with its decorators (parameters)."""
    path, name = test.split("::")
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.match(rf"(async )?def {name}\(", line)), None
    )
    assert start is not None, f"{test} does not exist"
    first = start
    while first > 0 and lines[first - 1][:1] in ("@", " ", ")", "]"):
        first -= 1
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", ")")), None
    )
    return "\n".join(lines[first:end])


def test_every_documented_command_is_run_by_a_test_that_runs_it() -> None:
    commands = documented_commands()
    assert len(commands) >= 20, commands
    unrun = sorted(c for c in commands if runner(c) is None)
    assert not unrun, f"documented but run by nothing: {unrun}"
    for command in sorted(commands):
        who = runner(command)
        assert who is not None
        if "::" in who.test:
            assert who.runs in source_of(who.test), (command, who)
        if who.via:
            target = command.split()[1]
            dry = make("-n", target, "CONFIG=config.example.yaml")
            assert who.via in dry.stdout, (command, dry.stdout, dry.stderr)
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


def test_every_runbook_link_of_the_landing_page_lands() -> None:
    runbook = ROOT / "docs" / "runbook.md"
    assert landing.RUNBOOK.endswith("/blob/main/docs/runbook.md")
    for _advice, anchor in landing.ADVICE.values():
        if anchor:
            assert anchor in markdown_anchors(runbook), anchor
