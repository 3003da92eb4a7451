"""Config loading: defaults, ${VAR} expansion, and every bad config refused with its location."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import KEYS, load_config, parse_config
from exporter.durations import format_duration, parse_duration
from exporter.schema import DiscoveryConfig, PollingConfig, UniPostConfig
from exporter.validation import ConfigError
from tests.helpers import ROOT

GOOD = """
unipost:
  api_key: ${UNIPOST_API_KEY}
accounts:
  - id: sa_twitter_1
  - id: sa_instagram_2
    interval: 30m
    labels: {team: growth}
"""
ENV = {"UNIPOST_API_KEY": "up_live_abc"}


def test_a_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(GOOD, ENV)
    (ws,) = config.workspaces
    assert ws.name is None
    assert ws.unipost.api_key == "up_live_abc"
    assert ws.unipost.base_url == "https://api.unipost.dev"
    assert ws.unipost.timeout == 120  # UniPost's own server write timeout
    assert ws.unipost.requests_per_minute == 60
    assert config.polling.interval == 300
    assert dict(config.polling.platform_intervals) == {"twitter": 900}
    assert config.polling.max_backoff == 6 * 3600
    assert [a.id for a in ws.accounts] == ["sa_twitter_1", "sa_instagram_2"]
    assert ws.accounts[1].interval == 1800
    assert ws.accounts[1].labels == (("team", "growth"),)


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "config.example.yaml"
    config = load_config(example, env=ENV)
    assert config.account_count


def test_discovery_makes_accounts_optional() -> None:
    config = parse_config(
        "unipost: {api_key: k}\n"
        "discovery: {enabled: true, platforms: [twitter], refresh_interval: 10m, exclude: [sa_x]}",
        {},
    )
    (ws,) = config.workspaces
    assert ws.accounts == ()
    assert ws.discovery.enabled and ws.discovery.platforms == ("twitter",)
    assert ws.discovery.refresh_interval == 600
    assert ws.discovery.exclude == frozenset({"sa_x"})


def test_platform_intervals_merge_over_the_built_in_floor() -> None:
    config = parse_config(GOOD + "polling:\n  platform_intervals: {instagram: 10m}\n", ENV)
    assert dict(config.polling.platform_intervals) == {"twitter": 900, "instagram": 600}


def test_env_vars_expand_anywhere_in_the_file() -> None:
    text = GOOD.replace("- id: sa_twitter_1", "- id: ${FIRST}") + "polling:\n  interval: ${IV}\n"
    config = parse_config(text, {**ENV, "FIRST": "sa_twitter_9", "IV": "2m"})
    assert config.workspaces[0].accounts[0].id == "sa_twitter_9"
    assert config.polling.interval == 120


def test_env_vars_work_unquoted_in_flow_mappings_and_never_change_the_structure() -> None:
    hostile = "k}, accounts: [{id: injected}], x: {"
    config = parse_config(
        "unipost: {api_key: ${KEY}, timeout: 5s}\naccounts: [{id: a}]", {"KEY": hostile}
    )
    (ws,) = config.workspaces
    assert ws.unipost.api_key == hostile
    assert [a.id for a in ws.accounts] == ["a"]


def test_api_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("up_live_from_file\n")
    config = parse_config(f"unipost: {{api_key_file: {secret}}}\naccounts: [{{id: a}}]\n", {})
    assert config.workspaces[0].unipost.api_key == "up_live_from_file"


def test_the_api_key_never_appears_in_the_config_repr() -> None:
    assert "up_live_abc" not in repr(parse_config(GOOD, ENV))


WORKSPACES = """
polling: {interval: 10m}
workspaces:
  - name: acme
    unipost: {api_key: ${ACME_KEY}, requests_per_minute: 60}
    accounts: [{id: sa_twitter_1, labels: {team: growth}}]
    discovery: {enabled: true, platforms: [twitter]}
  - name: globex
    unipost: {api_key_file: KEY_FILE, base_url: "https://eu.unipost.dev/"}
    discovery: {enabled: true}
