"""The process around the server: listen, log what it is, serve until SIGTERM or SIGINT,
reload on SIGHUP, and stop cleanly. Used by the CLI, `--demo` and the simulator alike."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from exporter import __version__
from exporter.logs import FieldLogger
from exporter.options import Options
from exporter.schema import Config
from exporter.server import RUNTIME, create_app

DEFAULT_PORT = 9863
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
SHUTDOWN_TIMEOUT = 3.0

log = FieldLogger("exporter")


def parse_listen_address(text: str) -> tuple[str | None, int]:
    """`:9863`, `0.0.0.0:9863`, `localhost:9863` or `[::1]:9863` into host and port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--web.listen-address: {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), int(port_text)


def serving_url(host: str | None, port: int, tls: bool = False) -> str:
    """The address a person opens for --web.listen-address's host and port."""
    if host in (None, "", "0.0.0.0", "::"):
        host = "localhost"
    elif host is not None and ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}/"


def run(main_coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(main_coroutine)
    except KeyboardInterrupt:
        return 0
    except Exception:
        # Through the scrubbing formatter, not Python's default hook: no secret in the trace.
        log.critical("unipost-exporter crashed")
        return 1


async def serve(config: Config, options: Options) -> int:
    """Serve until SIGTERM or SIGINT, then stop polling and close connections; SIGHUP
    reloads the config."""
    host, port, shard, security = options.host, options.port, options.shard, options.security
    address = f"{host or ''}:{port}"
    # The first line says what this process is, before any poll can log.
    log.info(
        options.banner,
        version=__version__,
        workspaces=len(config.workspaces),
        accounts=config.account_count,
        base_url=",".join(sorted({ws.unipost.base_url for ws in config.workspaces})),
        shard=f"{shard.index}/{shard.total}",
    )
    app = create_app(config, options)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    ssl_context = security.server_ssl_context() if security else None
    site = web.TCPSite(
        runner, host, port, shutdown_timeout=SHUTDOWN_TIMEOUT, ssl_context=ssl_context
    )
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen", address=address, err=exc.strerror)
        await runner.cleanup()
        return 1
    log.info(
        "listening",
        address=address,
        tls=ssl_context is not None,
        basic_auth=bool(security and security.config.users),
    )
    await until_stopped(app[RUNTIME].reload)
    log.info("shutting down")
    await runner.cleanup()
    log.info("stopped")
    return 0


async def until_stopped(reload: Callable[[], Coroutine[Any, Any, object]] | None = None) -> None:
    """Wait for SIGTERM or SIGINT; meanwhile each SIGHUP runs `reload` (if any) in a task."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[object]] = set()

    def on_sighup() -> None:
        assert reload is not None
        task = asyncio.create_task(reload())
        reloads.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(reloads.discard)

    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await stop.wait()
