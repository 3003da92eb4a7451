"""The command as users run it: flags, exit codes, logs, signals, and a key that never leaks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest
import trustme
import yaml

from exporter import __version__
from tests.fake_unipost import API_KEY, FakeUniPost, Reply, error, snapshot, zero_filled
from tests.helpers import (
    ROOT,
    Samples,
    parse_exposition,
    scrape_until,
    series,
    start_process,
    stop,
    value,
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=30,
        check=False,
    )


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"unipost-exporter {__version__}\n")


def test_config_check_accepts_the_example() -> None:
    result = run(
        "--config.file", "config.example.yaml", "--config.check", env={"UNIPOST_API_KEY": "k"}
    )
    assert result.returncode == 0
    assert result.stdout.startswith("config.example.yaml: OK (2 accounts")


def test_config_check_summarises_each_workspace(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "workspaces:\n"
        "  - {name: acme, unipost: {api_key: ${ACME}, requests_per_minute: 30}, "
        "accounts: [{id: sa_x_1}]}\n"
        "  - {name: globex, unipost: {api_key: k2}, discovery: {enabled: true}}\n"
    )
    result = run("--config.file", str(path), "--config.check", env={"ACME": "k1"})
    assert (result.returncode, result.stdout) == (
        0,
        f"{path}: OK (acme: 1 account, budget 30 requests/minute; "
        "globex: 0 accounts + discovery, budget 60 requests/minute; interval 5m)\n"
        "unipost-exporter would serve http://localhost:9863/ (metrics at "
        "http://localhost:9863/metrics)\n",
    )


def test_config_check_names_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("unipost: {api_key: k}\npolling: {interval: soon}\naccounts: [{id: a, x: 1}]\n")
    result = run("--config.file", str(bad), "--config.check")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"unipost-exporter: invalid configuration in {bad}:",
        '  polling.interval: "soon" is not a duration (write it like 30s, 5m or 1h)',
        "  accounts[0].x: unknown key",
    ]


def test_a_missing_config_file_exits_1_without_starting(tmp_path: Path) -> None:
    result = run("--config.file", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "cannot read config file" in result.stderr


def test_a_bad_listen_address_exits_1() -> None:
    result = run("--config.file", "config.example.yaml", "--web.listen-address", "nope")
    assert result.returncode == 1
    assert "--web.listen-address: 'nope' is not HOST:PORT" in result.stderr


def handler(account_id: str) -> Reply:
    if account_id == "sa_twitter_1":
        return snapshot(account_id, followers=321)
    if account_id == "sa_twitter_2":
        return zero_filled(account_id)
    if account_id == "sa_instagram_3":
        return Reply(raw=b"not json " + API_KEY.encode())
    return error(502, "UPSTREAM_ERROR", f"upstream echoed Bearer {API_KEY}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeUniPost]:
    async with FakeUniPost(handler) as fake:
        yield fake


@pytest.mark.process
async def test_the_process_serves_logs_in_logfmt_and_stops_on_sigterm(
    fake: FakeUniPost, tmp_path: Path
) -> None:
    process, _ = await start_process(fake, tmp_path, "--log.level", "debug")
    try:
        for _ in range(100):
            _, text = await process.get("/metrics")
            samples = parse_exposition(text)
            if (
                not series(samples, "unipost_account_status", status="pending")
                and (value(samples, "unipost_api_errors_total", code="UPSTREAM_ERROR") or 0) >= 3
            ):
                break
            await asyncio.sleep(0.1)
        assert value(samples, "unipost_account_followers", account_id="sa_twitter_1") == 321
        assert value(samples, "unipost_account_status", account_id="sa_youtube_4") is not None
        assert "process_resident_memory_bytes" in text
        _, page = await process.get("/")
        # Probe every failure path, then check the key never surfaced anywhere.
        for body in (text, page):
            assert API_KEY not in body
    finally:
        code, seconds = await stop(process)
    assert code == 0
    assert seconds < 5
    log = process.stderr.decode()
    assert API_KEY not in log
    assert "Bearer <redacted>" in log, "the upstream echo of the key was logged, scrubbed"
    lines = log.splitlines()
    assert all(line.startswith("ts=") and " level=" in line for line in lines), log
    ours = [line for line in lines if " logger=exporter" in line]
    assert 'msg="unipost-exporter starting"' in ours[0]
    assert any(
        'msg="account status changed" account_id=sa_twitter_1' in line and "to=ok" in line
        for line in lines
    )
    # At info level one line per status change, not per poll: count at debug the changes only.
    changes = [line for line in lines if "account status changed" in line]
    assert len(changes) <= 8
    assert lines[-1].endswith("msg=stopped")


@pytest.mark.process
async def test_no_workspace_key_surfaces_anywhere(fake: FakeUniPost, tmp_path: Path) -> None:
    second = "up_live_globex_SECOND_secret"
    process, _ = await start_process(fake, tmp_path, "--log.level", "debug", second_key=second)
    try:
        for _ in range(100):
            _, text = await process.get("/metrics")
            samples = parse_exposition(text)
            rejected = series(
                samples, "unipost_account_status", workspace="globex", status="unauthorized"
            )
            if len(rejected) == 4 and value(
                samples, "unipost_account_followers", workspace="acme", account_id="sa_twitter_1"
            ):
                break
            await asyncio.sleep(0.1)
        assert len(rejected) == 4
        _, page = await process.get("/")
        for body in (text, page):
            assert API_KEY not in body and second not in body
    finally:
        code, _ = await stop(process)
    assert code == 0
    log = process.stderr.decode()
    assert API_KEY not in log and second not in log
    assert "Bearer <redacted>" in log, "globex's key, echoed in the 401 body, was scrubbed"
    assert any(
        "UniPost rejected the API key" in line and "workspace=globex" in line
        for line in log.splitlines()
    )


@pytest.mark.process
async def test_sighup_reloads_the_config_and_a_bad_file_is_kept_out(
    fake: FakeUniPost, tmp_path: Path
) -> None:
    process, config = await start_process(fake, tmp_path)

    async def scrape() -> Samples:
        return parse_exposition((await process.get("/metrics"))[1])

    try:
        raw = yaml.safe_load(config.read_text())
        raw["accounts"].append({"id": "sa_bluesky_added"})
        config.write_text(yaml.safe_dump(raw))
        process.proc.send_signal(signal.SIGHUP)
        samples = await scrape_until(
            scrape,
            lambda x: bool(series(x, "unipost_account_status", account_id="sa_bluesky_added")),
        )
        assert value(samples, "unipost_exporter_config_last_reload_successful") == 1
        config.write_text("accounts: [")
        process.proc.send_signal(signal.SIGHUP)
        samples = await scrape_until(
            scrape, lambda x: value(x, "unipost_exporter_config_last_reload_successful") == 0
        )
        assert series(samples, "unipost_account_status", account_id="sa_bluesky_added")
        assert (await process.get("/-/healthy"))[0] == 200
    finally:
        code, _ = await stop(process)
    assert code == 0
    log = process.stderr.decode()
    assert 'msg="config reloaded" workspaces=1 accounts=5' in log
    assert 'msg="config reload failed; keeping the running config"' in log
    assert "invalid YAML at line 1" in log


def test_a_bad_web_config_exits_1_naming_the_key(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {alice: hunter2}\ntls: {}\n")
    result = run(
        "--config.file", "config.example.yaml", "--web.config.file", str(web),
        env={"UNIPOST_API_KEY": "k"},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"unipost-exporter: invalid web configuration in {web}:",
        "  tls: unknown key",
        '  basic_auth_users.alice: is not a bcrypt hash (htpasswd -nBC 10 "" ...)',
    ]
    assert "hunter2" not in result.stderr


@pytest.mark.process
async def test_tls_and_basic_auth_from_the_web_config_file(
    fake: FakeUniPost, tmp_path: Path
) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                "basic_auth_users": {"prometheus": hashed},
            }
        )
    )
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    token = base64.b64encode(b"prometheus:pw").decode()
    process, _ = await start_process(
        fake,
        tmp_path,
        "--web.config.file",
        str(web),
        ssl_context=client_ssl,
        headers={"Authorization": f"Basic {token}"},
    )
    try:
        status, text = await process.get("/metrics")
        assert status == 200 and "unipost_exporter_build_info" in text
        refused = await process.get("/metrics", Authorization="Basic eDp5")
        assert refused[0] == 401, refused[1][:300]
    finally:
        code, _ = await stop(process)
    assert code == 0
    assert "msg=listening address=127.0.0.1:" in process.stderr.decode()
    assert "tls=True basic_auth=True" in process.stderr.decode()


@pytest.mark.process
async def test_json_logs_and_sigint(fake: FakeUniPost, tmp_path: Path) -> None:
    process, _ = await start_process(fake, tmp_path, "--log.format", "json")
    await asyncio.sleep(0.5)
    code, seconds = await stop(process, signal.SIGINT)
    assert (code, seconds < 5) == (0, True)
    records = [json.loads(line) for line in process.stderr.decode().splitlines()]
    assert records[0]["msg"] == "unipost-exporter starting"
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    assert all(r["level"] in ("info", "warn") for r in records), "no debug lines at info level"
    assert API_KEY not in process.stderr.decode()


def test_help_names_the_subcommands_the_key_variable_sighup_and_the_port() -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in ("simulate", "accounts", "UNIPOST_API_KEY", "SIGHUP", "9863"):
        assert text in result.stdout, text


def test_simulate_help_describes_each_option_and_its_default() -> None:
    result = run("simulate", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option, default in [
        ("--web.listen-address", "(default: :8080)"),
        ("--scenario.file", "(default: the demo workspace"),
        ("--seed", "(default: the scenario's, 1)"),
        ("--time-scale", "(default: the scenario's, 1)"),
    ]:
        assert option in text and default in text, option
