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

from exporter.collector import ACCOUNT_FAMILIES, Family, account_labels, account_samples
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


class FastExposition:
    """Pre-rendered per-account lines, joined at scrape time, then the exporter-wide tail."""

    def __init__(self, store: Store, tail: CollectorRegistry) -> None:
        self.store = store
        self.tail = tail
        self._text_headers = [_header(f, openmetrics=False) for f in ACCOUNT_FAMILIES]
        self._openmetrics_headers = [_header(f, openmetrics=True) for f in ACCOUNT_FAMILIES]
        # One dict per family: account id -> that account's lines, in store order.
        self._lines: list[dict[str, bytes]] = [{} for _ in ACCOUNT_FAMILIES]
        for account in store.accounts.values():
            self.account_changed(account)
        store.listeners.append(self)

    def account_changed(self, account: AccountState) -> None:
        """Re-render one account's lines."""
        base = list(account_labels(account).items())
        plain = "{" + _labels(base) + "} "
        for lines, spec, samples in zip(
            self._lines, ACCOUNT_FAMILIES, account_samples(account), strict=True
        ):
            rendered = "".join(
                spec.sample
                + (("{" + _labels([*base, extra]) + "} ") if extra else plain)
                + _go_float(value)
                + "\n"
                for extra, value in samples
            )
            lines[account.id] = rendered.encode()

    def account_removed(self, account_id: str) -> None:
        """Forget an account: its series disappear from the next scrape."""
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
