"""`llmobs forecast simulate --level request`: options in, one table (or JSON) out.

The forecast command parses the options and hands them here (`RequestLevelRun`): this layer holds the
simulator, the one below it does not. The work is this package's (`llmobs.simulate.whatif`); this module
picks the traffic source, runs one policy or all of them, and prints. Bad input is one `error: …` line, exit 2.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from llmobs.cli_support import one_line_errors
from llmobs.forecast.cli import RequestLevelRun
from llmobs.forecast.errors import ForecastInputError
from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.policies import POLICIES
from llmobs.simulate.whatif import (
    Outcome,
    Setup,
    Traffic,
    build_fleet,
    compare,
    prepare,
    read_prometheus,
    run_policy,
    traffic_from_prometheus,
    traffic_from_trace,
)

DEFAULT_POLICY = "keda-rate"
console = Console(width=None if sys.stdout.isatty() else 160)


def _traffic(run: RequestLevelRun) -> Traffic:
    if (run.trace is None) == (run.prometheus is None):
        raise SimulationInputError("give --trace FILE or --prometheus URL (one of them)")
    if not (math.isfinite(run.compress) and run.compress > 0):
        raise SimulationInputError(f"--compress must be > 0, not {run.compress:g}")
    if run.trace is not None:
        return traffic_from_trace(str(run.trace), start_s=run.start_s, duration_s=run.duration_s, seed=run.seed,
                                  compress=run.compress)
    assert run.prometheus is not None
    if not run.model:
        raise SimulationInputError("--prometheus needs --model NAME (the model whose history to read)")
    series = read_prometheus(run.prometheus, run.model, history_s=run.history_s, step_s=run.step_s or 60.0,
                             promql=run.promql, end=time.time())
    return traffic_from_prometheus(series, seed=run.seed, compress=run.compress,
                                   mean_prompt_tokens=run.mean_prompt_tokens,
                                   mean_output_tokens=run.mean_output_tokens)


def _setup(run: RequestLevelRun) -> Setup:
    fleet = build_fleet(run.profile, ttft_slo_s=1.0 if run.ttft_slo_s is None else run.ttft_slo_s,
                        tpot_slo_s=0.1 if run.tpot_slo_s is None else run.tpot_slo_s, cold_start_s=run.cold_start_s,
                        polling_interval_s=run.polling_interval_s, min_replicas=run.min_replicas,
                        max_replicas=run.max_replicas)
    return prepare(_traffic(run), fleet, capacity_rps=run.capacity_per_replica,
                   initial_replicas=run.initial_replicas)


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _header(setup: Setup) -> dict[str, Any]:
    f = setup.fleet
    traffic = setup.traffic
    span = traffic.span_s
    requests = int(traffic.requests) if traffic.workload is not None else round(traffic.requests)
    return {"source": traffic.source, "mode": "fluid" if traffic.fluid else "request", "requests": requests,
            "span_seconds": span, "mean_rate_rps": traffic.requests / span if span > 0 else math.nan,
            "profile": f.config.profile.name,
            "ttft_slo_seconds": f.ttft_slo_s, "tpot_slo_seconds": f.tpot_slo_s,
            "cold_start_seconds": f.config.cold_start_s, "initial_replicas": f.config.initial_replicas,
            "capacity_per_replica_rps": setup.context.capacity_rps}


def _finite(value: Any) -> Any:
    """JSON has no NaN: a measure without a value (no request got a first token) is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _dumps(d: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return _finite(v)

    return json.dumps(clean(d), indent=2)


def _json(outcome: Outcome) -> dict[str, Any]:
    d: dict[str, Any] = outcome.measures()
    d["replica_timeline"] = [list(row) for row in outcome.result.replica_timeline]
    return d


def _fleet_line(setup: Setup) -> str:
    h = _header(setup)
    return (f"fleet: profile {h['profile']}, cold start {h['cold_start_seconds']:g} s, {h['initial_replicas']} "
            f"replicas at the start, {h['capacity_per_replica_rps']:.2f} req/s per replica; SLO: TTFT ≤ "
            f"{h['ttft_slo_seconds']:g} s and TPOT ≤ {h['tpot_slo_seconds'] * 1000:g} ms")


def _short_knob(knob: str) -> str:
    """`threshold (requests/s per replica)` → `threshold`: the unit is in --list-policies."""
    return knob.split(" (")[0]


def _print_compare(setup: Setup, outcomes: list[Outcome], notes: list[str]) -> None:
    h = _header(setup)
    mode = " (fluid mode)" if setup.traffic.fluid else ""
    t = Table(title=f"{h['source']}: {h['requests']:,} requests over {h['span_seconds'] / 60:,.1f} min{mode}",
              title_justify="left")
    percentiles = not setup.traffic.fluid  # the fluid mode has no per-request times
    for col in ("policy", "knob", "attainment", "GPU-hours", "goodput/GPU-h", "scale events", "peak replicas",
                *(("TTFT p90 s",) if percentiles else ())):
        t.add_column(col, justify="left" if col in ("policy", "knob") else "right", no_wrap=col == "policy")
    for o in outcomes:
        m = o.measures()
        name = f"{o.spec.key}{' (bound)' if o.spec.clairvoyant else ''}"
        t.add_row(name, f"{_short_knob(o.spec.knob)} = {o.knob:.4g}",
                  _fmt(m["attainment"]), _fmt(m["gpu_hours"], 2), _fmt(m["goodput_per_gpu_hour"], 0),
                  _fmt(m["scale_events"]), _fmt(m["peak_replicas"]),
                  *((_fmt(m["ttft_p90_s"], 2),) if percentiles else ()))
    console.print(t)
    console.print(_fleet_line(setup), highlight=False)
    _print_notes(notes)


def _print_one(setup: Setup, outcome: Outcome) -> None:
    h = _header(setup)
    t = Table(title=f"{outcome.spec.label} on {h['source']}", show_header=False, title_justify="left")
    for key, value in h.items():
        t.add_row(key, _fmt(value, 2))
    for key, value in outcome.measures().items():
        if key not in ("requests", "label") and not (setup.traffic.fluid and key.endswith("_s")):
            t.add_row(key, _fmt(value))
    t.add_row("source of the rules", outcome.spec.source)
    console.print(t)
    _print_notes(setup.notes)


def _print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        console.print(f"note: {note}", highlight=False)


def _list_policies() -> None:
    t = Table(title="request-level policies (--policy KEY, --knob VALUE)", title_justify="left")
    for col in ("policy", "what it is", "knob", "source"):
        t.add_column(col, no_wrap=col == "policy")
    for spec in POLICIES.values():
        t.add_row(spec.key, spec.label + (" (a bound: reads the future)" if spec.clairvoyant else ""), spec.knob,
                  spec.source)
    console.print(t)


@one_line_errors(SimulationInputError, ForecastInputError)
def run_request_level(run: RequestLevelRun) -> None:
    """What `--level request` prints: one policy's measures, or with `compare` every policy's in one table."""
    if run.list_policies:
        _list_policies()
        return
    key = run.policy or DEFAULT_POLICY
    if not run.compare and key not in POLICIES:
        raise SimulationInputError(f"unknown policy {key!r}; choose one of {', '.join(POLICIES)}")
    if run.compare and run.knob is not None:
        raise SimulationInputError("--compare runs every policy at its default knob: leave --knob out")
    setup = _setup(run)
    if run.compare:
        outcomes, skipped = compare(setup)
        notes = [*setup.notes, *(f"skipped {why}" for why in skipped)]
        if run.as_json:
            print(_dumps({**_header(setup), "notes": notes, "policies": [_json(o) for o in outcomes]}))
        else:
            _print_compare(setup, outcomes, notes)
        return
    outcome = run_policy(setup, key, run.knob)
    if run.as_json:
        print(_dumps({**_header(setup), "notes": list(setup.notes), **_json(outcome)}))
    else:
        _print_one(setup, outcome)
