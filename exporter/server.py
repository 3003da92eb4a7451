"""HTTP: /metrics, the landing page, /-/healthy, /-/ready and /-/reload, and the polling
lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Sequence

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
from exporter.exposition import Body, FastExposition
from exporter.logs import FieldLogger
from exporter.options import Options
from exporter.runtime import Runtime, SessionFactory
from exporter.schema import Config
from exporter.sharding import Shard
from exporter.store import ReloadStatus, StateStatus, Store, StoreSource
from exporter.workspace_metrics import WorkspaceCollector

log = FieldLogger("exporter.server")
EXPOSITION = web.AppKey("exposition", FastExposition)
RUNTIME = web.AppKey("runtime", Runtime)
RENDERS: web.AppKey[SharedRenders] = web.AppKey("renders")
DEMO_NOTE = web.AppKey("demo_note", str)
# Level 1 compresses an exposition about 4x faster than 6 for ~1.5x the bytes: CPU is
# the scarcer resource on the exporter, bytes are cheap between it and Prometheus.
GZIP_LEVEL = 1
# A render turns the event loop at least this often (seconds).
RENDER_TURN = 0.002


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
    registry.register(WorkspaceCollector(stores))
    registry.register(ApiCollector(stores, shard.index, shard.total, reload=reload, state=state))
    if with_process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)


def create_app(
    config: Config,
    options: Options | None = None,
    *,
    clock: Clock | None = None,
    session_factory: SessionFactory = make_session,
) -> web.Application:
    """The exporter as an aiohttp application; polling starts with the app and stops with it.

    app = create_app(config, Options(loader=reread))
    web.run_app(app, port=9863)
    """
    options = options or Options()
    security, shard = options.security, options.shard
    app = web.Application(middlewares=[security.middleware] if security else [])
    app[DEMO_NOTE] = options.demo_note
    runtime = Runtime(config, options, clock or SystemClock(), session_factory)
    app[RUNTIME] = runtime
    tail = build_tail_registry(
        runtime.stores, shard, reload=runtime.reload_status, state=runtime.state_status
    )
    exposition = FastExposition(runtime.stores, tail)
    app[EXPOSITION] = exposition
    app[RENDERS] = SharedRenders()

    async def polling(app: web.Application) -> AsyncIterator[None]:
        await runtime.start()  # ends by freezing the long-lived heap (heap.collect_and_freeze)
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


_CUT = b"\0cut"  # queued instead of the rest of a body whose render failed


class _Scrape:
    """One scrape's response, written by a task of its own from a queue of pieces: a render
    hands each piece over without waiting for any client to read it."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        self.response = response
        self.joined = False  # a render is writing to it
        self.failed = False  # the client went away
        self._pieces: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self, length: int | None) -> None:
        """A render begins: the response goes out with `length` (None: chunked)."""
        self.joined = True
        self._writer = asyncio.create_task(self._write(length))

    def put(self, piece: bytes | None) -> None:
        """The next piece of the body; None: the body is complete; _CUT: the render failed."""
        if not self.failed:
            self._pieces.put_nowait(piece)

    async def _write(self, length: int | None) -> None:
        try:
            if length is not None:
                self.response.content_length = length
            await self.response.prepare(self.request)
            while (piece := await self._pieces.get()) is not None:
                if piece is _CUT:
                    # No terminating chunk: the client sees a failed scrape, not a short body.
                    if self.request.transport is not None:
                        self.request.transport.close()
                    self.failed = True
                    return
                await self.response.write(piece)
            await self.response.write_eof()
        except (ConnectionError, RuntimeError):
            self.failed = True  # gone: nothing more is queued for it
            while not self._pieces.empty():
                self._pieces.get_nowait()

    async def done(self) -> None:
        if self._writer is not None:
            await self._writer


class SharedRenders:
    """One render at a time, shared by every scrape that arrived before it began.

    Fifty scrapers at once then cost about one render per render time, not fifty
    interleaved ones. A scrape never gets a body begun before it arrived, so it is never
    older than the request.

    The body is written as it is rendered, never held whole: it grows with the accounts
    (~870 bytes each), and building it in fresh memory costs more than sending it (the
    kernel faults in each new page). Each scrape's pieces wait in its own queue until its
    client reads them, so a slow client keeps the rest of its body, and neither the render
    nor the other scrapes wait for it.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting: dict[tuple[bool, bool], list[_Scrape]] = {}

    async def serve(
        self,
        exposition: FastExposition,
        openmetrics: bool,
        request: web.Request,
        response: web.StreamResponse,
    ) -> None:
        """Send the exposition as `response` (its headers set), sharing a render with the
        scrapes that wait for the same format."""
        compress = response.headers.get("Content-Encoding") == "gzip"
        key = (openmetrics, compress)
        scrape = _Scrape(request, response)
        self._waiting.setdefault(key, []).append(scrape)
        try:
            async with self._lock:
                if not scrape.joined:  # no render began after it arrived: this one leads
                    group = self._waiting.pop(key, [])
                    if scrape not in group:  # a render that took it failed to begin
                        group.append(scrape)
                    with (
                        request.app[RUNTIME].scrapes_first(),
                        contextlib.closing(exposition.open(openmetrics)) as body,
                    ):
                        for member in group:
                            # Compressed, its length is known only at the end: chunked.
                            member.start(None if compress else body.length)
                        await _render(body, compress, group)
        finally:
            waiting = self._waiting.get(key, [])
            if not scrape.joined and scrape in waiting:  # cancelled while waiting
                waiting.remove(scrape)
                if not waiting:
                    del self._waiting[key]
        await scrape.done()


async def _render(body: Body, compress: bool, scrapes: list[_Scrape]) -> None:
    # Rendered (and compressed) on the loop in pieces of a fraction of a millisecond, yielding
    # between them: the scrapes' writers send each piece, and polls and /-/healthy stay on
    # time. A worker thread would not help: its bytecode holds the GIL a whole switch
    # interval whenever the loop wants it, and on a busy core the scheduler, not the loop,
    # decides when the loop runs again.
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if compress else None
    end: bytes | None = _CUT
    rendered = 0
    loop = asyncio.get_running_loop()
    turn = loop.time() + RENDER_TURN
    try:
        for chunk in body.pieces:
            rendered += len(chunk)
            piece = packer.compress(chunk) if packer else chunk
            if piece:
                for scrape in scrapes:
                    scrape.put(piece)
            if loop.time() >= turn:  # the writers send what is queued; /-/healthy answers
                await asyncio.sleep(0)
                turn = loop.time() + RENDER_TURN
        if packer:
            last = packer.flush()
            for scrape in scrapes:
                scrape.put(last)
        if rendered == body.length:
            end = None
        else:  # a bug: no client may take a short body for a whole one
            log.error("exposition length mismatch", declared=body.length, rendered=rendered)
    finally:
        for scrape in scrapes:
            scrape.put(end)


async def metrics(request: web.Request) -> web.StreamResponse:
    """The exposition, negotiated like prometheus_client's own handler (format and gzip)."""
    _, content_type = choose_encoder(request.headers.get("Accept", ""))
    openmetrics = content_type.startswith("application/openmetrics-text")
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    response = web.StreamResponse(headers={"Content-Type": content_type})
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    await request.app[RENDERS].serve(request.app[EXPOSITION], openmetrics, request, response)
    return response


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
