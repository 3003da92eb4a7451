"""The only code that talks HTTP to UniPost: one request in, one raw answer out, counted."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from exporter import __version__
from exporter.config import UniPostConfig
from exporter.logs import scrub
from exporter.parse import CONNECTION_ERROR, INVALID_RESPONSE, TIMEOUT, ApiError, ErrorKind
from exporter.store import ApiStats

T = TypeVar("T")
USER_AGENT = f"unipost-exporter/{__version__}"
# A metrics snapshot is a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 1024 * 1024
ACCOUNT_METRICS = "account_metrics"
ACCOUNTS = "accounts"
ACCOUNT_HEALTH = "account_health"


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An HTTP answer (status set), or a request that got none (`transport_error` set)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))
    body: bytes = b""
    transport_error: str | None = None
    # Why there was no answer (host, port and cause), with the key scrubbed.
    detail: str = ""

    def read(self, classify: Callable[[int, bytes], T]) -> T | ApiError:
        """What the answer means, by `classify`; the failure when there is no usable body."""
        failed = self.failure()
        return failed if failed is not None else classify(self.status or 0, self.body)

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

    async def list_accounts(self, platform: str | None = None) -> RawResponse:
        """GET /v1/accounts, optionally filtered to one platform."""
        url = URL(self._base_url + "/v1/accounts", encoded=True)
        if platform is not None:
            url = url.with_query(platform=platform)
        return await self._get(url, ACCOUNTS)

    async def _get(self, url: URL, endpoint: str) -> RawResponse:
        started = time.perf_counter()
        try:
            async with self._session.get(url, allow_redirects=False) as response:
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
