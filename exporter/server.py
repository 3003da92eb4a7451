"""HTTP: /metrics, the landing page, /-/healthy, /-/ready and /-/reload, and the polling
lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import landing
from exporter.client import make_session
from exporter.clock import Clock, SystemClock
from exporter.collector import AccountCollector, ApiCollector
from exporter.config import Config
from exporter.exposition import FastExposition
from exporter.runtime import ConfigLoader, Runtime, SessionFactory
from exporter.sharding import Shard
from exporter.store import ReloadStatus, StateStatus, Store, StoreSource
from exporter.webconfig import WebSecurity

EXPOSITION = web.AppKey("exposition", FastExposition)
RUNTIME = web.AppKey("runtime", Runtime)
RENDERS: web.AppKey[SharedRenders] = web.AppKey("renders")
DEMO_NOTE = web.AppKey("demo_note", str)
# Level 1 compresses an exposition about 4x faster than 6 for ~1.5x the bytes: CPU is
# the scarcer resource on the exporter, bytes are cheap between it and Prometheus.
GZIP_LEVEL = 1
WRITE_SIZE = 64 * 1024


def build_registry(
    stores: Sequence[Store],
    shard: Shard | None = None,
    with_process_metrics: bool = True,
    reload: ReloadStatus | None = None,
) -> CollectorRegistry:
    """Everything /metrics shows, rendered by prometheus_client: the reference the fast
    exposition must match, and the way to render the stores in tests."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AccountCollector(lambda: stores))
    _add_tail(registry, lambda: stores, shard or Shard(), with_process_metrics, reload)
    return registry


def build_tail_registry(
    stores: StoreSource,
    shard: Shard | None = None,
    with_process_metrics: bool = True,
    reload: ReloadStatus | None = None,
    state: StateStatus | None = None,
) -> CollectorRegistry:
    """What follows the per-account families: exporter-wide and process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    _add_tail(registry, stores, shard or Shard(), with_process_metrics, reload, state)
    return registry


def _add_tail(
    registry: CollectorRegistry,
    stores: StoreSource,
    shard: Shard,
    with_process_metrics: bool,
    reload: ReloadStatus | None,
    state: StateStatus | None = None,
) -> None:
    registry.register(ApiCollector(stores, shard.index, shard.total, reload=reload, state=state))
    if with_process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    session_factory: SessionFactory = make_session,
    demo_note: str = "",
    shard: Shard | None = None,
    loader: ConfigLoader | None = None,
    on_secrets: Callable[[Iterable[str]], None] = lambda keys: None,
    security: WebSecurity | None = None,
    storage: str | None = None,
) -> web.Application:
    """The exporter as an aiohttp application; polling starts with the app and stops with it.

    `loader` re-reads the config for a reload (SIGHUP, POST /-/reload); without one, a
    reload is refused. `security` (--web.config.file) adds basic auth and headers.
    """
    app = web.Application(middlewares=[security.middleware] if security else [])
    app[DEMO_NOTE] = demo_note
    shard = shard or Shard()
    runtime = Runtime(
        config,
        clock or SystemClock(),
        session_factory,
        shard,
        loader=loader,
        on_secrets=on_secrets,
        storage=storage,
    )
    app[RUNTIME] = runtime
    tail = build_tail_registry(
        runtime.stores, shard, reload=runtime.reload_status, state=runtime.state_status
    )
    exposition = FastExposition(runtime.stores, tail)
    app[EXPOSITION] = exposition
    app[RENDERS] = SharedRenders()

    async def polling(app: web.Application) -> AsyncIterator[None]:
        await runtime.start()  # ends by freezing the long-lived heap (heap.settle)
        try:
            yield
        finally:
            await runtime.stop()

    app.cleanup_ctx.append(polling)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", landing_page)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app


async def reload(request: web.Request) -> web.Response:
    """Re-read the config file, as SIGHUP does: 200, or 500 naming every problem."""
    problems = await request.app[RUNTIME].reload()
    if problems:
        text = "failed to reload config; the running config stays:\n" + "\n".join(problems)
        return web.Response(status=500, text=text + "\n")
    return web.Response(text="Reloaded.\n")


class SharedRenders:
    """One render at a time, shared by every scrape that arrived before it began.

    Fifty scrapers at once then cost about one render per render time, not fifty
    interleaved ones, and polls keep their turns on the event loop between its pieces. A
    scrape never gets a body begun before it arrived, so it is never older than the request.
    A body is kept only while scrapes wait for it: at 10,000 accounts it is 8.5 MB.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._last: tuple[float, tuple[bool, bool], bytearray] | None = None

    async def body(
        self, exposition: FastExposition, openmetrics: bool, compress: bool
    ) -> bytearray:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        key = (openmetrics, compress)
        self._waiting += 1
        acquired = False
        try:
            async with self._lock:
                acquired = True
                self._waiting -= 1
                last = self._last
                if last is not None and last[1] == key and last[0] >= arrived:
                    body = last[2]
                else:
                    began = loop.time()
                    body = await _render(exposition, openmetrics, compress)
                    last = (began, key, body)
                self._last = last if self._waiting else None
                return body
        finally:
            if not acquired:
                self._waiting -= 1


