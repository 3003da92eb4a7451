"""The only code that talks HTTP to UniPost: one request in, one raw answer out, counted.

client = UniPostClient(make_session(config.unipost), store.api, config.unipost.base_url)
outcome = (await client.get_account_metrics("sa_twitter_1")).read(classify)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from exporter import __version__
from exporter.listing import ListingReader
from exporter.logs import scrub
from exporter.parse import CONNECTION_ERROR, INVALID_RESPONSE, TIMEOUT, ApiError, ErrorKind
from exporter.schema import UniPostConfig
from exporter.store import ApiStats

T = TypeVar("T")
USER_AGENT = f"unipost-exporter/{__version__}"
# A metrics snapshot is a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 1024 * 1024
# The listing has every account in one answer, ~400 bytes each: room for ~600,000.
MAX_LISTING_BYTES = 256 * 1024 * 1024
# A streamed body is read and parsed in pieces of this size, the event loop turning between
# them (~2 ms of parsing each).
PIECE_BYTES = 64 * 1024
ACCOUNT_METRICS = "account_metrics"
ACCOUNTS = "accounts"
ACCOUNT_HEALTH = "account_health"
# The workspace reads: the `endpoint` label of each, and its path. UniPost answers them from
# its database, with no platform call. (GET /v1/posts/{id}/analytics and POST
# /v1/analytics/refresh make UniPost call the platforms: the exporter never sends them.)
WORKSPACE_PATHS = {
    "usage": "/v1/usage",
    "delivery_jobs": "/v1/post-delivery-jobs/summary",
    "analytics_by_platform": "/v1/analytics/by-platform",
    "analytics_summary": "/v1/analytics/summary",
    "analytics_platforms": "/v1/analytics/platforms",
}


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An HTTP answer (status set), or a request that got none (`transport_error` set)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))
    body: bytes = b""
    transport_error: str | None = None
    # Why there was no answer (host, port and cause), with the key scrubbed.
    detail: str = ""
    # What a body read as it arrived already means (ListingReader's outcome); it has no
    # `body` then.
    streamed: Any = None

    def read(self, classify: Callable[[int, bytes], T]) -> T | ApiError:
        """What the answer means, by `classify`; the failure when there is no usable body."""
        failed = self.failure()
        if failed is not None:
            return failed
        if self.streamed is not None:
            result: T | ApiError = self.streamed
            return result
        return classify(self.status or 0, self.body)

    def failure(self) -> ApiError | None:
        """What went wrong when there is no usable body (no answer, or one too large)."""
        if self.status is None:
            code = self.transport_error or CONNECTION_ERROR
            return ApiError(code, ErrorKind.TRANSIENT, message=self.detail)
        if self.transport_error == INVALID_RESPONSE:
            return ApiError(INVALID_RESPONSE, ErrorKind.INVALID, self.status, "body too large")
        return None


def make_session(
    config: UniPostConfig, trace_configs: Sequence[aiohttp.TraceConfig] = ()
) -> aiohttp.ClientSession:
    """A session that authenticates, identifies itself and times out as configured
    (`trace_configs`: aiohttp's request hooks, which the benchmark uses for send times)."""
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {config.api_key}", "User-Agent": USER_AGENT},
        timeout=aiohttp.ClientTimeout(total=config.timeout),
        raise_for_status=False,
        trace_configs=list(trace_configs) or None,
    )


class UniPostClient:
    """Sends requests to UniPost and records each in the API stats."""

    def __init__(self, session: aiohttp.ClientSession, stats: ApiStats, base_url: str) -> None:
        self._session = session
        self._stats = stats
        self._base_url = base_url.rstrip("/")
        authorization = session.headers.get("Authorization", "")
        # What an error text must never show: the header, and the key inside it.
        self._secrets = [s for s in (authorization, authorization.removeprefix("Bearer ")) if s]

    async def get_account_metrics(self, account_id: str) -> RawResponse:
        """GET /v1/accounts/{id}/metrics."""
        # An absolute, already-encoded URL: no base_url join or re-quoting inside aiohttp.
        path = f"/v1/accounts/{quote(account_id, safe='')}/metrics"
        return await self._get(URL(self._base_url + path, encoded=True), ACCOUNT_METRICS)

    async def get_account_health(self, account_id: str) -> RawResponse:
        """GET /v1/accounts/{id}/health: UniPost's database only, no platform call."""
        path = f"/v1/accounts/{quote(account_id, safe='')}/health"
        return await self._get(URL(self._base_url + path, encoded=True), ACCOUNT_HEALTH)

    async def get_workspace(self, endpoint: str) -> RawResponse:
        """One of the workspace reads, by its `endpoint` label (WORKSPACE_PATHS), with no
        query: analytics over UniPost's default window (the last 30 UTC days)."""
        url = URL(self._base_url + WORKSPACE_PATHS[endpoint], encoded=True)
        return await self._get(url, endpoint)

    async def list_accounts(self, platform: str | None = None) -> RawResponse:
        """GET /v1/accounts, optionally filtered to one platform; a 2xx answer is parsed as
        it arrives (`streamed`: the accounts, or the error its body is)."""
        url = URL(self._base_url + "/v1/accounts", encoded=True)
        if platform is not None:
            url = url.with_query(platform=platform)
        return await self._get(url, ACCOUNTS, listing=True)

    async def _get(self, url: URL, endpoint: str, listing: bool = False) -> RawResponse:
        started = time.perf_counter()
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if listing and 200 <= response.status < 300:
                    result = await _read_listing(response)
                else:
                    body = await _read_capped(response)
                    result = RawResponse(
                        status=response.status,
                        headers=response.headers,
                        body=body if body is not None else b"",
                        transport_error=None if body is not None else INVALID_RESPONSE,
                    )
        except TimeoutError:
            timeout = self._session.timeout.total
            detail = f"no answer from {_where(url)} within {timeout:g}s" if timeout else ""
            result = RawResponse(status=None, transport_error=TIMEOUT, detail=detail)
        except aiohttp.ClientError as exc:
            result = RawResponse(
                status=None, transport_error=CONNECTION_ERROR, detail=self._describe(exc, url)
            )
        elapsed = time.perf_counter() - started
        status_code = str(result.status) if result.status is not None else "error"
        self._stats.record_request(endpoint, status_code, elapsed)
        return result

    def _describe(self, exc: Exception, url: URL) -> str:
        """Why a request got no answer: the host and port, and the cause, key scrubbed."""
        text = str(exc) or type(exc).__name__
        if url.host and url.host not in text:
            text = f"{_where(url)}: {text}"
        return scrub(text, *self._secrets)[:300]


def _where(url: URL) -> str:
    return f"{url.host}:{url.port}"


async def _read_listing(response: aiohttp.ClientResponse) -> RawResponse:
    """A listing, parsed piece by piece as it arrives; too large when over MAX_LISTING_BYTES."""
    reader = ListingReader(response.status)
    size = 0
    async for piece in response.content.iter_chunked(PIECE_BYTES):
        size += len(piece)
        if size > MAX_LISTING_BYTES:
            return RawResponse(response.status, response.headers, transport_error=INVALID_RESPONSE)
        reader.feed(piece)
        # A piece already received is handed over without waiting: turn the loop anyway.
        await asyncio.sleep(0)
    return RawResponse(response.status, response.headers, streamed=reader.close())


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is larger than any snapshot could be."""
    if response.content_length is not None:
        if response.content_length > MAX_BODY_BYTES:
            return None
        return await response.read()
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
