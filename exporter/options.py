"""How one exporter process runs, apart from its config: the options object that goes from
the flags (cli.py, demo.py) through the process and the server to the runtime.

    >>> options = Options(port=9863, storage=resolve_storage(None, default="data"))
    >>> options.storage
    'data'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from exporter.schema import Config
from exporter.sharding import Shard
from exporter.webconfig import WebSecurity

# Re-reads the config for a reload; raises ConfigError with every problem.
ConfigLoader = Callable[[], Awaitable[Config]]


@dataclass(frozen=True)
class Options:
    """Everything but the config that a process is started with."""

    host: str | None = None  # None: every interface
    port: int = 9863
    shard: Shard = field(default_factory=Shard)
    # How a reload (SIGHUP, POST /-/reload) re-reads the config; None: reloads are refused.
    loader: ConfigLoader | None = None
    # --web.config.file: TLS, basic auth and headers; None: plain HTTP, no auth.
    security: WebSecurity | None = None
    # --storage.path, resolved (resolve_storage): the directory of the state file, or None.
    storage: str | None = None
    # The first log line's message, and the landing page's note (the demo says what it is).
    banner: str = "unipost-exporter starting"
    demo_note: str = ""


def resolve_storage(flag: str | None, default: str | None) -> str | None:
    """--storage.path as given (None: not given, so `default`); '' turns it off."""
    path = default if flag is None else flag
    return path or None
