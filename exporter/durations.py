"""Durations as the config file and the logs write them: Prometheus' style (`5m`, `1h30m`).

>>> parse_duration("1h30m")
5400.0
>>> format_duration(900)
'15m'
"""

from __future__ import annotations

import re

# The hint every "is not a duration" problem ends with.
DURATION_HINT = "write it like 30s, 5m or 1h"

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


def parse_duration(text: str) -> float:
    """Parse a Prometheus-style duration (`250ms`, `10s`, `5m`, `1h30m`, `1d`) into seconds."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """Render seconds the way the config file writes them (`15m`, `1h30m`, `250ms`)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, name in ((86400000, "d"), (3600000, "h"), (60000, "m"), (1000, "s"), (1, "ms")):
        if millis >= unit:
            out.append(f"{millis // unit}{name}")
            millis %= unit
    return "".join(out)
