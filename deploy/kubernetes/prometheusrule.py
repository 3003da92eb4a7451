"""Write prometheusrule.yaml: the project's alert and recording rules for the Prometheus
Operator. `python deploy/kubernetes/prometheusrule.py`; a test fails when it is stale."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent.parent
OUT = Path(__file__).parent / "prometheusrule.yaml"


def render() -> str:
    groups = []
    for name in ("alerts.yml", "recording.yml"):
        groups += yaml.safe_load((ROOT / "prometheus" / name).read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "unipost-exporter",
            "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "unipost-exporter"},
        },
        "spec": {"groups": groups},
    }
    header = "# Generated from prometheus/alerts.yml and recording.yml: do not edit.\n"
    return header + yaml.safe_dump(resource, sort_keys=False, width=1000)


if __name__ == "__main__":
    OUT.write_text(render())
