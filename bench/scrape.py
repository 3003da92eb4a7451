"""Scrape /metrics like Prometheus would, from its own process; print latencies as JSON.

Uses curl when present: a scraper that spends little CPU itself, so on a 2-core machine it
does not take the cores the exporter and the fake UniPost run on (urllib otherwise).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    headers = {"Accept-Encoding": "gzip"} if args.gzip else {}
    latencies: list[float] = []
    sizes: list[int] = []
    curl = shutil.which("curl")
    if curl:
        for _ in range(args.count):
            command = [curl, "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}"]
            if args.gzip:
                command += ["-H", "Accept-Encoding: gzip"]
            out = subprocess.run([*command, args.url], capture_output=True, text=True, check=True)
            seconds, size = out.stdout.split()
            latencies.append(float(seconds))
            sizes.append(int(size))
        print(json.dumps({"latencies": latencies, "bytes": sizes[-1], "client": "curl"}))
        return
    for _ in range(args.count):
        request = urllib.request.Request(args.url, headers=headers)
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        latencies.append(time.perf_counter() - started)
        sizes.append(len(body))
    print(json.dumps({"latencies": latencies, "bytes": sizes[-1], "client": "urllib"}))


if __name__ == "__main__":
    main()