"""


def test_several_workspaces_each_get_their_own_key_budget_and_accounts(tmp_path: Path) -> None:
    key_file = tmp_path / "globex"
    key_file.write_text("up_live_globex\n")
    config = parse_config(WORKSPACES.replace("KEY_FILE", str(key_file)), {"ACME_KEY": "up_acme"})
    acme, globex = config.workspaces
    assert (acme.name, acme.unipost.api_key, acme.unipost.requests_per_minute) == (
        "acme",
        "up_acme",
        60,
    )
    assert [a.id for a in acme.accounts] == ["sa_twitter_1"]
    assert acme.discovery.platforms == ("twitter",)
    assert (globex.name, globex.unipost.api_key) == ("globex", "up_live_globex")
    assert globex.unipost.base_url == "https://eu.unipost.dev"
    assert globex.unipost.requests_per_minute == 60  # the default, per workspace
    assert globex.accounts == () and globex.discovery.enabled
    assert config.polling.interval == 600  # one polling policy for every workspace
    assert "up_acme" not in repr(config) and "up_live_globex" not in repr(config)


def test_workspace_is_a_static_label_only_in_the_single_form() -> None:
    single = parse_config("unipost: {api_key: k}\naccounts: [{id: a, labels: {workspace: x}}]", {})
    assert single.workspaces[0].accounts[0].labels == (("workspace", "x"),)
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "workspaces: [{name: w, unipost: {api_key: k}, "
            "accounts: [{id: a, labels: {workspace: x}}]}]",
            {},
        )
    assert caught.value.problems == [
        'workspaces[0].accounts[0].labels: "workspace" is set by the exporter and cannot be a '
        "static label"
    ]


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "unipost: {api_key: k}\naccounts: [{id: a}]\n"
            "workspaces: [{name: w, unipost: {api_key: k}, accounts: [{id: a}]}]",
            [
                "unipost: cannot be used beside workspaces: move it into each workspace "
                "(the single-workspace form and workspaces: never mix)",
                "accounts: cannot be used beside workspaces: move it into each workspace "
                "(the single-workspace form and workspaces: never mix)",
            ],
        ),
        (
            "workspaces: []",
            ["workspaces: must be a list of workspaces (- name: ...), not an empty list"],
        ),
        (
            "workspaces: {acme: {}}",
            ["workspaces: must be a list of workspaces (- name: ...), not a mapping"],
        ),
        (
            "workspaces:\n"
            "  - {name: acme, unipost: {api_key: k}, accounts: [{id: a}]}\n"
            "  - {name: acme, unipost: {api_key: k}, accounts: [{id: b}]}\n"
            "  - {unipost: {api_key: k}, accounts: [{id: c}]}\n"
            "  - {name: bad, unipost: {api_key: k, timeout: x}, polling: {}}\n",
            [
                'workspaces[1].name: duplicate workspace "acme" (also workspaces[0])',
                "workspaces[2].name: is required and must be a non-empty string",
                "workspaces[3].polling: unknown key",
                'workspaces[3].unipost.timeout: "x" is not a duration '
                "(write it like 30s, 5m or 1h)",
                "workspaces[3].accounts: is required: list at least one account (- id: sa_...) "
                "or enable discovery",
            ],
        ),
    ],
)
def test_bad_workspaces_are_refused_with_every_problem_named(
    text: str, problems: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {})
    assert caught.value.problems == problems


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "unipost: {api_key: k}\npolling: {interval: soon}\naccounts: [{id: a}]",
            ['polling.interval: "soon" is not a duration (write it like 30s, 5m or 1h)'],
        ),
        (
            "unipost: {api_key: k}\npolling: {interval: 300}\naccounts: [{id: a}]",
            ["polling.interval: 300 is not a duration (write it like 30s, 5m or 1h)"],
        ),
        (
            "unipost: {api_key: k}\npolling: {max_backoff: 0s}\naccounts: [{id: a}]",
            ["polling.max_backoff: must be longer than 0s"],
        ),
        (
            "unipost: {api_key: k, api_kee: x}\naccounts: [{id: a}]\nextra: 1",
            ["extra: unknown key", "unipost.api_kee: unknown key; did you mean api_key?"],
        ),
        (
            "unipost: {api_key: k}\naccounts: [{id: a, intervall: 5m}]",
            ["accounts[0].intervall: unknown key; did you mean interval?"],
        ),
        (
            "unipost: {api_key: k}\naccounts: [{id: a}, {id: b}, {id: a}]",
            ['accounts[2].id: duplicate account id "a" (also accounts[0])'],
        ),
        (
            "unipost: {api_key: k}\naccounts: [{id: a, labels: {team-name: x, __x: y}}]",
            [
                'accounts[0].labels: "team-name" is not a valid Prometheus label name',
                'accounts[0].labels: "__x" is not a valid Prometheus label name',
            ],
        ),
        (
            "unipost: {api_key: k}\naccounts: [{id: a, labels: {platform: x}}]",
            ['accounts[0].labels: "platform" is set by the exporter and cannot be a static label'],
        ),
        (
            "unipost: {api_key: k}\naccounts: [{id: a, labels: {team: [1]}}]",
            ["accounts[0].labels.team: label value must be a string, not a list"],
        ),
        (
            "unipost: {api_key: '${NOPE}'}\naccounts: [{id: a}]",
            ["unipost.api_key: environment variable NOPE is not set"],
        ),
        (
            "unipost: {api_key: k, api_key_file: /f}\naccounts: [{id: a}]",
            ["unipost: set exactly one of api_key and api_key_file, not both"],
        ),
        (
            "unipost: {timeout: 5s}\naccounts: [{id: a}]",
            ["unipost: set exactly one of api_key and api_key_file"],
        ),
        (
            "unipost: {api_key_file: /nonexistent/key}\naccounts: [{id: a}]",
            ["unipost.api_key_file: cannot read /nonexistent/key: No such file or directory"],
        ),
        (
            "unipost: {api_key: k, requests_per_minute: -5}\naccounts: [{id: a}]",
            ["unipost.requests_per_minute: -5 is not a positive number"],
        ),
        (
            "unipost: {api_key: k, base_url: 'ftp://x'}\naccounts: [{id: a}]",
            ["unipost.base_url: 'ftp://x' is not an http(s) URL"],
        ),
        (
            "unipost: {api_key: k}\naccounts: []",
            ["accounts: is empty: list at least one account (- id: sa_...) or enable discovery"],
        ),
        (
            "unipost: {api_key: k}",
            ["accounts: is required: list at least one account (- id: sa_...) or enable discovery"],
        ),
        (
            "unipost: {api_key: k}\naccounts: [{interval: 5m}]",
            ["accounts[0].id: is required and must be a non-empty string"],
        ),
        ("accounts: [{id: a}]", ["unipost: is required (it holds the API key)"]),
        ("", ["config is empty"]),
        ("- a\n- b", ["must be a mapping, not a list"]),
        (
            "unipost: [",
            [
                "invalid YAML at line 1, column 11: "
                "expected the node content, but found '<stream end>'"
            ],
        ),
        (
            "unipost: {api_key: k}\n"
            "polling: {platform_intervals: {twitter: fast}}\n"
            "accounts: [{id: a}]",
            [
                'polling.platform_intervals.twitter: "fast" is not a duration '
                "(write it like 30s, 5m or 1h)"
            ],
        ),
        (
            "unipost: {api_key: k}\ndiscovery: {enabled: yes please, platforms: [x-y], extra: 1}",
            [
                "discovery.extra: unknown key",
                "discovery.enabled: 'yes please' is not true or false",
                "discovery.platforms[0]: 'x-y' is not a valid name",
                "accounts: is required: list at least one account (- id: sa_...) "
                "or enable discovery",
            ],
        ),
        (
            # Every problem at once, not just the first.
            "unipost: {api_key: '${MISSING}', timeout: x}\npolling: {interval: y}\n"
            "accounts: [{id: a}, {id: a}]",
            [
                "unipost.api_key: environment variable MISSING is not set",
                'unipost.timeout: "x" is not a duration (write it like 30s, 5m or 1h)',
                'polling.interval: "y" is not a duration (write it like 30s, 5m or 1h)',
                'accounts[1].id: duplicate account id "a" (also accounts[0])',
            ],
        ),
    ],
)
def test_bad_configs_are_refused_with_every_problem_named(text: str, problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {})
    assert caught.value.problems == problems


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.problems == [
        f"cannot read config file {tmp_path / 'nope.yaml'}: No such file or directory"
    ]


def test_a_bad_value_never_echoes_the_api_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("unipost: {api_key: [up_live_secret]}\naccounts: [{id: a}]", {})
    assert "up_live_secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5m", "m", "5 m", "-5s", "5M"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("bad", ["300", "'5 minutes'", "soon", "5 min", "1.5h", "[5m]"])
def test_every_bad_duration_says_how_to_write_one(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"unipost: {{api_key: k}}\npolling: {{interval: {bad}}}\n" + ACCOUNTS, {})
    (problem,) = caught.value.problems
    assert problem.startswith("polling.interval: ")
    assert problem.endswith("is not a duration (write it like 30s, 5m or 1h)"), problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("polling: {intervals: 5m}", "polling.intervals: unknown key; did you mean interval?"),
        ("unipost: {api_key: k, requests_per_minut: 5}",
         "unipost.requests_per_minut: unknown key; did you mean requests_per_minute?"),
        ("polling: {colour: blue}", "polling.colour: unknown key"),
    ],
)  # fmt: skip
def test_an_unknown_key_names_the_known_one_it_is_close_to(text: str, problem: str) -> None:
    base = "" if text.startswith("unipost") else "unipost: {api_key: k}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(base + text + "\n" + ACCOUNTS, {})
    assert caught.value.problems == [problem]


ACCOUNTS = "accounts: [{id: sa_twitter_1}]\n"


def test_a_variable_may_have_a_default() -> None:
    text = "unipost: {api_key: k, base_url: '${BASE:-http://localhost:8080}'}\n" + ACCOUNTS
    for env, expected in [
        ({}, "http://localhost:8080"),
        ({"BASE": ""}, "http://localhost:8080"),
        ({"BASE": "https://example.test"}, "https://example.test"),
    ]:
        (workspace,) = parse_config(text, env).workspaces
        assert workspace.unipost.base_url == expected


# -- the documented defaults are the real ones ------------------------------------------------


def _real_defaults() -> dict[str, str]:
    """Each key's default as the validator fills it, written as the docs write it."""
    config = parse_config("unipost: {api_key: k}\naccounts: [{id: sa_x_1}]", {})
    ws, polling = config.workspaces[0], config.polling
    account = ws.accounts[0]
    floors = ", ".join(f"{p}: {format_duration(v)}" for p, v in polling.platform_intervals.items())
    return {
        "unipost.base_url": ws.unipost.base_url,
        "unipost.timeout": format_duration(ws.unipost.timeout),
        "unipost.requests_per_minute": f"{ws.unipost.requests_per_minute:g}",
        "polling.interval": format_duration(polling.interval),
        "polling.platform_intervals": f"{{{floors}}}",
        "polling.max_backoff": format_duration(polling.max_backoff),
        "polling.health_interval": format_duration(polling.health_interval),
        "discovery.enabled": str(ws.discovery.enabled).lower(),
        "discovery.platforms": str(list(ws.discovery.platforms)),
        "discovery.refresh_interval": format_duration(ws.discovery.refresh_interval),
        "discovery.exclude": str(sorted(ws.discovery.exclude)),
        "accounts[].interval": "polling.interval" if account.interval is None else "?",
        "accounts[].health_interval": (
            "polling.health_interval" if account.health_interval is None else "?"
        ),
        "accounts[].labels": "{}" if not account.labels else "?",
    }