async def _render(exposition: FastExposition, openmetrics: bool, compress: bool) -> bytearray:
    # Rendered (and compressed) on the loop in pieces of a fraction of a millisecond, yielding
    # between them: polls and /-/healthy stay on time during a scrape. A worker thread would
    # not help: its bytecode holds the GIL a whole switch interval whenever the loop wants it,
    # and on a busy core the scheduler, not the loop, decides when the loop runs again.
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if compress else None
    # One growing buffer, not a list of pieces: at 100,000 accounts the body is 86 MB, and
    # glibc maps a buffer that size on its own and unmaps it when freed, where it would keep
    # ~75 MB of freed pieces of a few hundred kilobytes in its heap.
    body = bytearray()
    # Closed even when the scrape is cancelled: while it reads, the exposition holds back
    # the polls' changes (FastExposition.iter_chunks).
    with contextlib.closing(exposition.iter_chunks(openmetrics=openmetrics)) as chunks:
        for chunk in chunks:
            body += packer.compress(chunk) if packer else chunk
            await asyncio.sleep(0)
    if packer:
        body += packer.flush()
    return body


async def metrics(request: web.Request) -> web.StreamResponse:
    """The exposition, negotiated like prometheus_client's own handler (format and gzip)."""
    _, content_type = choose_encoder(request.headers.get("Accept", ""))
    openmetrics = content_type.startswith("application/openmetrics-text")
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    body = await request.app[RENDERS].body(request.app[EXPOSITION], openmetrics, compress)
    response = web.StreamResponse(headers={"Content-Type": content_type})
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    response.content_length = len(body)
    await response.prepare(request)
    await _send(response, body)
    return response


async def _send(response: web.StreamResponse, body: bytearray) -> None:
    view = memoryview(body)
    for start in range(0, len(body), WRITE_SIZE):
        # On loopback the kernel delivers a send within the call: keep each one small,
        # and let polls run between them.
        await response.write(view[start : start + WRITE_SIZE])
        await asyncio.sleep(0)
    await response.write_eof()


async def healthy(request: web.Request) -> web.Response:
    """200 while the process runs."""
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    """200 once the config is loaded and polling runs."""
    if request.app[RUNTIME].polling_started:
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: polling has not started.\n")


async def landing_page(request: web.Request) -> web.Response:
    """Every account's counts, status, why and what to do, and its schedule (paged)."""
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    runtime = request.app[RUNTIME]
    clock = runtime.clock
    text, _ = landing.render(
        runtime.stores(), clock.wall(), clock.monotonic(), page, request.app[DEMO_NOTE]
    )
    return web.Response(text=text, content_type="text/html")
