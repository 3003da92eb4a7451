"""Shared test setup."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import aioresponses.core
import pytest
from aiohttp.client_reqrep import ClientResponse

from exporter import logs


class _NoStreamWriter:
    output_size = 0


class _CompatClientResponse(ClientResponse):
    """aiohttp 3.14 made `stream_writer` required; aioresponses <= 0.7.9 does not pass it
    (pnuckowski/aioresponses#289). Supply a stand-in so aioresponses works on both."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoStreamWriter())
        super().__init__(method, url, **kwargs)


if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
    aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only() -> Iterator[None]:
    """Each test starts with the secrets it registers itself: the registry is process-wide,
    and a short key another test parsed ("k") would be scrubbed from this test's log."""
    saved = list(logs.SECRETS)
    logs.SECRETS.clear()
    try:
        yield
    finally:
        logs.SECRETS[:] = saved