def _accepted_keys() -> set[str]:
    """Every leaf key the validator accepts, as `section.key`."""
    sections = {"unipost", "polling", "discovery", "accounts", "workspaces"}
    keys = {"workspaces[]"}
    for section, names in KEYS.items():
        if section:
            keys |= {f"{section}.{name}" for name in names if name not in sections}
    return keys


def test_the_defaults_table_shows_every_key_with_its_real_default() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = {
        key: default.strip().strip("`")
        for key, default in re.findall(r"^\| `([a-z_\[\].]+)` \|([^|]*)\|", text, re.M)
    }
    missing = _accepted_keys() - set(table)
    assert not missing, f"docs/configuration.md does not show {sorted(missing)}"
    for key, real in _real_defaults().items():
        assert table[key] == real, (key, table[key], real)


def test_the_example_config_shows_every_key_with_its_default() -> None:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    for key in _accepted_keys():
        leaf = key.rsplit(".", 1)[-1].removesuffix("[]")
        assert re.search(rf"^[ #-]*{re.escape(leaf)}:", text, re.M), f"{key} is not shown"
    # What it sets live is the default, apart from the key and the example accounts.
    config = parse_config(text, {"UNIPOST_API_KEY": "k"})
    ws = config.workspaces[0]
    assert config.polling == PollingConfig()
    assert ws.unipost == UniPostConfig(api_key="k")
    assert ws.discovery == DiscoveryConfig()
    for line in re.findall(r"^\s*# ?(\w+): (\S+)$", text, re.M):
        name, shown = line
        if name in ("health_interval", "interval", "refresh_interval", "timeout"):
            assert shown in set(_real_defaults().values()), line
