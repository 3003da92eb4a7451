"""The simulator's HTTP side: the routes of the API contract, the envelope, the auth and
limiter middleware, and starting it on a port.

    runner, base_url = await start_simulator(demo_scenario(), "127.0.0.1", 0)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from exporter.simulator.model import (
    WORKSPACE_READ_PATHS,
    ApiFailure,
    EdgeFailure,
    SimulatedWorkspace,
    error_body,
)
from exporter.simulator.scenario import Scenario

# Set by the middleware for the request being handled (each request runs in its own task).
_request_id: ContextVar[str] = ContextVar("request_id", default="req_sim_000000")


class Simulator(SimulatedWorkspace):
    """The simulated UniPost API as an aiohttp application."""

    def app(self) -> web.Application:
        """The routes of the API contract."""
        app = web.Application(middlewares=[self._envelope])
        app.router.add_get("/v1/accounts", self._list_accounts)
        app.router.add_get("/v1/accounts/{account_id}/metrics", self._metrics)
        app.router.add_get("/v1/accounts/{account_id}/health", self._health)
        app.router.add_get("/v1/profiles/{profile_id}/accounts/{account_id}/metrics", self._metrics)
        for path in WORKSPACE_READ_PATHS:
            app.router.add_get(path, self._workspace_read)
        return app

    @web.middleware
    async def _envelope(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.state.requests += 1
        request_id = f"req_sim_{next(self._request_ids):06d}"
        _request_id.set(request_id)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            # The auth middleware's own envelope: code and message only, no request_id.
            body = {"error": {"code": "UNAUTHORIZED", "message": "Invalid or missing API key"}}
            return web.json_response(body, status=401)
        headers: dict[str, str] = {}
        if self.scenario.rate_limit_headers:
            allowed, headers = self.take_token()
            if not allowed:
                return _error(
                    429, "RATE_LIMITED", "workspace request limit exceeded", request_id, headers
                )
        try:
            response = await handler(request)
        except ApiFailure as exc:
            return _error(exc.status, exc.code, exc.message, request_id, headers, exc.details)
        except EdgeFailure as exc:
            # A 5xx from the hosting edge in front of UniPost: plain text, not the envelope.
            return web.Response(status=exc.status, text=f"error code: {exc.status}")
        response.headers.update(headers)
        return response

    async def _metrics(self, request: web.Request) -> web.Response:
        return _ok(request, {"data": self.metrics(request.match_info["account_id"])})

    async def _health(self, request: web.Request) -> web.Response:
        return _ok(request, {"data": self.health(request.match_info["account_id"])})

    async def _workspace_read(self, request: web.Request) -> web.Response:
        return _ok(request, {"data": self.workspace_read(request.path)})

    async def _list_accounts(self, request: web.Request) -> web.Response:
        rows = self.listing(request.query)
        return _ok(request, {"data": rows, "meta": {"total": len(rows), "limit": len(rows)}})


def _ok(request: web.Request, payload: dict[str, Any]) -> web.Response:
    return web.json_response({**payload, "request_id": _request_id.get()})


def _error(
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str],
    details: dict[str, Any] | None = None,
) -> web.Response:
    body = error_body(code, message, request_id, details)
    return web.json_response(body, status=status, headers=dict(headers))


async def start_simulator(
    scenario: Scenario, host: str | None, port: int
) -> tuple[web.AppRunner, str]:
    """Start the simulator; returns its runner and base URL (port 0 picks a free port)."""
    runner = web.AppRunner(Simulator(scenario).app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{host or bound_host}:{bound_port}"
