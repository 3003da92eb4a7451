"""`unipost-exporter accounts` as a user runs it, against the simulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestServer

from exporter.simulator import DEFAULT_SIM_KEY, Simulator, demo_scenario
from tests.helpers import ROOT, free_port, spawn

pytestmark = pytest.mark.process


@pytest.fixture
async def simulator_url() -> AsyncIterator[str]:
    async with TestServer(Simulator(demo_scenario()).app(), host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


async def accounts(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await spawn("accounts", "--config.file", str(config), *args)
    stdout, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def write(path: Path, base_url: str, key: str = DEFAULT_SIM_KEY) -> Path:
    path.write_text(yaml.safe_dump({"unipost": {"base_url": base_url, "api_key": key},
                                    "discovery": {"enabled": True}}))  # fmt: skip
    return path


async def test_a_table_of_what_the_key_can_see(simulator_url: str, tmp_path: Path) -> None:
    code, out, err = await accounts(write(tmp_path / "c.yaml", simulator_url))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PLATFORM", "NAME", "STATUS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    listed = {a.id for a in demo_scenario().accounts if a.behaviour != "disconnected"}
    assert set(rows) == listed
    assert "studio.alex" in rows["sa_instagram_studio"]
    assert rows["sa_instagram_shop"].split()[-1] == "reconnect_required"


async def test_yaml_that_pastes_into_a_valid_config(simulator_url: str, tmp_path: Path) -> None:
    code, out, _ = await accounts(write(tmp_path / "c.yaml", simulator_url), "--output", "yaml")
    assert code == 0
    pasted = yaml.safe_load(out)
    ids = [account["id"] for account in pasted["accounts"]]
    assert "sa_youtube_hidden" in ids and "sa_threads_old" not in ids
    # Pasted under a workspace's unipost section, it is a config the exporter accepts.
    config = tmp_path / "pasted.yaml"
    config.write_text(f"unipost: {{base_url: '{simulator_url}', api_key: k}}\n" + out)
    proc = await spawn("--config.file", str(config), "--config.check")
    stdout, _ = await proc.communicate()
    assert proc.returncode == 0, stdout
    assert f"{len(ids)} accounts" in stdout.decode()


async def test_a_rejected_key_exits_1_and_says_so(simulator_url: str, tmp_path: Path) -> None:
    code, out, err = await accounts(write(tmp_path / "c.yaml", simulator_url, "up_live_wrong"))
    assert code == 1 and out == ""
    assert "rejected the API key (401 UNAUTHORIZED)" in err
    assert "up_live_wrong" not in err


async def test_an_unreachable_unipost_exits_1_with_the_cause(tmp_path: Path) -> None:
    port = free_port()
    code, out, err = await accounts(write(tmp_path / "c.yaml", f"http://127.0.0.1:{port}"))
    assert code == 1 and out == ""
    assert f"cannot reach UniPost at http://127.0.0.1:{port}" in err
    assert "Connect call failed" in err


def test_the_example_config_names_accounts_the_simulator_has() -> None:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    simulated = {a.id for a in demo_scenario().accounts}
    assert {a["id"] for a in example["accounts"]} <= simulated
