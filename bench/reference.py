"""prometheus_client's generate_latest() on the same samples, in a fresh process that holds
only them: the peer a user would otherwise write.

    python -m bench.reference --body metrics.txt [--repeat 3]

Parses a scraped /metrics body into metric families, registers a collector that returns
them, and times generate_latest(). Prints JSON: the median time in seconds, and whether
generate_latest() rendered those samples byte for byte as the exporter did.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


class Parsed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    body = args.body.read_bytes()
    families = list(text_string_to_metric_families(body.decode()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Parsed(families))
    gc.collect()
    times, output = [], b""
    for _ in range(args.repeat):
        began = time.perf_counter()
        output = generate_latest(registry)
        times.append(time.perf_counter() - began)
    first_difference = next(
        (
            f"{ours!r} vs {theirs!r}"
            for ours, theirs in zip(body.splitlines(), output.splitlines(), strict=False)
            if ours != theirs
        ),
        "" if len(body) == len(output) else "lengths differ",
    )
    samples = sum(len(family.samples) for family in families)
    print(
        json.dumps(
            {
                "generate_latest_s": statistics.median(times),
                "samples": samples,
                "identical": output == body,
                "first_difference": first_difference[:300],
            }
        )
    )


if __name__ == "__main__":
    main()
