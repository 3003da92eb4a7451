"""How long the exporter takes to answer /-/healthy, asked every few milliseconds: the event
loop's stall as any client sees it, measured from outside the exporter's process.

    python -m bench.probe --url http://127.0.0.1:9863/-/healthy

Runs until SIGTERM, then prints JSON: each probe's send time (the system's monotonic
clock, which the benchmark shares) and how long its answer took, in seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import time
from types import FrameType
from urllib.parse import urlsplit

# A probe every 2 ms at most: a stall of 20 ms is seen by several probes, and the probes
# cost the exporter a few percent of its core.
GAP = 0.002


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    url = urlsplit(args.url)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    sent: list[float] = []
    took: list[float] = []
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    while not stopping:
        began = time.monotonic()
        try:
            connection.request("GET", url.path)
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnect on the next probe
            if stopping:
                break
            time.sleep(GAP)
            continue
        sent.append(began)
        took.append(time.monotonic() - began)
        time.sleep(GAP)
    print(json.dumps({"sent": sent, "took": took}))


if __name__ == "__main__":
    main()
