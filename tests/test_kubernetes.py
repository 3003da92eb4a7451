"""The Kubernetes manifests parse, reference what exists, and carry the project's rules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent
K8S = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def test_every_manifest_parses_and_names_what_it_needs() -> None:
    docs = manifests()
    kinds = {kind for kind, _ in docs}
    assert kinds == {
        "Namespace", "Secret", "ConfigMap", "StatefulSet", "Service", "ServiceMonitor",
        "PrometheusRule",
    }  # fmt: skip
    sts = docs[("StatefulSet", "unipost-exporter")]
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = docs[("Service", sts["spec"]["serviceName"])]
    assert service["spec"]["selector"].items() <= labels.items()
    monitor = docs[("ServiceMonitor", "unipost-exporter")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    for volume in pod["spec"]["volumes"]:
        if "configMap" in volume:
            assert ("ConfigMap", volume["configMap"]["name"]) in docs
        if "secret" in volume:
            assert ("Secret", volume["secret"]["secretName"]) in docs
    args = pod["spec"]["containers"][0]["args"]
    assert f"--total-shards={sts['spec']['replicas']}" in args, "replicas = --total-shards"
    assert "--shard.from-hostname" in args
    # Each shard keeps its own state on a volume of its own.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert f"--storage.path={mounts[claim['metadata']['name']]}" in args


def test_the_configmap_holds_a_valid_config(tmp_path: Path) -> None:
    docs = manifests()
    config = tmp_path / "config.yaml"
    config.write_text(docs[("ConfigMap", "unipost-exporter")]["data"]["config.yaml"])
    key = tmp_path / "api-key"
    key.write_text(docs[("Secret", "unipost-exporter")]["stringData"]["api-key"])
    text = config.read_text().replace("/etc/unipost-exporter/secret/api-key", str(key))
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", f"--config.file={config}"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_prometheusrule_holds_exactly_the_projects_rules() -> None:
    rule = manifests()[("PrometheusRule", "unipost-exporter")]
    expected = []
    for name in ("alerts.yml", "recording.yml"):
        expected += yaml.safe_load((ROOT / "prometheus" / name).read_text())["groups"]
    assert rule["spec"]["groups"] == expected
    spec = importlib.util.spec_from_file_location("prometheusrule", K8S / "prometheusrule.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "prometheusrule.yaml").read_text() == module.render(), (
        "run: python deploy/kubernetes/prometheusrule.py"
    )
