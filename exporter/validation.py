"""Validation shared by every file the exporter reads: the config, the web config and the
simulator's scenarios. One collector walks the parsed YAML and gathers every problem, each
with its dotted key, so a user fixes them all in one go.

    >>> problems = Problems()
    >>> problems.mapping({"intervl": "5m"}, "polling", {"interval"})
    {}
    >>> problems.problems
    ['polling.intervl: unknown key; did you mean interval?']
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Iterable, Mapping, Set
from pathlib import Path
from typing import Any

import yaml

from exporter.durations import DURATION_HINT, parse_duration

# A Prometheus label name; config also takes platform names in this form.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ConfigError(Exception):
    """Every problem found in a config, each prefixed with its dotted location."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def unknown_key(key: str, allowed: Iterable[str]) -> str:
    """The problem with an unknown key, with the known key it is most likely a typo of."""
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return f"unknown key; did you mean {close[0]}?" if close else "unknown key"


def print_problems(exc: ConfigError, what: str, path: str) -> None:
    """Tell the user every problem of a file at once, each with its location, on stderr."""
    print(f"unipost-exporter: invalid {what} in {path}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


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
        allowed: Set[str],
        unsupported: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """The allowed keys of a mapping (None if it is not one); every other key is named,
        with its reason when it is a known but `unsupported` one."""
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.err(where, f"must be a mapping, not {kind(node)}")
            return None
        for key in node:
            if unsupported and isinstance(key, str) and key in unsupported:
                self.err(join(where, key), unsupported[key])
            elif not isinstance(key, str) or key not in allowed:
                self.err(join(where, str(key)), unknown_key(str(key), allowed))
        return {k: v for k, v in node.items() if isinstance(k, str) and k in allowed}

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
            self.err(where, f"must be a list, not {kind(node)}")
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


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def kind(node: Any) -> str:
    if node is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(node), f"a {type(node).__name__}"
    )
