"""The config file: load its YAML, expand ${VAR}, and validate every key at once into the
schema's frozen dataclasses (schema.py, which holds the defaults).

    >>> text = "{unipost: {api_key: ${KEY}}, accounts: [{id: sa_x_1}]}"
    >>> parse_config(text, {"KEY": "k"}).workspaces[0].accounts[0].id
    'sa_x_1'
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exporter.logs import register_secret
from exporter.schema import (
    DEFAULT_ANALYTICS_INTERVAL,
    DEFAULT_BASE_URL,
    DEFAULT_DELIVERY_INTERVAL,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_PLATFORM_INTERVALS,
    DEFAULT_REFRESH_INTERVAL,
    DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_TIMEOUT,
    DEFAULT_USAGE_INTERVAL,
    RESERVED_LABELS,
    WORKSPACE_LABEL,
    AccountConfig,
    Config,
    DiscoveryConfig,
    PollingConfig,
    UniPostConfig,
    WorkspaceConfig,
)
from exporter.validation import LABEL_NAME, ConfigError, Problems, join, kind, load_yaml, read_text

_SINGLE_FORM_KEYS = ("unipost", "accounts", "discovery")
# The intervals of the workspace reads, with their defaults (0s turns a read off).
_WORKSPACE_READS = {
    "usage_interval": DEFAULT_USAGE_INTERVAL,
    "delivery_interval": DEFAULT_DELIVERY_INTERVAL,
    "analytics_interval": DEFAULT_ANALYTICS_INTERVAL,
}
# Every key each section accepts (docs/configuration.md and config.example.yaml show them
# all, with their defaults: tests/test_config.py holds them to this).
KEYS: Mapping[str, frozenset[str]] = {
    "": frozenset({"polling", "workspaces", *_SINGLE_FORM_KEYS}),
    "unipost": frozenset({"base_url", "api_key", "api_key_file", "timeout", "requests_per_minute"}),
    "polling": frozenset(
        {"interval", "platform_intervals", "max_backoff", "health_interval", *_WORKSPACE_READS}
    ),
    "discovery": frozenset({"enabled", "platforms", "refresh_interval", "exclude"}),
    "accounts[]": frozenset({"id", "interval", "health_interval", "labels"}),
    "workspaces[]": frozenset({"name", *_SINGLE_FORM_KEYS}),
}

_ENV_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    return parse_config(read_text(path, "config file"), os.environ if env is None else env)


def parse_config(text: str, env: Mapping[str, str]) -> Config:
    """Validate config text; raise ConfigError listing every problem."""
    # `${VAR}` is hidden behind a plain word while YAML parses, so it may stand unquoted
    # anywhere, flow mappings included (`unipost: {api_key: ${KEY}}`), and is expanded
    # afterwards, in parsed strings only: a value can never change the file's structure.
    refs: list[str] = []
    nonce = secrets.token_hex(6)

    def hide(match: re.Match[str]) -> str:
        refs.append(match.group(0))
        return f"ENV{nonce}R{len(refs) - 1}Z"

    text = _ENV_VAR.sub(hide, text)
    hidden = re.compile(f"ENV{nonce}R(\\d+)Z")
    raw = load_yaml(text)
    v = ConfigValidator(env, lambda s: hidden.sub(lambda m: refs[int(m.group(1))], s))
    raw = v.expand(raw, "")
    config = v.config(raw)
    if v.problems or config is None:
        raise ConfigError(v.problems)
    return config


class _Expanding(Problems):
    """The problem collector for the config file: `${VAR}` expansion, and label sets."""

    def __init__(self, env: Mapping[str, str], unhide: Callable[[str], str]) -> None:
        super().__init__()
        self.env = env
        self.unhide = unhide  # puts the `${VAR}` references hidden from YAML back
        # Locations whose ${VAR} could not be expanded: already reported once.
        self.unexpanded: set[str] = set()

    def err(self, where: str, message: str) -> None:
        if where not in self.unexpanded:
            super().err(where, message)

    def expand(self, node: Any, where: str) -> Any:
        if isinstance(node, str):
            return self._expand_str(node, where)
        if isinstance(node, list):
            return [self.expand(item, f"{where}[{i}]") for i, item in enumerate(node)]
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                key = self.unhide(key) if isinstance(key, str) else key
                out[key] = self.expand(value, join(where, str(key)))
            return out
        return node

    def _expand_str(self, text: str, where: str) -> str:
        text = self.unhide(text)

        def substitute(match: re.Match[str]) -> str:
            # ${NAME}, or ${NAME:-default} for a variable that may be unset or empty.
            name, has_default, default = match.group(1).partition(":-")
            if not _VAR_NAME.match(name):
                self.err(where, f"${{{name}}} is not a valid environment variable reference")
                self.unexpanded.add(where)
                return ""
            if has_default and not self.env.get(name):
                return default
            if name not in self.env:
                self.err(where, f"environment variable {name} is not set")
                self.unexpanded.add(where)
                return ""
            return self.env[name]

        return _ENV_VAR.sub(substitute, text)

    def labels(
        self, node: Any, where: str, reserved: frozenset[str]
    ) -> tuple[tuple[str, str], ...]:
        if node is None:
            return ()
        if not isinstance(node, dict):
            self.err(where, f"must be a mapping of label names to values, not {kind(node)}")
            return ()
        out = []
        for name, value in node.items():
            loc = f"{where}.{name}"
            if not isinstance(name, str) or not LABEL_NAME.match(name) or name.startswith("__"):
                self.err(where, f'"{name}" is not a valid Prometheus label name')
                continue
            if name in reserved:
                self.err(where, f'"{name}" is set by the exporter and cannot be a static label')
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self.err(loc, f"label value must be a string, not {kind(value)}")
                continue
            out.append((name, str(value)))
        return tuple(sorted(out))


class ConfigValidator(_Expanding):
    """The exporter's config file, section by section, into the schema's dataclasses."""

    def config(self, raw: Any) -> Config | None:
        if raw is None:
            self.err("", "config is empty")
            return None
        top = self.mapping(raw, "", KEYS[""])
        if top is None:
            return None
        if "workspaces" in top:
            polling = self.polling(top.get("polling"), "polling")
            for key in _SINGLE_FORM_KEYS:
                if key in top:
                    self.err(
                        key,
                        "cannot be used beside workspaces: move it into each workspace "
                        "(the single-workspace form and workspaces: never mix)",
                    )
            workspaces = self.workspaces(top["workspaces"], "workspaces")
        else:
            unipost = self.unipost(top.get("unipost"), "unipost")
            polling = self.polling(top.get("polling"), "polling")
            single = self.workspace(top, "", None, unipost)
            workspaces = (single,) if single is not None else ()
        if polling is None or not workspaces:
            return None
        return Config(polling=polling, workspaces=workspaces)

    def workspaces(self, node: Any, where: str) -> tuple[WorkspaceConfig, ...]:
        if not isinstance(node, list) or not node:
            what = "an empty list" if node == [] else kind(node)
            self.err(where, f"must be a list of workspaces (- name: ...), not {what}")
            return ()
        seen: dict[str, int] = {}
        out = []
        for i, item in enumerate(node):
            loc = f"{where}[{i}]"
            m = self.mapping(item, loc, KEYS["workspaces[]"])
            if m is None:
                continue
            name = m.get("name")
            if not isinstance(name, str) or not name.strip():
                self.err(f"{loc}.name", "is required and must be a non-empty string")
                continue
            name = name.strip()
            if name in seen:
                self.err(
                    f"{loc}.name", f'duplicate workspace "{name}" (also {where}[{seen[name]}])'
                )
                continue
            seen[name] = i
            unipost = self.unipost(m.get("unipost"), f"{loc}.unipost")
            workspace = self.workspace(m, loc, name, unipost)
            if workspace is not None:
                out.append(workspace)
        return tuple(out) if len(out) == len(node) else ()

    def workspace(
        self, m: dict[str, Any], where: str, name: str | None, unipost: UniPostConfig | None
    ) -> WorkspaceConfig | None:
        discovery = self.discovery(m.get("discovery"), join(where, "discovery"))
        accounts = self.accounts(
            m.get("accounts"),
            join(where, "accounts"),
            required=discovery is None or not discovery.enabled,
            reserved=RESERVED_LABELS if name is None else RESERVED_LABELS | {WORKSPACE_LABEL},
        )
        if unipost is None or discovery is None:
            return None
        return WorkspaceConfig(unipost=unipost, accounts=accounts, discovery=discovery, name=name)

    def discovery(self, node: Any, where: str) -> DiscoveryConfig | None:
        m = self.mapping(node, where, KEYS["discovery"])
        if m is None:
            return None
        enabled = m.get("enabled", False)
        if not isinstance(enabled, bool):
            self.err(f"{where}.enabled", f"{enabled!r} is not true or false")
            enabled = False
        platforms = self.names(m.get("platforms"), f"{where}.platforms", LABEL_NAME)
        exclude = self.names(m.get("exclude"), f"{where}.exclude", None)
        refresh = self.duration(
            m.get("refresh_interval"), f"{where}.refresh_interval", DEFAULT_REFRESH_INTERVAL
        )
        return DiscoveryConfig(
            enabled=enabled,
            platforms=tuple(platforms),
            refresh_interval=refresh,
            exclude=frozenset(exclude),
        )

    def unipost(self, node: Any, where: str) -> UniPostConfig | None:
        if node is None:
            self.err(where, "is required (it holds the API key)")
            return None
        m = self.mapping(node, where, KEYS["unipost"])
        if m is None:
            return None
        base_url = m.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base_url, str) or not _is_http_url(base_url):
            self.err(f"{where}.base_url", f"{base_url!r} is not an http(s) URL")
            base_url = DEFAULT_BASE_URL
        api_key = self.api_key(m, where)
        timeout = self.duration(m.get("timeout"), f"{where}.timeout", DEFAULT_TIMEOUT)
        rpm = self.positive_number(
            m.get("requests_per_minute"),
            f"{where}.requests_per_minute",
            DEFAULT_REQUESTS_PER_MINUTE,
        )
        if api_key is None:
            return None
        register_secret(api_key)  # learned here: scrubbed from every log line from now on
        return UniPostConfig(
            api_key=api_key,
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            requests_per_minute=rpm,
        )

    def api_key(self, m: dict[str, Any], where: str) -> str | None:
        has_key, has_file = "api_key" in m, "api_key_file" in m
        if has_key and has_file:
            self.err(where, "set exactly one of api_key and api_key_file, not both")
            return None
        if not has_key and not has_file:
            self.err(where, "set exactly one of api_key and api_key_file")
            return None
        if has_key:
            key = m["api_key"]
            # Never echo the value: it is a secret.
            if not isinstance(key, str):
                self.err(f"{where}.api_key", "must be a string")
                return None
            if not key.strip():
                self.err(f"{where}.api_key", "is empty")
                return None
            return key.strip()
        path = m["api_key_file"]
        if not isinstance(path, str) or not path:
            self.err(f"{where}.api_key_file", "must be a file path")
            return None
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.err(f"{where}.api_key_file", f"cannot read {path}: {exc.strerror}")
            return None
        except UnicodeDecodeError:
            self.err(f"{where}.api_key_file", f"{path} is not UTF-8 text")
            return None
        if not key:
            self.err(f"{where}.api_key_file", f"{path} is empty")
            return None
        return key

    def polling(self, node: Any, where: str) -> PollingConfig | None:
        m = self.mapping(node, where, KEYS["polling"])
        if m is None:
            return None
        interval = self.duration(m.get("interval"), f"{where}.interval", DEFAULT_INTERVAL)
        health = self.duration(
            m.get("health_interval"),
            f"{where}.health_interval",
            DEFAULT_HEALTH_INTERVAL,
            zero_turns_off=True,
        )
        max_backoff = self.duration(
            m.get("max_backoff"), f"{where}.max_backoff", DEFAULT_MAX_BACKOFF
        )
        reads = {
            key: self.duration(m.get(key), f"{where}.{key}", default, zero_turns_off=True)
            for key, default in _WORKSPACE_READS.items()
        }
        floors = dict(DEFAULT_PLATFORM_INTERVALS)
        raw_floors = m.get("platform_intervals")
        if raw_floors is not None and not isinstance(raw_floors, dict):
            self.err(f"{where}.platform_intervals", f"must be a mapping, not {kind(raw_floors)}")
        elif raw_floors:
            for platform, value in raw_floors.items():
                loc = f"{where}.platform_intervals.{platform}"
                if not isinstance(platform, str) or not LABEL_NAME.match(platform):
                    self.err(loc, "is not a platform name")
                    continue
                floors[platform] = self.duration(value, loc, floors.get(platform, 0.0))
        return PollingConfig(
            interval=interval,
            platform_intervals=floors,
            max_backoff=max_backoff,
            health_interval=health,
            **reads,
        )

    def accounts(
        self, node: Any, where: str, required: bool, reserved: frozenset[str]
    ) -> tuple[AccountConfig, ...]:
        hint = "list at least one account (- id: sa_...) or enable discovery"
        if node is None:
            if required:
                self.err(where, f"is required: {hint}")
            return ()
        if not isinstance(node, list):
            self.err(where, f"must be a list, not {kind(node)}")
            return ()
        if not node:
            if required:
                self.err(where, f"is empty: {hint}")
            return ()
        seen: dict[str, int] = {}
        out = []
        for i, item in enumerate(node):
            loc = f"{where}[{i}]"
            account = self.account(item, loc, reserved)
            if account is None:
                continue
            if account.id in seen:
                self.err(
                    f"{loc}.id",
                    f'duplicate account id "{account.id}" (also {where}[{seen[account.id]}])',
                )
                continue
            seen[account.id] = i
            out.append(account)
        return tuple(out)

    def account(self, node: Any, where: str, reserved: frozenset[str]) -> AccountConfig | None:
        m = self.mapping(node, where, KEYS["accounts[]"])
        if m is None:
            return None
        account_id = m.get("id")
        ok = True
        if not isinstance(account_id, str) or not account_id.strip():
            self.err(f"{where}.id", "is required and must be a non-empty string")
            ok = False
        interval = None
        if m.get("interval") is not None:
            interval = self.duration(m["interval"], f"{where}.interval", DEFAULT_INTERVAL)
        health = None
        if m.get("health_interval") is not None:
            where_health = f"{where}.health_interval"
            health = self.duration(m["health_interval"], where_health, 0.0, zero_turns_off=True)
        labels = self.labels(m.get("labels"), f"{where}.labels", reserved)
        if not ok or not isinstance(account_id, str):
            return None
        return AccountConfig(
            id=account_id.strip(), interval=interval, labels=labels, health_interval=health
        )


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
