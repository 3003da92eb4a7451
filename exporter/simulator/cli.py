"""`unipost-exporter simulate` and `python -m exporter.simulator`: the simulator on a port of
its own, until SIGTERM or SIGINT (process.py's signal handling).

    $ unipost-exporter simulate --web.listen-address :8080 --time-scale 3600
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace

from exporter.process import parse_listen_address, until_stopped
from exporter.simulator.app import start_simulator
from exporter.simulator.scenario import ScenarioError, demo_scenario, load_scenario


def main(argv: Sequence[str] | None = None) -> int:
    """`unipost-exporter simulate` / `python -m exporter.simulator`."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen_address(args.listen_address)
        scenario = load_scenario(args.scenario_file) if args.scenario_file else demo_scenario()
    except (ValueError, ScenarioError) as exc:
        print(f"unipost-exporter simulate: {exc}", file=sys.stderr)
        return 1
    if args.seed is not None:
        scenario = replace(scenario, seed=args.seed)
    if args.time_scale is not None:
        scenario = replace(scenario, time_scale=args.time_scale)

    async def serve() -> int:
        try:
            runner, url = await start_simulator(scenario, host, port)
        except OSError as exc:
            # One clear line, as the exporter gives: not a trace.
            reason = exc.strerror or str(exc)
            print(
                f"unipost-exporter simulate: cannot listen on {args.listen_address}: {reason}",
                file=sys.stderr,
            )
            return 1
        print(
            f"UniPost simulator on {url} (API key: {scenario.api_key}; "
            f"{len(scenario.accounts)} accounts; seed {scenario.seed})",
            file=sys.stderr,
            flush=True,
        )
        await until_stopped()  # SIGTERM or SIGINT, as the exporter stops
        await runner.cleanup()
        return 0

    return asyncio.run(serve())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unipost-exporter simulate", description="Serve a simulated UniPost workspace."
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=":8080",
        metavar="HOST:PORT",
        help="where to serve the simulated API (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario.file",
        dest="scenario_file",
        default=None,
        metavar="PATH",
        help="a YAML scenario: accounts, their behaviours, the limiter (default: the demo "
        "workspace of 13 accounts, key up_test_simulator)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the follower curves and of the occasional 502 (default: the scenario's, 1)",
    )
    parser.add_argument(
        "--time-scale",
        dest="time_scale",
        type=float,
        default=None,
        metavar="FACTOR",
        help="simulated seconds per real second; 3600 shows a day's growth in 24 s "
        "(default: the scenario's, 1)",
    )
    return parser
