"""The config loaded in a child process gives what load_config() gives: the same Config,
the same problems, each with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import config_child
from exporter.config import load_config
from exporter.config_child import load_config_in_child, load_config_in_child_async
from exporter.validation import ConfigError

ROOT = Path(__file__).parent.parent


def test_the_example_config_loads_in_a_child_as_it_does_in_process() -> None:
    env = {"UNIPOST_API_KEY": "up_live_child"}
    example = ROOT / "config.example.yaml"
    assert load_config_in_child(example, env) == load_config(example, env)


def test_a_bad_config_names_every_problem_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "unipost: {api_key: ${MISSING}}\npolling: {interval: soon}\naccounts: [{id: a}, {id: a}]\n"
    )
    with pytest.raises(ConfigError) as in_process:
        load_config(path, {})
    with pytest.raises(ConfigError) as in_child:
        load_config_in_child(path, {})
    assert in_child.value.problems == in_process.value.problems
    assert any(p.startswith("polling.interval:") for p in in_child.value.problems)
    assert any(p.startswith("accounts[1].id: duplicate") for p in in_child.value.problems)


def test_a_file_that_is_not_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("unipost: [")
    with pytest.raises(ConfigError) as raised:
        load_config_in_child(path, {})
    assert raised.value.problems == [
        "invalid YAML at line 1, column 11: expected the node content, but found '<stream end>'"
    ]


async def test_a_reload_loads_without_blocking_and_reads_the_file_as_it_is_now(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("unipost: {api_key: k}\naccounts: [{id: sa_twitter_1}]\n")
    first = await load_config_in_child_async(path, {})
    path.write_text("unipost: {api_key: k}\naccounts: [{id: sa_twitter_1}, {id: sa_x_2}]\n")
    second = await load_config_in_child_async(path, {})
    assert [a.id for a in first.workspaces[0].accounts] == ["sa_twitter_1"]
    assert [a.id for a in second.workspaces[0].accounts] == ["sa_twitter_1", "sa_x_2"]


def test_a_loader_that_dies_is_a_config_problem_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_child, "_COMMAND", ("false",))
    with pytest.raises(ConfigError) as raised:
        load_config_in_child(tmp_path / "any.yaml", {})
    assert raised.value.problems == ["the config loader process failed (exit code 1)"]
