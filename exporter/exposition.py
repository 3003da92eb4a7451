"""The fast /metrics body: each account's lines are rendered when the account changes, so a
scrape only joins bytes. Output is byte-for-byte what prometheus_client renders for the same
store (tests compare them); exporter-wide families are rendered by prometheus_client itself.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.collector import (
    ACCOUNT_FAMILIES,
    AccountSample,
    Family,
    account_labels,
    account_samples,
)
from exporter.store import AccountState, Store


def _openmetrics(registry: CollectorRegistry) -> bytes:
    body: bytes = openmetrics_latest(registry)  # type: ignore[no-untyped-call]
    return body


# prometheus_client's own float formatting (`1.0`, `1.777401e+09`, `+Inf`), typed.
_go_float: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    # As prometheus_client escapes label values.
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))


class _OneFamily(Collector):
    def __init__(self, family: Family) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [Metric(self.family.name, self.family.help, self.family.type)]


def _header(family: Family, openmetrics: bool) -> bytes:
    """The HELP and TYPE lines prometheus_client writes for an empty family."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OneFamily(family))
    if openmetrics:
        return _openmetrics(registry).removesuffix(b"# EOF\n")
    return text_latest(registry)


class _Rendered:
    """One account's label strings and the samples its lines were last rendered from."""

    __slots__ = ("key", "labels", "pairs", "plain", "samples")

    def __init__(self, account: AccountState) -> None:
        self.key = (account.platform, account.labels)
        self.pairs = list(account_labels(account).items())
        self.plain = "{" + _labels(self.pairs) + "} "
        self.labels: dict[tuple[str, str], str] = {}
        self.samples: list[list[AccountSample] | None] = [None] * len(ACCOUNT_FAMILIES)

    def with_extra(self, extra: tuple[str, str]) -> str:
        text = self.labels.get(extra)
        if text is None:
            text = self.labels[extra] = "{" + _labels([*self.pairs, extra]) + "} "
        return text


class FastExposition:
    """Pre-rendered per-account lines, joined at scrape time, then the exporter-wide tail."""

    def __init__(self, store: Store, tail: CollectorRegistry) -> None:
        self.store = store
        self.tail = tail
        self._text_headers = [_header(f, openmetrics=False) for f in ACCOUNT_FAMILIES]
        self._openmetrics_headers = [_header(f, openmetrics=True) for f in ACCOUNT_FAMILIES]
        # One dict per family: account id -> that account's lines, in store order.
        self._lines: list[dict[str, bytes]] = [{} for _ in ACCOUNT_FAMILIES]
        self._rendered: dict[str, _Rendered] = {}
        for account in store.accounts.values():
            self.account_changed(account)
        store.listeners.append(self)

    def account_changed(self, account: AccountState) -> None:
        """Re-render the families whose samples changed for this account."""
        rendered = self._rendered.get(account.id)
        if rendered is None or rendered.key != (account.platform, account.labels):
            rendered = self._rendered[account.id] = _Rendered(account)
        previous = rendered.samples
        for index, samples in enumerate(account_samples(account)):
            if samples == previous[index]:
                continue
            previous[index] = samples
            name = ACCOUNT_FAMILIES[index].sample
            text = "".join(
                name
                + (rendered.with_extra(extra) if extra else rendered.plain)
                + _go_float(value)
                + "\n"
                for extra, value in samples
            )
            self._lines[index][account.id] = text.encode()

    def account_removed(self, account_id: str) -> None:
        """Forget an account: its series disappear from the next scrape."""
        self._rendered.pop(account_id, None)
        for lines in self._lines:
            lines.pop(account_id, None)

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole body in the text format (0.0.4) or OpenMetrics."""
        headers = self._openmetrics_headers if openmetrics else self._text_headers
        parts: list[bytes] = []
        for header, lines in zip(headers, self._lines, strict=True):
            parts.append(header)
            parts.append(b"".join(lines.values()))
        parts.append(_openmetrics(self.tail) if openmetrics else text_latest(self.tail))
        return b"".join(parts)
