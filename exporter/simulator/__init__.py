"""A UniPost simulator: the API contract, realistic accounts and realistic failures, on aiohttp.

It answers as UniPost's real server does (bugfreev587/unipost, api/): the five platforms
with a metrics adapter fill what their adapter fills and nothing more (YouTube's following
and Threads' following and posts are 0), every other platform answers 501, GETs carry no
X-UniPost-RateLimit-* headers unless the scenario asks for them, and times are Go's
RFC3339Nano. Deterministic for a given seed and request order: follower curves are pure
functions of (seed, account, time), and the occasional 502 comes from a seeded generator.
Run it alone with `unipost-exporter simulate` or `python -m exporter.simulator`.

The package: scenario.py (what is simulated, and scenario files), model.py (the workspace
and the bodies it answers with), app.py (the HTTP routes, envelope and limiter) and cli.py.
"""

from exporter.simulator.app import Simulator, start_simulator
from exporter.simulator.cli import main
from exporter.simulator.model import SIM_PROFILE_ID, SimulatedWorkspace, rfc3339nano
from exporter.simulator.scenario import (
    BEHAVIOURS,
    DEFAULT_SIM_KEY,
    DEMO_ACCOUNTS,
    TRENDS,
    Scenario,
    ScenarioError,
    ScenarioValidator,
    SimAccount,
    demo_scenario,
    load_scenario,
    scenario_from_dict,
)

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_SIM_KEY",
    "DEMO_ACCOUNTS",
    "SIM_PROFILE_ID",
    "TRENDS",
    "Scenario",
    "ScenarioError",
    "ScenarioValidator",
    "SimAccount",
    "SimulatedWorkspace",
    "Simulator",
    "demo_scenario",
    "load_scenario",
    "main",
    "rfc3339nano",
    "scenario_from_dict",
    "start_simulator",
]
