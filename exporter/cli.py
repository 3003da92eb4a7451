"""Command line: Prometheus-style flags, config check, and running the server until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from aiohttp import web

from exporter import __version__, demo
from exporter.config import Config, ConfigError, format_duration, load_config
from exporter.logs import LEVELS, setup_logging
from exporter.runtime import ConfigLoader
from exporter.server import RUNTIME, create_app
from exporter.sharding import Shard, ordinal_from_hostname
from exporter.webconfig import WebConfigError, WebSecurity

DEFAULT_PORT = 9863
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
SHUTDOWN_TIMEOUT = 3.0

log = logging.getLogger("exporter")


def build_parser() -> argparse.ArgumentParser:
    """The flags; names follow Prometheus exporters (`--config.file`, `--web.listen-address`)."""
    parser = argparse.ArgumentParser(
        prog="unipost-exporter",
        description="Prometheus exporter for UniPost account metrics.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yaml",
        metavar="PATH",
        help="YAML configuration file (default: %(default)s)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN_ADDRESS,
        metavar="HOST:PORT",
        help="address to serve /metrics on (default: %(default)s)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default="",
        metavar="PATH",
        help="exporter-toolkit web config: TLS and basic auth for every endpoint "
        "(default: none, plain HTTP)",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration, print the result and exit 0 (valid) or 1",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=list(LEVELS),
        help="minimum level to log (default: %(default)s)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="log line format (default: %(default)s)",
    )
    parser.add_argument(
        "--shard",
        type=int,
        default=0,
        metavar="N",
        help="this replica's shard, zero-indexed (default: %(default)s)",
    )
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        default=1,
        metavar="M",
        help="how many replicas split the accounts (default: %(default)s)",
    )
    parser.add_argument(
        "--shard.from-hostname",
        dest="shard_from_hostname",
        action="store_true",
        help="take the shard from the hostname's -<ordinal> suffix (a StatefulSet pod)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="no config, no key: run against the built-in UniPost simulator on loopback",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"unipost-exporter {__version__}",
    )
    return parser


def parse_listen_address(text: str) -> tuple[str | None, int]:
    """`:9863`, `0.0.0.0:9863`, `localhost:9863` or `[::1]:9863` into host and port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--web.listen-address: {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), int(port_text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `unipost-exporter` and `python -m exporter`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from exporter import simulator

        return simulator.main(argv[1:])
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
            print(
                f"unipost-exporter: invalid web configuration in {args.web_config_file}:",
                file=sys.stderr,
            )
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
    if args.demo:
        setup_logging(args.log_level, args.log_format)
        return _run(demo.serve_demo(host, port, security=security))
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        print(f"unipost-exporter: invalid configuration in {args.config_file}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.config_check:
        print(f"{args.config_file}: OK ({_summary(config)})")
        return 0
    try:
        index = ordinal_from_hostname() if args.shard_from_hostname else args.shard
        shard = Shard(index, args.total_shards)
    except ValueError as exc:
        print(f"unipost-exporter: {exc}", file=sys.stderr)
        return 1
    formatter = setup_logging(args.log_level, args.log_format)

    def learn_secrets(keys: Iterable[str]) -> None:
        # Old keys stay scrubbed too: a request sent before a reload may still log one.
        formatter.secrets.extend(k for k in keys if k and k not in formatter.secrets)

    learn_secrets(ws.unipost.api_key for ws in config.workspaces)
    return _run(
        serve(
            config,
            host,
            port,
            shard=shard,
            loader=lambda: load_config(args.config_file),
            on_secrets=learn_secrets,
            security=security,
        )
    )


def _run(main_coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(main_coroutine)
    except KeyboardInterrupt:
        return 0
    except Exception:
        # Through the scrubbing formatter, not Python's default hook: no secret in the trace.
        log.critical("unipost-exporter crashed", exc_info=True)
        return 1


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


async def serve(
    config: Config,
    host: str | None,
    port: int,
    demo_note: str = "",
    banner: str = "",
    shard: Shard | None = None,
    loader: ConfigLoader | None = None,
    on_secrets: Callable[[Iterable[str]], None] = lambda keys: None,
    security: WebSecurity | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT, then stop polling and close connections; SIGHUP
    reloads the config."""
    shard = shard or Shard()
    address = f"{host or ''}:{port}"
    # The first line says what this process is, before any poll can log.
    log.info(
        banner or "unipost-exporter starting",
        extra={
            "fields": {
                "version": __version__,
                "workspaces": len(config.workspaces),
                "accounts": config.account_count,
                "base_url": ",".join(sorted({ws.unipost.base_url for ws in config.workspaces})),
                "shard": f"{shard.index}/{shard.total}",
            }
        },
    )
    app = create_app(
        config,
        demo_note=demo_note,
        shard=shard,
        loader=loader,
        on_secrets=on_secrets,
        security=security,
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    ssl_context = security.server_ssl_context() if security else None
    site = web.TCPSite(
        runner, host, port, shutdown_timeout=SHUTDOWN_TIMEOUT, ssl_context=ssl_context
    )
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen", extra={"fields": {"address": address, "err": exc.strerror}})
        await runner.cleanup()
        return 1
    log.info(
        "listening",
        extra={
            "fields": {
                "address": address,
                "tls": ssl_context is not None,
                "basic_auth": bool(security and security.config.users),
            }
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(app[RUNTIME].reload())
        reloads.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    log.info("stopped")
    return 0
