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
MIN_POLLING_INTERVAL_S = 1.0
"""KEDA's pollingInterval and the HPA's sync period are whole seconds: a faster loop is no real autoscaler
(and at 1 ms a five-minute trace is 300,000 syncs, each scraping every replica's page)."""
MAX_START_REPLICAS = 1_000
"""Most replicas a request-level run may start with or keep as its minimum: each one is a simulated vLLM
whose page is rendered and read every 15 s (~0.4 ms of CPU), so 100,000 of them never finish. Traffic that
needs more replicas than this has more requests than the request level takes and runs in the fluid mode."""
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


def _check_options(run: RequestLevelRun) -> None:
    """Refuse options that would do nothing with this traffic source, and sizes no simulation finishes: an
    option silently ignored reads as an answer to a question the run never asked."""
    if run.trace is not None:
        prometheus_only = {"--model": run.model, "--history": None if run.history_s == 3600.0 else run.history_s,
                           "--promql": None if run.promql == "llmobs" else run.promql, "--step": run.step_s,
                           "--mean-prompt-tokens": run.mean_prompt_tokens,
                           "--mean-output-tokens": run.mean_output_tokens}
        given = [name for name, value in prometheus_only.items() if value is not None]
        if given:
            raise SimulationInputError(f"{', '.join(given)}: options of --prometheus; a --trace carries its own "
                                       "requests and lengths")
    elif run.prometheus is not None and (run.start_s != 0.0 or run.duration_s is not None):
        raise SimulationInputError("--start and --duration cut a --trace; with --prometheus, --history says how far "
                                   "back to read")
    if not run.polling_interval_s >= MIN_POLLING_INTERVAL_S:
        raise SimulationInputError(f"--polling-interval {run.polling_interval_s:g}s: KEDA polls and the HPA syncs "
                                   f"at most once a second (≥ {MIN_POLLING_INTERVAL_S:g}s)")
    for option, value in (("--min-replicas", run.min_replicas), ("--initial-replicas", run.initial_replicas)):
        if value is not None and value > MAX_START_REPLICAS:
            raise SimulationInputError(
                f"{option} {value:,}: a request-level run simulates every replica's vLLM and reads its page "
                f"every 15 s; at most {MAX_START_REPLICAS:,} (traffic for more runs in the fluid mode)")


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
        name = f"{o.spec.key}{' (future)' if o.spec.clairvoyant else ''}"
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
    _print_notes([*setup.notes, *_run_notes(setup, [outcome])])


def _run_notes(setup: Setup, outcomes: Sequence[Outcome]) -> list[str]:
    """What the runs themselves noted beyond the setup's notes (requests vLLM rejected, which every policy
    counts as missing the SLO), once each: the same traffic gives every policy the same ones."""
    seen = set(setup.notes)
    out: list[str] = []
    for o in outcomes:
        for note in o.result.notes:
            if note not in seen:
                seen.add(note)
                out.append(note)
    return out


def _print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        console.print(f"note: {note}", highlight=False)


def _list_policies() -> None:
    t = Table(title="request-level policies (--policy KEY, --knob VALUE)", title_justify="left")
    for col in ("policy", "what it is", "knob", "source"):
        t.add_column(col, no_wrap=col == "policy")
    for spec in POLICIES.values():
        t.add_row(spec.key, spec.label + (" (reads the future: a reference, not a policy anyone can run)"
                                  if spec.clairvoyant else ""), spec.knob,
                  spec.source)
    console.print(t)


@one_line_errors(SimulationInputError, ForecastInputError)
def run_request_level(run: RequestLevelRun) -> None:
    """What `--level request` prints: one policy's measures, or with `compare` every policy's in one table."""
    if run.list_policies:
        _list_policies()
        return
    key = DEFAULT_POLICY if run.policy is None else run.policy
    if not run.compare and key not in POLICIES:
        raise SimulationInputError(f"unknown policy {key!r}; choose one of {', '.join(POLICIES)}")
    if run.compare and run.knob is not None:
        raise SimulationInputError("--compare runs every policy at its default knob: leave --knob out")
    _check_options(run)
    setup = _setup(run)
    if run.compare:
        outcomes, skipped = compare(setup)
        notes = [*setup.notes, *_run_notes(setup, outcomes), *(f"skipped {why}" for why in skipped)]
        if run.as_json:
            print(_dumps({**_header(setup), "notes": notes, "policies": [_json(o) for o in outcomes]}))
        else:
            _print_compare(setup, outcomes, notes)
        return
    outcome = run_policy(setup, key, run.knob)
    if run.as_json:
        print(_dumps({**_header(setup), "notes": [*setup.notes, *_run_notes(setup, [outcome])], **_json(outcome)}))
    else:
        _print_one(setup, outcome)
