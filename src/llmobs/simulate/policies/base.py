"""How a compared autoscaling policy is described: its knob, the grid a comparison sweeps, and a builder.

A policy is built once per run (`PolicySpec.build(knob, context)` → a `Controller`, which keeps its own
state: HPA stabilization, windows, a forecaster's history) and then called at every sync instant with a
`ControlView`. It never sees the simulator's state, only what a cluster's autoscaler would read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmobs.forecast.replay import HpaConfig
from llmobs.simulate.control import Controller
from llmobs.simulate.fleet import FleetConfig
from llmobs.simulate.workload import Workload


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may know before the run starts.

    `capacity_rps`: requests per second one replica serves within the SLO at the training part's length mix
    (what a load test or Dynamo's pre-deployment profiling gives a user); `training`: the part of the trace a
    policy may learn from (the first 40 % in the benchmark), `future`: the whole workload, for the
    clairvoyant bound only."""

    fleet: FleetConfig
    ttft_slo_s: float
    tpot_slo_s: float
    capacity_rps: float
    hpa: HpaConfig = field(default_factory=HpaConfig)
    training: Workload | None = None
    future: Workload | None = None


@dataclass(frozen=True)
class PolicySpec:
    """One compared policy. `grid(context)` is the knob values a comparison sweeps (every policy gets the
    same treatment: the frontier over its own grid); `default(context)` what its documentation suggests."""

    key: str
    label: str
    knob: str
    source: str
    grid: Callable[[PolicyContext], tuple[float, ...]]
    default: Callable[[PolicyContext], float]
    build: Callable[[float, PolicyContext], Controller]
    clairvoyant: bool = False  # reads the future: a bound, not a policy anyone can run
