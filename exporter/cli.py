"""Command line: Prometheus-style flags mapped to a run (exporter, demo or simulator) and an
exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from exporter import __version__, demo, inventory, simulator
from exporter.config_child import load_config_in_child, load_config_in_child_async
from exporter.durations import format_duration
from exporter.logs import LEVELS, setup_logging
from exporter.options import Options, resolve_storage
from exporter.process import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_PORT,
    parse_listen_address,
    run,
    serve,
    serving_url,
)
from exporter.schema import Config
from exporter.sharding import Shard, ordinal_from_hostname
from exporter.validation import ConfigError, print_problems
from exporter.webconfig import WebConfigError, WebSecurity

# As Alertmanager's --storage.path: relative to the working directory.
DEFAULT_STORAGE_PATH = "data"
# The flags; names follow Prometheus exporters (`--config.file`, `--web.listen-address`).
_FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "--config.file",
        {
            "dest": "config_file",
            "default": "config.yaml",
            "metavar": "PATH",
            "help": "YAML configuration file (default: %(default)s)",
        },
    ),
    (
        "--web.listen-address",
        {
            "dest": "listen_address",
            "default": DEFAULT_LISTEN_ADDRESS,
            "metavar": "HOST:PORT",
            "help": "address to serve /metrics on (default: %(default)s)",
        },
    ),
    (
        "--web.config.file",
        {
            "dest": "web_config_file",
            "default": "",
            "metavar": "PATH",
            "help": "exporter-toolkit web config: TLS and basic auth for every endpoint "
            "(default: none, plain HTTP)",
        },
    ),
    (
        "--config.check",
        {
            "dest": "config_check",
            "action": "store_true",
            "help": "validate the configuration, print the result and exit 0 (valid) or 1",
        },
    ),
    (
        "--log.level",
        {
            "dest": "log_level",
            "default": "info",
            "choices": list(LEVELS),
            "help": "minimum level to log (default: %(default)s)",
        },
    ),
    (
        "--log.format",
        {
            "dest": "log_format",
            "default": "logfmt",
            "choices": ["logfmt", "json"],
            "help": "log line format (default: %(default)s)",
        },
    ),
    (
        "--shard",
        {
            "type": int,
            "default": 0,
            "metavar": "N",
            "help": "this replica's shard, zero-indexed (default: %(default)s)",
        },
    ),
    (
        "--total-shards",
        {
            "dest": "total_shards",
            "type": int,
            "default": 1,
            "metavar": "M",
            "help": "how many replicas split the accounts (default: %(default)s)",
        },
    ),
    (
        "--shard.from-hostname",
        {
            "dest": "shard_from_hostname",
            "action": "store_true",
            "help": "take the shard from the hostname's -<ordinal> suffix (a StatefulSet pod)",
        },
    ),
    (
        "--demo",
        {
            "action": "store_true",
            "help": "no config, no key: run against the built-in UniPost simulator on loopback",
        },
    ),
    (
        "--storage.path",
        {
            "dest": "storage_path",
            "default": None,
            "metavar": "DIR",
            "help": f"where the state that survives a restart is kept (default: "
            f"{DEFAULT_STORAGE_PATH}, created if missing; none with --demo); '' turns it off",
        },
    ),
)


EPILOG = f"""subcommands:
  unipost-exporter simulate [--web.listen-address :8080] ...
                        serve a simulated UniPost workspace (see simulate --help)
  unipost-exporter accounts --config.file PATH [--output table|yaml]
                        list the accounts each workspace's key can see, to paste
                        into accounts: (see accounts --help)

environment:
  UNIPOST_API_KEY       the API key, as the example config reads it
                        (api_key: ${{UNIPOST_API_KEY}}); ${{VAR}} works anywhere in it

signals:
  SIGHUP                reload --config.file (as POST /-/reload does)
  SIGTERM, SIGINT       stop polling and exit 0

The default address is {DEFAULT_LISTEN_ADDRESS} (every interface, port {DEFAULT_PORT}):
http://localhost:{DEFAULT_PORT}/ shows every account, /metrics the exposition."""


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="unipost-exporter",
        description="Prometheus exporter for UniPost account metrics: polls UniPost in the "
        f"background and serves /metrics (default port {DEFAULT_PORT}).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    for flag, options in _FLAGS:
        parser.add_argument(flag, **options)
    parser.add_argument("--version", action="version", version=f"unipost-exporter {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `unipost-exporter` and `python -m exporter`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        return simulator.main(argv[1:])
    if argv[:1] == ["accounts"]:
        return inventory.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        host, port = parse_listen_address(args.listen_address)
    except ValueError as exc:
        print(f"unipost-exporter: {exc}", file=sys.stderr)
        return 1
    security = None
    if args.web_config_file:
        try:
            security = WebSecurity(args.web_config_file)
        except WebConfigError as exc:
            print_problems(exc, "web configuration", args.web_config_file)
            return 1
    if args.demo:
        setup_logging(args.log_level, args.log_format)
        # No state file unless asked: the simulator starts fresh each time.
        storage = resolve_storage(args.storage_path, default=None)
        options = Options(host=host, port=port, security=security, storage=storage)
        return run(demo.serve_demo(options))
    try:
        config = load_config_in_child(args.config_file)
    except ConfigError as exc:
        print_problems(exc, "configuration", args.config_file)
        return 1
    if args.config_check:
        print(f"{args.config_file}: OK ({_summary(config)})")
        url = serving_url(host, port, tls=bool(security and security.config.tls))
        print(f"unipost-exporter would serve {url} (metrics at {url}metrics)")
        return 0
    try:
        index = ordinal_from_hostname() if args.shard_from_hostname else args.shard
        shard = Shard(index, args.total_shards)
    except ValueError as exc:
        print(f"unipost-exporter: {exc}", file=sys.stderr)
        return 1
    setup_logging(args.log_level, args.log_format)
    options = Options(
        host=host,
        port=port,
        shard=shard,
        loader=lambda: load_config_in_child_async(args.config_file),
        security=security,
        storage=resolve_storage(args.storage_path, default=DEFAULT_STORAGE_PATH),
    )
    return run(serve(config, options))


def _summary(config: Config) -> str:
    parts = []
    for ws in config.workspaces:
        count = len(ws.accounts)
        found = " + discovery" if ws.discovery.enabled else ""
        parts.append(
            f"{ws.name + ': ' if ws.name else ''}{count} account{'s' if count != 1 else ''}"
            f"{found}, budget {ws.unipost.requests_per_minute:g} requests/minute"
        )
    return "; ".join(parts) + f"; interval {format_duration(config.polling.interval)}"
