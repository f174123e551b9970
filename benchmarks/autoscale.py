"""Autoscaling policies compared as users judge them: SLO attainment against the GPU-hours it cost.

Usage: PYTHONPATH=src .venv/bin/python benchmarks/autoscale.py [--trace FILE ...] [--quick] [--plot-dir DIR]
       [--jobs 2] [--load 3] [--ttft 1] [--tpot 0.1]

Protocol (docs/benchmarks/autoscale.md), per trace:

1. Fleet: Llama-3.1-8B on one H100 per replica (the bundled `llama-3.1-8b-h100` step profile; KV blocks as
   `llmobs forecast capacity` computes them; vLLM's defaults, max_model_len 32,768), the profile's default
   SLO TTFT ≤ 1 s and TPOT ≤ 100 ms, cold start 120 s, scraped and synced every 15 s, the HPA's defaults,
   maxReplicaCount = twice the replicas the training part's busiest minute needs at capacity.
2. Parts: training = the first 40 % of the trace's time span, test = the last 60 %.
3. Capacity: requests/s one replica serves at ≥ 99 % of the attainable (6.) in a load test at the training
   part's length mix — its first 2,000 requests on Poisson arrivals, as `vllm bench serve --request-rate`
   sends them — bisected by the policies' `profile_capacity`.
4. Load: the arrival rate is multiplied so that the training part's mean rate is LOAD (3) × capacity (a
   fleet of a few to ~10 replicas), on the trace's own time axis: k whole copies of the trace, each shifted
   by its own offset in [0, 60 s) (wrapped at the end), plus one seeded thinned copy for the fraction.
   Every copy replays the recorded arrivals, so bursts and trends stay; copies get their own prefix-block
   ids (other users, other prompts). Rate-window files (ServeGen) are drawn at the scaled rate.
5. Runs: every policy gets one simulation of the whole trace per knob of its own grid (policies are causal:
   one run gives both parts). The fleet starts with 1.5 × the replicas the first 5 minutes need at capacity.
   Traces of a week or more go through the fluid simulator (`llmobs.simulate.fluid`), same protocol.
6. Measures on a part: attainment = share of the requests arriving in it with TTFT ≤ 1 s and TPOT ≤ 100 ms
   (rejected and unfinished ones missed); GPU-hours of every replica (starting, ready, draining) over the
   part; goodput (requests within the SLO) per GPU-hour; scale events. Target: 99 % of the attainable =
   0.99 × the share of the part's requests that meet the SLO served alone on an idle replica (1.0 unless
   prompts are too long to prefill within the TTFT or to fit max_model_len, as some of Mooncake's).
7. Per policy: the frontier (test attainment vs GPU-hours over its grid); the fewest test GPU-hours at the
   target; out of sample: the knob cheapest at the target on the training part, frozen, and what it got on
   the test part. The clairvoyant bound (it reads the future) is printed beside them.
8. Per trace ratio = the fewest GPU-hours at the target of the best policy users run today (a–e: every
   policy but llmobs and the bound) ÷ llmobs'. No a–e policy reaches the target → that trace has no ratio
   (inf, skipped, said so); llmobs cannot → 0. `long-trace ratio: Y` = the smallest over traces of a week
   or more; the last line, `ratio: X`, the smallest over all traces. Beside it, llmobs' reactive floor run
   alone (KEDA on rate at 0.8 × capacity): llmobs never proposes fewer replicas, so best a–e ÷ the floor's
   GPU-hours is the most X can be for llmobs on that trace, whatever its knob.

--quick (CI smoke size): the first 20 minutes of each per-request trace, LOAD 2, 2 knobs per policy (and
KEDA on rate at llmobs' floor).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from llmobs.forecast.replay import REACTIVE_UTILIZATION, HpaConfig
from llmobs.simulate import (
    EngineConfig,
    FleetConfig,
    SimulationInputError,
    StepProfile,
    Workload,
    check_slo,
    load_profile,
    load_workload,
    simulate,
)
from llmobs.simulate.control import Controller, ControlView
from llmobs.simulate.policies import POLICIES, PolicyContext, PolicySpec
from llmobs.simulate.results import PartMeasures

REPO = Path(__file__).resolve().parents[1]
TRACE_DIR = REPO / "data" / "traces"
PLOT_DIR = REPO / "docs" / "benchmarks" / "img"
PROFILE = "llama-3.1-8b-h100"
MAX_MODEL_LEN = 32_768  # as benchmarks/requestsim.py and the fluid model's fitted table
TTFT_S, TPOT_S = 1.0, 0.1
COLD_START_S = 120.0
SPLIT = 0.4
LOAD = 3.0  # training part's mean rate ÷ capacity_rps
TARGET = 0.99
LONG_TRACE_S = 7 * 86_400.0
SHIFT_S = 60.0  # each copy of a trace starts at its own offset in [0, SHIFT_S)
PROBE_REQUESTS = 20_000  # a rate-window file's thin draw, for its length mix and attainable share
MAX_SCALED_REQUESTS = 1_000_000  # ~25 s per run, × ~60 runs; the bundled traces scale to at most 173,141
MIN_PART_REQUESTS = 100
MIN_SPAN_S = 300.0  # the window the start is sized on; shorter, the training part is under one cold start (120 s)
MAX_REPLICA_FACTOR = 2.0  # maxReplicaCount = this × the replicas the training part's busiest minute needs
MIN_MAX_REPLICAS = 10
START_WINDOW_S = 300.0  # the initial fleet is sized for this much of the start
START_HEADROOM = 1.5  # … at this many times the replicas its mean rate needs at capacity
LLMOBS = "llmobs"
FLOOR_POLICY = "keda-rate"  # llmobs' reactive floor is exactly this policy at its default threshold
QUICK_LOAD = 2.0
QUICK_SPAN_S = 1200.0
QUICK_KNOBS = 2


@dataclass(frozen=True)
class Trace:
    """One prepared trace: the scaled workload every policy is run on, and what the protocol derived."""

    name: str
    path: Path
    mode: str  # "request" (request-level simulator) or "fluid"
    workload: Workload
    split_s: float
    span_s: float
    capacity_rps: float
    multiplier: float
    initial_replicas: int
    max_replicas: int
    attainable_test: float
    attainable_train: float
    notes: tuple[str, ...] = ()
    origin_s: float = 0.0  # a rate-window file's first window_start_s: its windows are read from there

    @property
    def long(self) -> bool:
        return self.span_s >= LONG_TRACE_S

    def target(self, part: str) -> float:
        return TARGET * (self.attainable_test if part == "test" else self.attainable_train)


@dataclass(frozen=True)
class Outcome:
    """What one (trace, policy, knob) run gave on both parts."""

    trace: int
    policy: str
    knob: float
    train: PartMeasures
    test: PartMeasures
    requests: int
    seconds: float  # CPU seconds of the simulation (a shared machine's wall time would say more about the others)
    policy_seconds: float = 0.0  # of which inside the policy's own decisions (its controller calls)


@dataclass
class Settings:
    ttft_s: float = TTFT_S
    tpot_s: float = TPOT_S
    quick: bool = False
    load: float = LOAD
    hpa: HpaConfig = field(default_factory=HpaConfig)


# --- the fleet -------------------------------------------------------------------------------------------

def engine_for(profile: StepProfile) -> EngineConfig:
    capacity = profile.capacity(context_tokens=MAX_MODEL_LEN)
    return EngineConfig(kv_blocks=capacity.num_blocks, block_size=capacity.block_size, max_model_len=MAX_MODEL_LEN)


def fleet_config(profile: StepProfile, initial: int, ttft_s: float, max_replicas: int = 1000) -> FleetConfig:
    return FleetConfig(engine_for(profile), profile, model="llama-3.1-8b", initial_replicas=initial,
                       max_replicas=max_replicas, cold_start_s=COLD_START_S, ttft_slo_s=ttft_s)


# --- load scaling ----------------------------------------------------------------------------------------

def head(w: Workload, until_s: float) -> Workload:
    """The requests arriving before `until_s`."""
    n = int(np.searchsorted(w.arrival, until_s, side="left"))
    return Workload(w.source, w.arrival[:n], w.prompt[:n], w.output[:n], w.hashes[:n] if w.hashes else (),
                    w.hash_block_tokens, w.notes)


def multiply_rate(w: Workload, factor: float, span_s: float, seed: int = 0) -> Workload:
    """The trace's arrival rate × `factor` on the same time axis: whole copies, each shifted by a seeded
    offset in [0, SHIFT_S) and wrapped at `span_s`, plus one copy thinned to the fraction left."""
    rng = np.random.default_rng(seed)
    whole, fraction = int(factor), factor - int(factor)
    ids = [x for h in w.hashes for x in h] if w.hashes else []
    top = 1 + max(ids) - min(0, *ids) if ids else 0  # copies' ids stay apart even when a file has negative ones
    arrivals, prompts, outputs, hashes = [], [], [], []
    for copy in range(whole + (fraction > 0)):
        keep = np.ones(len(w), dtype=bool) if copy < whole else rng.random(len(w)) < fraction
        shift = 0.0 if copy == 0 else float(rng.uniform(0.0, SHIFT_S))
        arrivals.append((w.arrival[keep] + shift) % span_s)
        prompts.append(w.prompt[keep])
        outputs.append(w.output[keep])
        if w.hashes:
            hashes += [tuple(x + copy * top for x in h) for h, k in zip(w.hashes, keep, strict=True) if k]
    arrival = np.concatenate(arrivals)
    order = np.argsort(arrival, kind="stable")
    return Workload(w.source, arrival[order], np.concatenate(prompts)[order], np.concatenate(outputs)[order],
                    tuple(hashes[i] for i in order) if hashes else (), w.hash_block_tokens,
                    (*w.notes, f"arrival rate ×{factor:.3g} (shifted copies of the trace)"))


def alone_attainment(w: Workload, config: FleetConfig, split_s: float, ttft_s: float,
                     tpot_s: float) -> tuple[float, float]:
    """(training, test) share of the requests that meet the SLO served alone on an idle replica: the most any
    fleet can attain (a prompt too long to prefill within the TTFT misses whatever the fleet size)."""
    isolated = Workload(w.source, np.arange(len(w)) * 1000.0, w.prompt, w.output, w.hashes, w.hash_block_tokens)
    met = simulate(isolated, replace(config, initial_replicas=1)).met(ttft_s, tpot_s)
    train = w.arrival < split_s
    return float(met[train].mean()) if train.any() else 1.0, float(met[~train].mean()) if (~train).any() else 1.0


# --- preparing a trace -----------------------------------------------------------------------------------

def capacity_of(training: Workload, config: FleetConfig, settings: Settings) -> float:
    """Requests/s one replica serves at ≥ 99 % of the attainable, in a load test at the training part's length
    mix: its first 2,000 requests vLLM admits, on Poisson arrivals (as `vllm bench serve --request-rate` sends
    them), bisected — `llmobs.simulate.policies.load_test_capacity`, the same load test `llmobs forecast
    simulate` profiles a user's traffic with. The target is relative to what the same requests attain alone,
    so a trace with prompts too long for the TTFT still has a capacity."""
    from llmobs.simulate.policies import load_test_capacity

    return float(load_test_capacity(training, config, settings.ttft_s, settings.tpot_s, attainment=TARGET))


def prepare(path: Path, profile: StepProfile, settings: Settings, seed: int = 0) -> Trace:
    """Read, size and scale one trace (protocol steps 1–4, 6)."""
    base = fleet_config(profile, 1, settings.ttft_s)
    if _is_windows(path):
        return _prepare_windows(path, base, settings, seed)
    raw = load_workload(path)
    span = float(raw.arrival[-1]) if len(raw) else 0.0
    if settings.quick:
        span = min(span, QUICK_SPAN_S)
    raw = head(raw, span)
    if span < MIN_SPAN_S:
        raise SimulationInputError(f"{path}: spans {span:g} s, less than {MIN_SPAN_S:g} s: too short for a cold "
                                   f"start ({COLD_START_S:g} s) and a few syncs in each part")
    split = SPLIT * span
    train = head(raw, split)
    if len(train) < 2 or not split > 0:
        raise SimulationInputError(f"{path}: too few requests to split into a training and a test part")
    attain_train, attain_test = alone_attainment(raw, base, split, settings.ttft_s, settings.tpot_s)
    capacity = capacity_of(train, base, settings)
    multiplier = settings.load * capacity / (len(train) / split)
    _check_size(path, len(raw) * multiplier)
    workload = multiply_rate(raw, multiplier, span, seed)
    _check_parts(path, workload, split)
    start_rate = float(np.searchsorted(workload.arrival, START_WINDOW_S)) / START_WINDOW_S
    minutes = np.bincount((workload.arrival[workload.arrival < split] // 60).astype(np.int64))
    return Trace(path.stem, path, "request", workload, split, span, capacity, multiplier,
                 _replicas(start_rate, capacity, START_HEADROOM),
                 _replicas(minutes.max() / 60.0, capacity, MAX_REPLICA_FACTOR), attain_test, attain_train,
                 workload.notes)


def _prepare_windows(path: Path, base: FleetConfig, settings: Settings, seed: int) -> Trace:
    """A rate-window file: sized from a thin draw (its length mix, what is attainable) and the window table
    (its rates); drawn at scale for the request-level simulator, or handed to the fluid one when ≥ a week."""
    from llmobs.simulate.workload import rate_window_columns, read_trace_csv

    start, raw_rate, _, _ = rate_window_columns(read_trace_csv(path), str(path))  # what the draws will refuse
    if np.isinf(raw_rate).any():
        row = int(np.flatnonzero(np.isinf(raw_rate))[0])
        raise SimulationInputError(f"{path}: total_rate_rps row {row + 2} is not finite")
    rate = np.nan_to_num(raw_rate).clip(0, None)
    origin = float(start[0]) if len(start) else 0.0  # the draws start there: a file cut from a longer one
    width = float(np.median(np.diff(start))) if len(start) > 1 else 600.0
    span = float(start[-1] - start[0]) + width if len(start) else 0.0
    total = float(rate.sum()) * width
    if not total > 0:
        raise SimulationInputError(f"{path}: no window with traffic (total_rate_rps is 0 or missing everywhere)")
    long = span >= LONG_TRACE_S
    if settings.quick and not long:
        span = min(span, QUICK_SPAN_S)
    split = SPLIT * span
    probe = load_workload(path, seed=seed, rate_scale=PROBE_REQUESTS / total, start_s=origin, duration_s=span)
    train_windows = (start - origin < split) & (rate > 0)  # rate 0 is a gap in the data, not idle time
    if not train_windows.any():
        raise SimulationInputError(f"{path}: no window with traffic in the training part (the first {split:g} s)")
    base_rate = float(rate[train_windows].mean())
    attain_train, attain_test = alone_attainment(probe, base, split, settings.ttft_s, settings.tpot_s)
    capacity = capacity_of(head(probe, split), base, settings)
    multiplier = settings.load * capacity / base_rate
    first_rate = float(rate[rate > 0][0]) * multiplier
    most = _replicas(float(rate[train_windows].max()) * multiplier, capacity, MAX_REPLICA_FACTOR)
    if long:
        workload, mode = probe, "fluid"  # the policies read the length mix off it; the fluid run reads the rates
    else:
        _check_size(path, float(rate[start - origin < span].sum()) * width * multiplier)
        workload = load_workload(path, seed=seed, start_s=origin, duration_s=span, rate_scale=multiplier)
        mode = "request"
        _check_parts(path, workload, split)
    return Trace(path.stem, path, mode, workload, split, span, capacity, multiplier,
                 _replicas(first_rate, capacity, START_HEADROOM), most, attain_test, attain_train, workload.notes,
                 origin)


def _check_size(path: Path, requests: float) -> None:
    """Refuse a scaled trace too big to simulate request by request within the benchmark's time: a training
    part nearly empty (three requests before a long quiet spell) or a huge --load multiplies into hundreds of
    millions of requests."""
    if requests > MAX_SCALED_REQUESTS:
        raise SimulationInputError(
            f"{path}: scaled to LOAD × capacity it would be ~{requests:,.0f} requests, more than "
            f"{MAX_SCALED_REQUESTS:,} (the training part is nearly empty, or --load is too high)")


def _check_parts(path: Path, workload: Workload, split_s: float) -> None:
    """Each part needs enough requests for its attainment to mean something: with fewer than
    MIN_PART_REQUESTS, one request is more than a point of it."""
    train = int(np.searchsorted(workload.arrival, split_s, side="left"))
    for part, n in (("training", train), ("test", len(workload) - train)):
        if n < MIN_PART_REQUESTS:
            raise SimulationInputError(
                f"{path}: after scaling, the {part} part has {n} request(s), fewer than {MIN_PART_REQUESTS} "
                "(one request would be more than a point of attainment): a longer trace or a higher --load")


def _replicas(rate: float, capacity: float, factor: float) -> int:
    return max(1, math.ceil(factor * rate / capacity))


def _is_windows(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return "window_start_s" in f.readline()
    except OSError:
        return False  # load_workload says what is wrong with it


# --- one run (in a worker) -------------------------------------------------------------------------------

_TRACES: list[Trace] = []
_SETTINGS = Settings()


def _init(traces: list[Trace], settings: Settings) -> None:
    global _TRACES, _SETTINGS  # a pool worker's read-only copy of what every job needs
    _TRACES, _SETTINGS = traces, settings


def context_for(trace: Trace, spec: PolicySpec, settings: Settings) -> PolicyContext:
    config = fleet_config(load_profile(PROFILE), trace.initial_replicas, settings.ttft_s, trace.max_replicas)
    hpa = replace(settings.hpa, max_replicas=trace.max_replicas)
    capacity, future = trace.capacity_rps, trace.workload if spec.clairvoyant else None
    if spec.clairvoyant and trace.mode == "fluid":
        future, weight = rate_future(trace)
        capacity /= weight
    return PolicyContext(config, settings.ttft_s, settings.tpot_s, capacity, hpa,
                         training=head(trace.workload, trace.split_s), future=future)


def rate_future(trace: Trace, per_bucket: int = 20, bucket_s: float = 15.0) -> tuple[Workload, float]:
    """The future of a rate-window trace for the clairvoyant bound, which counts the GPU work arriving per
    15 s: `per_bucket` pseudo-requests per bucket at the window's mean lengths, each standing for `weight`
    requests (the fluid run's own demand, gaps filled as it fills them). The bound's arithmetic is linear in
    the capacity it is given, so capacity ÷ weight per pseudo-request plans exactly what the real count
    needs (lengths at their means: the work of a request is linear in each length but for a KV term that
    is negligible at ServeGen's short outputs)."""
    from llmobs.simulate import fluid

    w = fluid.fill_gaps(fluid.load_rate_windows(trace.path, rate_scale=trace.multiplier))
    edges = np.append(w.start, w.start[-1] + w.width_s)
    t = np.arange(0.0, float(edges[-1]), bucket_s)
    window = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(w) - 1)
    expected = w.rate[window] * bucket_s
    weight = max(1.0, float(expected.mean()) / per_bucket)
    whole = np.diff(np.floor(np.concatenate(([0.0], np.cumsum(expected / weight)))))  # keeps the total exact
    count = whole.astype(np.int64)
    bucket = np.repeat(np.arange(len(t)), count)
    rank = np.arange(len(bucket)) - np.repeat(np.cumsum(count) - count, count)  # 0, 1, … within its bucket
    arrival = t[bucket] + rank / np.repeat(count, count) * bucket_s  # spread evenly over the bucket
    prompt = np.ceil(w.mean_prompt[window][bucket]).clip(1).astype(np.int64)
    output = np.ceil(w.mean_output[window][bucket]).clip(1).astype(np.int64)
    return Workload(w.source, arrival, prompt, output), weight


class TimedController:
    """A policy's controller, with the CPU time spent inside its decisions counted: that is the policy's
    own cost (Dynamo's planner refits an ARIMA model every 180 s, as its pod would), not the simulator's,
    whose speed the benchmark reports apart. The views it is handed (pages rendered and read, signals) are
    the simulator's work and stay on its side."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.seconds = 0.0

    def __call__(self, view: ControlView) -> int | None:
        t0 = time.process_time()
        try:
            return self.controller(view)
        finally:
            self.seconds += time.process_time() - t0


def run_one(job: tuple[int, str, float]) -> Outcome:
    """Simulate one trace under one policy at one knob; both parts' measures."""
    index, key, knob = job
    trace, settings = _TRACES[index], _SETTINGS
    spec = POLICIES[key]
    context = context_for(trace, spec, settings)
    ttft, tpot = settings.ttft_s, settings.tpot_s
    t0 = time.process_time()
    if trace.mode == "request":
        controller = TimedController(spec.build(knob, context))
        result = simulate(trace.workload, context.fleet, controller)
        seconds = time.process_time() - t0
        return Outcome(index, key, knob, result.part(0.0, trace.split_s, ttft, tpot),
                       result.part(trace.split_s, math.inf, ttft, tpot), len(result), seconds, controller.seconds)
    from llmobs.simulate import fluid

    demand = fluid.load_rate_windows(trace.path, rate_scale=trace.multiplier, start_s=trace.origin_s)
    run = fluid.simulate_fluid(demand, context.fleet, spec.build(knob, context))
    seconds = time.process_time() - t0
    return Outcome(index, key, knob, fluid_part(run, 0.0, trace.split_s, ttft, tpot),
                   fluid_part(run, trace.split_s, math.inf, ttft, tpot), round(run.requests), seconds)


def fluid_part(run: Any, start: float, end: float, ttft_s: float, tpot_s: float) -> PartMeasures:
    """A fluid run's measures of [start, end), as `SimulationResult.part` gives them (expected requests, by
    the sync step they arrive in)."""
    mid = run.step_start + run.step_s / 2
    inside = (mid >= start) & (mid < end)
    changes = sum(1 for t, *_ in run.replica_timeline[1:] if start <= t < end)
    return PartMeasures(start, end, round(float(run.arrivals[inside].sum())),
                        round(float(run.met(ttft_s, tpot_s)[inside].sum())),
                        run.gpu_seconds_between(start, end) / 3600.0, changes)


# --- reading the runs ------------------------------------------------------------------------------------

def frontier(points: Sequence[Outcome]) -> list[Outcome]:
    """The runs no other run beats on both test attainment and test GPU-hours, cheapest first."""
    best: list[Outcome] = []
    for o in sorted(points, key=lambda o: (o.test.gpu_hours, -o.test.attainment)):
        if not best or o.test.attainment > best[-1].test.attainment:
            best.append(o)
    return best


def cheapest_at(points: Sequence[Outcome], part: str, target: float) -> Outcome | None:
    ok = [o for o in points if getattr(o, part).attainment >= target]
    return min(ok, key=lambda o: getattr(o, part).gpu_hours) if ok else None


def out_of_sample(points: Sequence[Outcome], trace: Trace) -> tuple[Outcome, bool]:
    """The knob a user would freeze after the training part: the cheapest reaching the target there, or,
    when none does, the one with the highest training attainment (False: the target was not reached)."""
    chosen = cheapest_at(points, "train", trace.target("train"))
    if chosen is not None:
        return chosen, True
    return max(points, key=lambda o: (o.train.attainment, -o.train.gpu_hours)), False


def trace_ratio(fewest: dict[str, float | None]) -> float:
    """Best a–e policy's fewest GPU-hours at the target ÷ llmobs'; inf when no a–e policy reaches it, 0 when
    llmobs cannot."""
    rivals = [v for k, v in fewest.items() if k != LLMOBS and not POLICIES[k].clairvoyant and v is not None]
    if not rivals:
        return math.inf
    ours = fewest.get(LLMOBS)
    return 0.0 if ours is None else min(rivals) / ours


def report_trace(trace: Trace, runs: list[Outcome]) -> tuple[float, float]:
    """Print one trace's tables; return its ratio and the most that ratio could be with llmobs' floor (inf
    when no a–e policy reaches the target or the floor was not run)."""
    target = trace.target("test")
    print(f"== {trace.name}: {trace.span_s / 3600:.1f} h, {trace.mode}-level, {len(trace.workload):,} requests"
          f"{'' if trace.mode == 'request' else ' (a thin draw: the fluid model runs on rates)'}; "
          f"capacity {trace.capacity_rps:.3g} req/s per replica; arrival rate ×{trace.multiplier:.3g}; "
          f"{trace.initial_replicas} replicas at start, at most {trace.max_replicas}; "
          f"split at {trace.split_s / 3600:.2f} h")
    print(f"   target: test attainment ≥ {target:.4f} (99 % of the {trace.attainable_test:.4f} attainable: "
          f"requests served alone on an idle replica that meet the SLO)")
    fewest: dict[str, float | None] = {}
    print(f"   {'policy':<15} {'fewest GPU-h at target (knob)':<30} {'out of sample: knob':<22} "
          f"{'test att':>8} {'GPU-h':>7} {'goodput/GPU-h':>13} {'events':>6}")
    for key, spec in POLICIES.items():
        points = [o for o in runs if o.policy == key]
        if not points:
            continue
        best = cheapest_at(points, "test", target)
        fewest[key] = best.test.gpu_hours if best else None
        chosen, reached = out_of_sample(points, trace)
        where = f"{best.test.gpu_hours:.2f} ({best.knob:g})" if best else "cannot reach at any knob"
        flag = "" if reached else " (!)"
        print(f"   {key + (' [bound]' if spec.clairvoyant else ''):<15} {where:<30} "
              f"{f'{chosen.knob:g}{flag}':<22} {chosen.test.attainment:8.4f} {chosen.test.gpu_hours:7.2f} "
              f"{chosen.test.goodput_per_gpu_hour:13.0f} {chosen.test.scale_events:6d}")
    if any(not out_of_sample([o for o in runs if o.policy == k], trace)[1] for k in fewest):
        print("   (!) no knob reached the target on the training part: the one with the highest training "
              "attainment was frozen")
    print("   frontier (test GPU-h → attainment, cheapest first):")
    for key in fewest:
        pts = frontier([o for o in runs if o.policy == key])
        print(f"     {key:<15} " + "  ".join(f"{o.test.gpu_hours:.2f}→{o.test.attainment:.4f}" for o in pts))
    r = trace_ratio(fewest)
    why = ("no a–e policy reaches the target: no ratio for this trace" if math.isinf(r) else
           "llmobs cannot reach the target" if r == 0 else "")
    print(f"   trace ratio (best a–e ÷ llmobs, fewest GPU-h at target): {r:.3f}{'  — ' + why if why else ''}")
    floor, ceiling = floor_alone(trace, runs), math.inf
    if floor is not None:
        rivals = [v for k, v in fewest.items() if k != LLMOBS and not POLICIES[k].clairvoyant and v is not None]
        if rivals and floor.test.gpu_hours > 0:
            ceiling = min(rivals) / floor.test.gpu_hours
        print(f"   llmobs' reactive floor alone ({FLOOR_POLICY} at {REACTIVE_UTILIZATION:g} × capacity = "
              f"{floor.knob:g} req/s): test {floor.test.gpu_hours:.2f} GPU-h, attainment {floor.test.attainment:.4f}"
              + (f"; best a–e ÷ this = {ceiling:.3f}, the most llmobs' ratio can be" if math.isfinite(ceiling) else ""))
        ours = [o.test.attainment - floor.test.attainment for o in runs if o.policy == LLMOBS]
        if ours:
            print(f"   never worse than the floor: llmobs' test attainment minus the floor's, over its knobs: "
                  f"{min(ours):+.4f} to {max(ours):+.4f}")
    return r, ceiling


def plot(trace: Trace, runs: list[Outcome], out_dir: Path) -> Path:
    """Attainment vs GPU-hours on the test part, one line per policy over its knob grid (in knob order). The
    attainment axis is a logit scale, so 90 %, 99 % and 99.9 % are as far apart as the choice between them
    matters to users; values are clipped to [0.1 %, 99.99 %] to stay on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    low, high = 1e-3, 1 - 1e-4
    fig, ax = plt.subplots(figsize=(10, 5))
    for key, spec in POLICIES.items():
        pts = sorted((o for o in runs if o.policy == key), key=lambda o: o.knob)
        if not pts:
            continue
        ax.plot([o.test.gpu_hours for o in pts], [min(high, max(low, o.test.attainment)) for o in pts],
                marker="o", markersize=3, linestyle="--" if spec.clairvoyant else "-",
                linewidth=2.4 if key == LLMOBS else 1.2, label=spec.label)
    target = trace.target("test")
    ax.axhline(target, color="grey", linewidth=0.8, linestyle=":", label=f"target {target:.2%}")
    ax.set_yscale("logit")
    floor = min(0.5, max(low, min([o.test.attainment for o in runs] + [target]) * 0.9))
    ax.set_ylim(floor, 1 - 5e-5)  # a little room above the clipped 99.99 %
    ticks = [t for t in (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999) if t >= floor]
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{100 * t:g} %" for t in ticks]))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("GPU-hours on the test part (last 60 % of the trace)")
    ax.set_ylabel("SLO attainment: TTFT ≤ 1 s and TPOT ≤ 100 ms (logit scale)")
    ax.set_title(f"{trace.name}: each policy over its knob grid ({trace.mode}-level)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"autoscale-{trace.name}.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# --- main ------------------------------------------------------------------------------------------------

def grid_of(spec: PolicySpec, trace: Trace, settings: Settings) -> tuple[float, ...]:
    context = context_for(trace, spec, settings)
    grid = tuple(spec.grid(context))
    if settings.quick and len(grid) > QUICK_KNOBS:
        grid = tuple(grid[round(i * (len(grid) - 1) / (QUICK_KNOBS - 1))] for i in range(QUICK_KNOBS))
        if spec.key == FLOOR_POLICY:  # the floor-alone line (`floor_alone`) needs it
            grid = tuple(sorted({*grid, floor_knob(trace)}))
    return grid


def floor_knob(trace: Trace) -> float:
    """KEDA-on-rate's threshold that equals llmobs' reactive floor (its grid rounds the same way)."""
    return round(trace.capacity_rps * REACTIVE_UTILIZATION, 4)


def floor_alone(trace: Trace, runs: Sequence[Outcome]) -> Outcome | None:
    """The run of llmobs' reactive floor by itself: KEDA on the request rate at REACTIVE_UTILIZATION × the
    profiled capacity. llmobs never proposes fewer replicas than it (item: never worse than reactive), so
    its GPU-hours are what llmobs can at best cost on this trace, whatever its knob."""
    knob = floor_knob(trace)
    return next((o for o in runs if o.policy == FLOOR_POLICY and math.isclose(o.knob, knob)), None)


def guarded_run(job: tuple[int, str, float]) -> Outcome | str:
    """`run_one`, or one line saying why that run could not be made (the others go on)."""
    try:
        return run_one(job)
    except (SimulationInputError, ValueError) as exc:
        index, key, knob = job
        return f"{_TRACES[index].name}: {key} at knob {knob:g} failed: {exc}"


def run_all(traces: list[Trace], settings: Settings, jobs: int) -> tuple[list[Outcome], list[str]]:
    work = [(i, key, knob) for i, t in enumerate(traces) for key, spec in POLICIES.items()
            for knob in grid_of(spec, t, settings)]
    # the longest runs first, so the two workers end together
    work.sort(key=lambda j: -math.inf if traces[j[0]].mode == "fluid" else -len(traces[j[0]].workload))
    if jobs <= 1:
        _init(traces, settings)
        done = [guarded_run(j) for j in work]
    else:
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_init, initargs=(traces, settings)) as pool:
            done = list(pool.imap_unordered(guarded_run, work, chunksize=1))
    return [o for o in done if isinstance(o, Outcome)], [o for o in done if isinstance(o, str)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--trace", action="append", type=Path, help="trace file (repeatable; default: data/traces/*.csv)")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke size: 20 minutes per trace, LOAD 2, 2 knobs per policy")
    ap.add_argument("--plot-dir", type=Path, default=PLOT_DIR, help="where autoscale-<trace>.png go")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    ap.add_argument("--ttft", type=float, default=TTFT_S, help="TTFT SLO, seconds (default 1)")
    ap.add_argument("--tpot", type=float, default=TPOT_S, help="TPOT SLO, seconds (default 0.1)")
    ap.add_argument("--load", type=float, help=f"training part's mean rate ÷ one replica's capacity (default "
                    f"{LOAD:g}; {QUICK_LOAD:g} with --quick)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    load = args.load if args.load is not None else QUICK_LOAD if args.quick else LOAD
    if not (math.isfinite(load) and load > 0):
        print(f"autoscale: --load must be > 0, not {load!r}", file=sys.stderr)
        return 2
    settings = Settings(args.ttft, args.tpot, args.quick, load)
    profile = load_profile(PROFILE)
    paths = args.trace or sorted(TRACE_DIR.glob("*.csv"))
    try:
        check_slo(fleet_config(profile, 1, settings.ttft_s), settings.ttft_s, settings.tpot_s)
    except SimulationInputError as exc:
        print(f"autoscale: {exc}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"autoscale: --jobs must be ≥ 1, not {args.jobs}", file=sys.stderr)
        return 2
    unique = list(dict.fromkeys(p.resolve() for p in paths))  # a file given twice is run once
    traces = []
    for path in unique:
        try:
            trace = prepare(path, profile, settings)
        except (SimulationInputError, ValueError) as exc:  # ValueError: numpy/pandas on input no check foresaw
            print(f"autoscale: skipping {path.name}: {' '.join(str(exc).split())}", file=sys.stderr)
            continue
        taken = {t.name for t in traces}
        if trace.name in taken:  # two files of one name in different folders: results and plots apart
            trace = replace(trace, name=next(f"{trace.name}-{k}" for k in range(2, len(traces) + 3)
                                             if f"{trace.name}-{k}" not in taken))
        traces.append(trace)
    if not traces:
        print("autoscale: no trace left to run", file=sys.stderr)
        return 2
    print(f"profile {profile.name} (1 GPU per replica), SLO TTFT ≤ {settings.ttft_s:g} s and TPOT ≤ "
          f"{settings.tpot_s * 1000:g} ms, cold start {COLD_START_S:g} s, HPA defaults "
          f"(tolerance {settings.hpa.tolerance:g}, scale-down stabilization "
          f"{settings.hpa.scale_down_stabilization_s:g} s); {len(POLICIES)} policies; {args.jobs} worker(s)")
    runnable = [t for t in traces if t.mode == "request" or _fluid_available()]
    for t in traces:
        if not any(t is r for r in runnable):
            print(f"== {t.name}: skipped — a trace of a week or more needs llmobs.simulate.fluid, not installed")
    runs, failures = run_all(runnable, settings, args.jobs)
    for line in failures:
        print(f"autoscale: {line}", file=sys.stderr)
    ratios: dict[str, float] = {}
    ceilings: dict[str, float] = {}
    for i, t in enumerate(runnable):
        mine = [o for o in runs if o.trace == i]
        if not mine:
            print(f"== {t.name}: no run finished (see the lines above)")
            continue
        ratios[t.name], ceilings[t.name] = report_trace(t, mine)
        print(f"   plot: {plot(t, mine, args.plot_dir)}")
    req = [o for o in runs if runnable[o.trace].mode == "request"]
    sim_requests, sim_seconds = sum(o.requests for o in req), sum(o.seconds for o in req)
    if sim_seconds > 0:
        decisions = sum(o.policy_seconds for o in req)
        print(f"request-level simulator: {sim_requests:,} requests in {len(req)} runs, {sim_seconds:.1f} CPU-s "
              f"= {sim_requests / sim_seconds:,.0f} simulated requests/s per core with the policies' decisions; "
              f"those took {decisions:.1f} CPU-s, so the simulator alone (serving, scrapes: pages rendered and "
              f"read, signals) {sim_requests / max(sim_seconds - decisions, 1e-9):,.0f} simulated requests/s per core")
        # Per trace, because the total mixes two regimes: on a dense trace the engine's steps dominate, on a
        # sparse one the pages (a replica is rendered and read every 15 s however few requests it served).
        per_trace = []
        for i, t in enumerate(runnable):
            mine = [o for o in req if o.trace == i]
            cpu_s = sum(o.seconds for o in mine)
            if mine and cpu_s > 0:
                per_trace.append(f"{t.name} {sum(o.requests for o in mine) / cpu_s:,.0f}")
        print(f"   by trace (simulated requests/s per core): {', '.join(per_trace)}")
    fluid_runs = [o for o in runs if runnable[o.trace].mode == "fluid"]
    if fluid_runs:
        print(f"fluid simulator: {len(fluid_runs)} runs, {sum(o.seconds for o in fluid_runs):.1f} CPU-s")
    cpu = sum(o.seconds for o in runs)
    print(f"all runs: {cpu:.1f} CPU-s (≈ {cpu / max(1, args.jobs):.0f} s on {args.jobs} free core(s))")
    long = [r for t in runnable if t.long and not math.isinf(r := ratios[t.name])]
    print(f"long-trace ratio: {min(long):.3f}" if long else
          "long-trace ratio: none (no trace of a week or more has a ratio)")
    finite = {k: v for k, v in ratios.items() if not math.isinf(v)}
    bound = [v for k, v in ceilings.items() if k in finite and math.isfinite(v)]
    if bound:
        print(f"the most `ratio` can be while llmobs keeps its reactive floor (best a–e ÷ the floor alone, smallest "
              f"over traces): {min(bound):.3f}")
    skipped = sorted(set(ratios) - set(finite))
    if skipped:
        print(f"traces without a ratio (no a–e policy reaches the target): {', '.join(skipped)}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    print(f"ratio: {min(finite.values()):.3f}" if finite else "ratio: inf (no trace has an a–e policy at the target)")
    return 0


def _fluid_available() -> bool:
    try:
        from llmobs.simulate import fluid  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
