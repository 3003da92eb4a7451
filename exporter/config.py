"""Configuration: load YAML, expand ${VAR}, validate everything at once into frozen objects.

Defaults live here and nowhere else.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_BASE_URL = "https://api.unipost.dev"
# UniPost's own server write timeout: giving up sooner does not stop its platform call,
# which still spends the platform's quota (for X, the account's 15-minute window).
DEFAULT_TIMEOUT = 120.0
DEFAULT_REQUESTS_PER_MINUTE = 60.0
DEFAULT_INTERVAL = 300.0
# X's free tier allows about one user lookup per account per 15 minutes.
DEFAULT_PLATFORM_INTERVALS: Mapping[str, float] = {"twitter": 900.0}
DEFAULT_MAX_BACKOFF = 6 * 3600.0
# GET /v1/accounts/{id}/health reads UniPost's database only: no platform quota is spent.
DEFAULT_HEALTH_INTERVAL = 3600.0
DEFAULT_REFRESH_INTERVAL = 3600.0

KNOWN_PLATFORMS = frozenset(
    {
        "twitter",
        "instagram",
        "threads",
        "tiktok",
        "youtube",
        "linkedin",
        "bluesky",
        "pinterest",
        "facebook",
    }
)

# Labels the exporter itself puts on per-account series; static labels may not reuse them.
RESERVED_LABELS = frozenset(
    {"account_id", "platform", "field", "status", "account_name", "upstream_status", "code"}
)
# The label naming the workspace, in the several-workspaces form.
WORKSPACE_LABEL = "workspace"
_SINGLE_FORM_KEYS = ("unipost", "accounts", "discovery")

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ENV_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


class ConfigError(Exception):
    """Every problem found in a config, each prefixed with its dotted location."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class UniPostConfig:
    """How to reach UniPost and how much of its budget this exporter may spend."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE


@dataclass(frozen=True)
class PollingConfig:
    """How often accounts are polled, and the floors and caps around that."""

    interval: float = DEFAULT_INTERVAL
    platform_intervals: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_PLATFORM_INTERVALS)
    )
    max_backoff: float = DEFAULT_MAX_BACKOFF
    # How often each account's health is read; 0: never.
    health_interval: float = DEFAULT_HEALTH_INTERVAL

    def floor_for(self, platform: str) -> float:
        """The shortest interval allowed for a platform (0 when it has none)."""
        return self.platform_intervals.get(platform, 0.0)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One account to poll."""

    id: str
    interval: float | None = None
    labels: tuple[tuple[str, str], ...] = ()
    health_interval: float | None = None


@dataclass(frozen=True)
class DiscoveryConfig:
    """Whether and how to find accounts with GET /v1/accounts."""

    enabled: bool = False
    platforms: tuple[str, ...] = ()  # empty: all platforms
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WorkspaceConfig:
    """One UniPost workspace: its key and budget, and the accounts polled with them."""

    unipost: UniPostConfig
    accounts: tuple[AccountConfig, ...]
    discovery: DiscoveryConfig = DiscoveryConfig()
    # None in the single-workspace form, whose series carry no `workspace` label.
    name: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole validated configuration: one or more workspaces, one polling policy."""

    polling: PollingConfig
    workspaces: tuple[WorkspaceConfig, ...]

    @property
    def account_count(self) -> int:
        """Accounts listed in the config, over every workspace."""
        return sum(len(ws.accounts) for ws in self.workspaces)


DURATION_HINT = "write it like 30s, 5m or 1h"


def unknown_key(key: str, allowed: Iterable[str]) -> str:
    """The problem with an unknown key, with the known key it is most likely a typo of."""
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return f"unknown key; did you mean {close[0]}?" if close else "unknown key"


def parse_duration(text: str) -> float:
    """Parse a Prometheus-style duration (`250ms`, `10s`, `5m`, `1h30m`, `1d`) into seconds."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """Render seconds the way the config file writes them (`15m`, `1h30m`, `250ms`)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, name in ((86400000, "d"), (3600000, "h"), (60000, "m"), (1000, "s"), (1, "ms")):
        if millis >= unit:
            out.append(f"{millis // unit}{name}")
            millis %= unit
    return "".join(out)


