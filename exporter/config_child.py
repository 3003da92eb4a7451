"""The config file loaded in a child process, for the exporter's start and its reloads.

Parsing YAML builds a node per scalar and mapping, several times the size of what they
describe, and the allocator keeps most of that resident wherever one of the config's own
objects lives among them. The child parses and validates; the exporter receives
only the validated Config, so its heap holds the config and nothing of the parse, and a
reload never runs the parse on the event loop.

    config = load_config_in_child("config.yaml")           # at start
    config = await load_config_in_child_async(path)        # a reload (SIGHUP, /-/reload)

Both raise ConfigError with every problem, as load_config() does.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping

from exporter.config import load_config
from exporter.logs import register_secret
from exporter.schema import Config
from exporter.validation import ConfigError

_COMMAND = (sys.executable, "-m", "exporter.config_child")


def load_config_in_child(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Config:
    """load_config(path), parsed in a child process (`env`: its ${VAR}s; default ours)."""
    done = subprocess.run(
        [*_COMMAND, os.fspath(path)],
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return _outcome(done.returncode, done.stdout)


async def load_config_in_child_async(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Config:
    """As load_config_in_child, without blocking the event loop."""
    child = await asyncio.create_subprocess_exec(
        *_COMMAND,
        os.fspath(path),
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    stdout, _ = await child.communicate()
    return _outcome(child.returncode, stdout)


def _outcome(code: int | None, stdout: bytes) -> Config:
    # The child is this package run by this interpreter: its pickle is trusted.
    result = pickle.loads(stdout) if code == 0 and stdout else None
    if isinstance(result, tuple) and result[0] == "config":
        config: Config = result[1]
        for workspace in config.workspaces:  # this process learns the keys here
            register_secret(workspace.unipost.api_key)
        return config
    if isinstance(result, tuple) and result[0] == "problems":
        raise ConfigError(list(result[1]))
    raise ConfigError([f"the config loader process failed (exit code {code})"])


def main() -> int:
    """`python -m exporter.config_child PATH`: the outcome, pickled, on stdout."""
    try:
        outcome: tuple[str, object] = ("config", load_config(sys.argv[1]))
    except ConfigError as exc:
        outcome = ("problems", exc.problems)
    sys.stdout.buffer.write(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
