"""Request-level simulation of a vLLM fleet on virtual time, for comparing autoscaling policies.

Requests come from traces (`workload`), each replica schedules them as vLLM V1 does (`engine`), step time
comes from a GPU profile (`profile`), and at every scrape instant each replica renders a real vLLM page that
llmobs' own parse → signals path reads, so a controller sees what llmobs would see (`fleet`). The outcome is
per-request TTFT/TPOT/E2E, SLO attainment and GPU-hours (`results`). Needs the `forecast` extra (numpy,
pandas), as the trace readers and the capacity arithmetic it reuses do.
"""

from llmobs.simulate.control import Controller, ControlView, ReplicaLoad
from llmobs.simulate.engine import EngineConfig, ReplicaEngine, SimRequest
from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.fleet import (
    FleetConfig,
    FleetSimulator,
    check_slo,
    replica_page,
    simulate,
)
from llmobs.simulate.profile import StepProfile, load_profile, parse_profile
from llmobs.simulate.results import SimulationResult
from llmobs.simulate.workload import Workload, load_workload

__all__ = [
    "ControlView",
    "Controller",
    "EngineConfig",
    "FleetConfig",
    "FleetSimulator",
    "ReplicaEngine",
    "ReplicaLoad",
    "SimRequest",
    "SimulationInputError",
    "SimulationResult",
    "StepProfile",
    "Workload",
    "check_slo",
    "load_profile",
    "load_workload",
    "parse_profile",
    "replica_page",
    "simulate",
]