def platform_from_id(account_id: str) -> str:
    """The platform named in an ID like `sa_twitter_1`, or `unknown`."""
    parts = account_id.split("_")
    if len(parts) >= 3 and parts[0] == "sa" and parts[1] in KNOWN_PLATFORMS:
        return parts[1]
    return "unknown"


def print_problems(exc: ConfigError, what: str, path: str) -> None:
    """Tell the user every problem of a file at once, each with its location, on stderr."""
    print(f"unipost-exporter: invalid {what} in {path}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    return parse_config(read_text(path, "config file"), os.environ if env is None else env)


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """A UTF-8 file's text; ConfigError naming `what` and the path when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {what} {os.fspath(path)}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{what} {os.fspath(path)} is not UTF-8 text"]) from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and why a file is not YAML."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"invalid YAML{where}: {problem}"


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
    v = _Validator(env, lambda s: hidden.sub(lambda m: refs[int(m.group(1))], s))
    raw = v.expand(raw, "")
    config = v.config(raw)
    if v.problems or config is None:
        raise ConfigError(v.problems)
    return config


# libyaml's parser, where PyYAML was built with it: 3x faster than the pure-Python one.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def load_yaml(text: str) -> Any:
    """The YAML document in `text`; ConfigError naming where it is not YAML.

    libyaml parses it when it can; a document it rejects is parsed again by PyYAML's own
    parser, whose verdict (and message) stands, so the result never depends on libyaml.
    """
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # a safe loader: SafeLoader's rules
        except yaml.YAMLError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(exc)]) from None


class Problems:
    """Walks a raw YAML tree, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def err(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def mapping(
        self,
        node: Any,
        where: str,
        allowed: set[str],
        unsupported: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """The allowed keys of a mapping (None if it is not one); every other key is named,
        with its reason when it is a known but `unsupported` one."""
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.err(where, f"must be a mapping, not {_kind(node)}")
            return None
        for key in node:
            if unsupported and isinstance(key, str) and key in unsupported:
                self.err(_join(where, key), unsupported[key])
            elif not isinstance(key, str) or key not in allowed:
                self.err(_join(where, str(key)), unknown_key(str(key), allowed))
        return {k: v for k, v in node.items() if isinstance(k, str) and k in allowed}


class _Values(Problems):
    """Value checks shared by every section: `${VAR}` expansion, durations, numbers, names."""

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
                out[key] = self.expand(value, _join(where, str(key)))
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

    def duration(
        self, node: Any, where: str, default: float, zero_turns_off: bool = False
    ) -> float:
        if node is None:
            return default
        if not isinstance(node, str):
            self.err(where, f"{node!r} is not a duration ({DURATION_HINT})")
            return default
        try:
            seconds = parse_duration(node)
        except ValueError:
            self.err(where, f'"{node}" is not a duration ({DURATION_HINT})')
            return default
        if seconds <= 0 and not (zero_turns_off and seconds == 0):
            self.err(where, "must be longer than 0s")
            return default
        return seconds

    def names(self, node: Any, where: str, pattern: re.Pattern[str] | None) -> list[str]:
        if node is None:
            return []
        if not isinstance(node, list):
            self.err(where, f"must be a list, not {_kind(node)}")
            return []
        out = []
        for i, item in enumerate(node):
            if not isinstance(item, str) or not item or (pattern and not pattern.match(item)):
                self.err(f"{where}[{i}]", f"{item!r} is not a valid name")
                continue
            out.append(item)
        return out

    def positive_number(self, node: Any, where: str, default: float) -> float:
        if node is None:
            return default
        value: float | None = None
        if isinstance(node, int | float) and not isinstance(node, bool):
            value = float(node)
        elif isinstance(node, str):
            try:
                value = float(node)
            except ValueError:
                value = None
        if value is None or not (0 < value < float("inf")):
            self.err(where, f"{node!r} is not a positive number")
            return default
        return value

    def labels(
        self, node: Any, where: str, reserved: frozenset[str]
    ) -> tuple[tuple[str, str], ...]:
        if node is None:
            return ()
        if not isinstance(node, dict):
            self.err(where, f"must be a mapping of label names to values, not {_kind(node)}")
            return ()
        out = []
        for name, value in node.items():
            loc = f"{where}.{name}"
            if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
                self.err(where, f'"{name}" is not a valid Prometheus label name')
                continue
            if name in reserved:
                self.err(where, f'"{name}" is set by the exporter and cannot be a static label')
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self.err(loc, f"label value must be a string, not {_kind(value)}")
                continue
            out.append((name, str(value)))
        return tuple(sorted(out))


class _Validator(_Values):
    """The exporter's config file, section by section."""

    def config(self, raw: Any) -> Config | None:
        if raw is None:
            self.err("", "config is empty")
            return None
        top = self.mapping(raw, "", {"polling", "workspaces", *_SINGLE_FORM_KEYS})
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
            what = "an empty list" if node == [] else _kind(node)
            self.err(where, f"must be a list of workspaces (- name: ...), not {what}")
            return ()
        seen: dict[str, int] = {}
        out = []
        for i, item in enumerate(node):
            loc = f"{where}[{i}]"
            m = self.mapping(item, loc, {"name", *_SINGLE_FORM_KEYS})
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
        discovery = self.discovery(m.get("discovery"), _join(where, "discovery"))
        accounts = self.accounts(
            m.get("accounts"),
            _join(where, "accounts"),
            required=discovery is None or not discovery.enabled,
            reserved=RESERVED_LABELS if name is None else RESERVED_LABELS | {WORKSPACE_LABEL},
        )
        if unipost is None or discovery is None:
            return None
        return WorkspaceConfig(unipost=unipost, accounts=accounts, discovery=discovery, name=name)

    def discovery(self, node: Any, where: str) -> DiscoveryConfig | None:
        m = self.mapping(node, where, {"enabled", "platforms", "refresh_interval", "exclude"})
        if m is None:
            return None
        enabled = m.get("enabled", False)
        if not isinstance(enabled, bool):
            self.err(f"{where}.enabled", f"{enabled!r} is not true or false")
            enabled = False
        platforms = self.names(m.get("platforms"), f"{where}.platforms", _LABEL_NAME)
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
        m = self.mapping(
            node, where, {"base_url", "api_key", "api_key_file", "timeout", "requests_per_minute"}
        )
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
        m = self.mapping(
            node, where, {"interval", "platform_intervals", "max_backoff", "health_interval"}
        )
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
        floors = dict(DEFAULT_PLATFORM_INTERVALS)
        raw_floors = m.get("platform_intervals")
        if raw_floors is not None and not isinstance(raw_floors, dict):
            self.err(f"{where}.platform_intervals", f"must be a mapping, not {_kind(raw_floors)}")
        elif raw_floors:
            for platform, value in raw_floors.items():
                loc = f"{where}.platform_intervals.{platform}"
                if not isinstance(platform, str) or not _LABEL_NAME.match(platform):
                    self.err(loc, "is not a platform name")
                    continue
                floors[platform] = self.duration(value, loc, floors.get(platform, 0.0))
        return PollingConfig(
            interval=interval,
            platform_intervals=floors,
            max_backoff=max_backoff,
            health_interval=health,
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
            self.err(where, f"must be a list, not {_kind(node)}")
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
        m = self.mapping(node, where, {"id", "interval", "health_interval", "labels"})
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


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(node: Any) -> str:
    if node is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(node), f"a {type(node).__name__}"
    )


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
