"""Dashboards as code, alert and recording rules, and the compose stack: checked statically."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import markdown_anchors, require_binary

ROOT = Path(__file__).parent.parent
PROM = ROOT / "prometheus"


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "grafana_generate", ROOT / "grafana" / "generate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, Any]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_committed_dashboards_are_what_the_code_generates() -> None:
    generated = load_generator().render()
    committed = {name: (ROOT / "grafana" / "dashboards" / name).read_text() for name in generated}
    assert set(generated) == {p.name for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    for name, text in generated.items():
        assert committed[name] == text, f"run `make dashboards`: {name} is out of date"


def test_every_panel_has_a_unit_thresholds_a_description_and_queries() -> None:
    for name, board in dashboards().items():
        for panel in panels(board):
            where = f"{name}: {panel['title']}"
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults.get("unit"), where
            assert defaults.get("thresholds", {}).get("steps"), where
            assert len(panel.get("description", "")) > 20, where
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), where
            assert panel["datasource"]["uid"] == "${datasource}", where


def test_template_variables() -> None:
    boards = dashboards()
    names = {n: [v["name"] for v in b["templating"]["list"]] for n, b in boards.items()}
    assert names == {
        "account.json": ["datasource", "workspace", "platform", "team", "account"],
        "overview.json": ["datasource", "workspace", "platform", "team"],
        "workspace.json": ["datasource", "workspace", "platform"],
    }
    account = boards["account.json"]["templating"]["list"][4]
    assert "unipost_account_info" in account["query"]
    assert "(?<text>" in account["regex"], "accounts are listed by name"


def run_promtool(*args: str) -> str:
    result = subprocess.run(
        [require_binary("promtool"), *args], capture_output=True, text=True, check=False, cwd=PROM
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.promtool
def test_promtool_checks_the_rules_and_the_example_config() -> None:
    run_promtool("check", "rules", "alerts.yml", "recording.yml")
    run_promtool("check", "config", "prometheus.yml")


@pytest.mark.promtool
def test_promtool_unit_tests_for_the_alerts_pass() -> None:
    output = run_promtool("test", "rules", "alerts_test.yml")
    assert "SUCCESS" in output


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_test_that_fires_and_one_that_does_not() -> None:
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fired, f"no firing case: {names - fired}"
    assert names <= silent, f"no silent case: {names - silent}"


def test_every_alert_links_a_runbook_section_that_exists() -> None:
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        url, anchor = annotations["runbook_url"].rsplit("#", 1)
        # The repository's path after /blob/main/: a file of this checkout.
        path = ROOT / url.split("/blob/main/", 1)[1]
        assert path == ROOT / "docs" / "runbook.md", rule["alert"]
        assert anchor in markdown_anchors(path), f"{rule['alert']}: no section #{anchor}"
        assert rule["labels"]["severity"] in ("critical", "warning", "info")


def test_the_compose_stack_mounts_files_that_exist_and_configs_that_are_valid() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"simulator", "exporter", "prometheus", "grafana"}
    mounted: dict[str, Path] = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source in compose.get("volumes", {}):
                assert target == "/var/lib/unipost-exporter"  # a named volume: the state
                continue
            path = (ROOT / source).resolve()
            assert path.exists(), f"{source} is mounted but does not exist"
            mounted[target] = path
    prometheus_config = mounted["/etc/prometheus/prometheus.yml"]
    # Every rule file the config names is mounted beside it.
    rule_files = yaml.safe_load(prometheus_config.read_text())["rule_files"]
    for rule_file in rule_files:
        assert f"/etc/prometheus/{rule_file}" in mounted
    # The exporter's and the simulator's configs are valid.
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.check",
            f"--config.file={mounted['/etc/unipost-exporter/config.yaml']}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    from exporter.simulator import load_scenario

    load_scenario(mounted["/etc/unipost-simulator/scenario.yaml"])
    # Grafana's dashboard provider reads the folder the dashboards are mounted on.
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/unipost.yml").read_text())[
        "providers"
    ][0]
    assert provider["options"]["path"] in mounted
    assert mounted[provider["options"]["path"]] == (ROOT / "grafana/dashboards").resolve()


@pytest.mark.promtool
def test_promtool_accepts_the_prometheus_config_compose_uses() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volume = next(v for v in compose["services"]["prometheus"]["volumes"] if "prometheus.yml" in v)
    run_promtool("check", "config", str((ROOT / volume.split(":")[0]).resolve()))
