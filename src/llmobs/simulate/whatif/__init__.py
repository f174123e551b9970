"""What each autoscaling policy would have done on a user's own traffic: the request-level mode of
`llmobs forecast simulate`, as a library (`whatif.cli` only parses options and prints). A package of its own
because it uses the policies, which build on the simulator's modules: the simulator never imports it.

The traffic is a trace file (Azure, Mooncake, ServeGen: `load_workload`) or a model's history in Prometheus
(`PrometheusRangeReader`): request rate and token rates per window, from which requests are drawn as from
ServeGen's windows (Poisson arrivals, exponential lengths around each window's means, seeded). Every policy
then runs on the same requests and the same fleet (one profile, one cold start, one HPA), so the rows of a
comparison differ only in the policy.

Traffic of more than `REQUEST_LEVEL_LIMIT` requests runs in the fluid mode (`llmobs.simulate.fluid`: the same
fleet and controllers on rate windows, each replica a model fitted from the request-level simulator): rate
windows (ServeGen, Prometheus) are never drawn as requests then, per-request traces are aggregated.

Choices a user should know, stated in the result's notes: policies that learn (a forecaster, a profiled
capacity) learn from the first `TRAIN_FRACTION` of the traffic (on window-only traffic in the fluid mode,
from about `TRAINING_SAMPLE` requests drawn from its first windows) and are scored on all of it, as the
others are; the fleet starts with enough replicas for the first minute's traffic at the profiled capacity,
as a fleet that has been running would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from llmobs.forecast.demand import COLUMNS, DEFAULT_PROMQL, VLLM_PROMQL, DemandSeries, PrometheusRangeReader, read_trace
from llmobs.forecast.replay import HpaConfig
from llmobs.simulate.engine import EngineConfig
from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.fleet import FleetConfig, check_slo, simulate
from llmobs.simulate.fluid import FluidResult, RateWindows, load_fluid_model, load_rate_windows, simulate_fluid
from llmobs.simulate.policies import POLICIES, PolicyContext, PolicySpec, load_test_capacity
from llmobs.simulate.profile import StepProfile, load_profile
from llmobs.simulate.results import SimulationResult
from llmobs.simulate.workload import Workload, draw_from_rate_windows, load_workload

DEFAULT_PROFILE = "llama-3.1-8b-h100"
MAX_MODEL_LEN = 32_768  # vLLM's context for the bundled Llama 3.1 8B profile, as the benchmarks run it
REQUEST_LEVEL_LIMIT = 2_000_000
"""Most requests one request-level run takes (minutes per policy); more go to the fluid mode."""
MIN_CAPACITY_RPS = 0.001
"""Slowest replica a given capacity may describe: the thresholds of the rate-based policies are fractions of
it, rounded to 4 decimals, so below this they would all read 0."""
TRAIN_FRACTION = 0.4
TRAINING_SAMPLE = 500_000  # most requests drawn for the policies to learn from in the fluid mode
PROMQL = {name: {column: queries[column] for column in COLUMNS}  # the rates; the KV query is not needed here
          for name, queries in (("llmobs", DEFAULT_PROMQL), ("vllm", VLLM_PROMQL))}
FIRST_MINUTE_S = 60.0


@dataclass(frozen=True)
class Traffic:
    """The requests to serve, where they came from, and what was assumed to get them.

    `workload`: every request (None when the traffic is only rate windows too long to draw); `training`: what
    policies may learn from; `fluid_demand`: what the fluid mode serves (a `Workload` or the fluid mode's
    `RateWindows`), None for a request-level run."""

    workload: Workload | None
    training: Workload
    requests: float
    span_s: float
    first_minute_rate: float
    notes: tuple[str, ...] = ()
    fluid_demand: Workload | RateWindows | None = None

    @property
    def source(self) -> str:
        return self.training.source if self.workload is None else self.workload.source

    @property
    def fluid(self) -> bool:
        return self.fluid_demand is not None


def _needs_fluid(count: float) -> bool:
    """True when `count` requests are too many for the request level."""
    return count > REQUEST_LEVEL_LIMIT


FLUID_NOTE = (f"more than {REQUEST_LEVEL_LIMIT:,} requests: fluid mode (each replica a model fitted from the "
              "request-level simulator, on rate windows); no per-request percentiles")


def _of_workload(workload: Workload, notes: tuple[str, ...], fluid: bool) -> Traffic:
    span = float(workload.arrival[-1]) if len(workload) else 0.0
    first = int(np.searchsorted(workload.arrival, FIRST_MINUTE_S, side="right"))
    learn = f"policies that learn saw the first {TRAIN_FRACTION:.0%} of the traffic; all are scored on all of it"
    return Traffic(workload, first_part(workload, TRAIN_FRACTION), float(len(workload)), span,
                   first / FIRST_MINUTE_S, (*notes, *((FLUID_NOTE,) if fluid else ()), learn),
                   workload if fluid else None)


def _of_windows(windows: RateWindows, training: Workload, notes: tuple[str, ...]) -> Traffic:
    """Fluid-mode traffic from rate windows; `training` is drawn from their first windows."""
    span = float(windows.end[-1])
    return Traffic(None, training, float(windows.requests), span, float(windows.rate[0]),
                   (*notes, *windows.notes, FLUID_NOTE,
                    f"policies that learn saw {len(training):,} requests drawn from the first windows; all are "
                    "scored on all the traffic"), windows)


def traffic_from_trace(path: str, *, start_s: float = 0.0, duration_s: float | None = None, seed: int = 0,
                       compress: float = 1.0) -> Traffic:
    """A trace file's requests between `start_s` and `start_s + duration_s`, `compress` times faster.

    Rate-window files (ServeGen) are sized before anything is drawn: their 14 days at ~800 req/s would be a
    billion requests."""
    if _holds_rate_windows(path) and _needs_fluid(_expected_requests(read_trace(path), start_s, duration_s)):
        windows = _compressed(load_rate_windows(path, start_s=start_s, duration_s=duration_s), compress)
        frame = pd.DataFrame({"window_start_s": windows.start, "total_rate_rps": windows.rate,
                              "mean_input_tokens_est": windows.mean_prompt,
                              "mean_output_tokens_est": windows.mean_output})
        return _of_windows(windows, _training_sample(frame, windows.source, seed), ())
    workload = load_workload(path, seed=seed, start_s=start_s, duration_s=duration_s)
    if not len(workload):
        raise SimulationInputError(f"{path}: no requests between {start_s:g}s and "
                                   f"{'the end' if duration_s is None else f'{start_s + duration_s:g}s'}")
    fluid_run = _needs_fluid(len(workload))
    if compress != 1.0:
        workload = workload.compressed(compress)
    return _of_workload(workload, workload.notes, fluid_run)


def _compressed(windows: RateWindows, factor: float) -> RateWindows:
    """Rate windows played `factor` times faster: the same requests in 1/factor of the time."""
    if factor == 1.0:
        return windows
    return replace(windows, start=windows.start / factor, rate=windows.rate * factor,
                   width_s=windows.width_s / factor, notes=(*windows.notes, f"arrivals compressed ×{factor:g}"))


def _training_sample(windows: pd.DataFrame, source: str, seed: int) -> Workload:
    """Requests drawn from the leading windows of the first `TRAIN_FRACTION` of the span, about
    `TRAINING_SAMPLE` of them at most (but at least the first window with traffic)."""
    start = windows["window_start_s"].to_numpy(dtype=float)
    rate = np.nan_to_num(windows["total_rate_rps"].to_numpy(dtype=float))
    width = np.diff(start, append=start[-1] + (start[1] - start[0] if len(start) > 1 else 600.0))
    expected = np.cumsum(rate * width)
    cut = start[0] + (start[-1] + width[-1] - start[0]) * TRAIN_FRACTION
    last = int(np.flatnonzero((start < cut) & (expected <= TRAINING_SAMPLE)).max(initial=0))
    if not (rate[: last + 1] > 0).any() and (rate > 0).any():
        last = int(np.argmax(rate > 0))  # leading gaps: up to the first window with traffic
    last = max(last, min(1, len(start) - 1))  # two windows at least: the draw reads the width off their spacing
    return draw_from_rate_windows(windows.iloc[: last + 1].reset_index(drop=True), source, seed=seed)


def _holds_rate_windows(path: str) -> bool:
    """A ServeGen-style file (rate windows, not requests), told by its header; an unreadable file is left
    to `load_workload` to describe."""
    try:
        return "window_start_s" in pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def _expected_requests(series: DemandSeries, start_s: float, duration_s: float | None) -> float:
    rate = series.request_rate.to_numpy(dtype=float)
    t = np.arange(len(rate)) * series.step_seconds
    keep = (t + series.step_seconds > start_s) & ((t < start_s + duration_s) if duration_s is not None else True)
    return float(np.nansum(rate[keep]) * series.step_seconds)


def traffic_from_prometheus(series: DemandSeries, *, seed: int = 0, compress: float = 1.0,
                            mean_prompt_tokens: float | None = None,
                            mean_output_tokens: float | None = None) -> Traffic:
    """Requests drawn from a Prometheus history's windows: the window's request rate, and mean lengths =
    token rate ÷ request rate.

    Where a window has requests but no token rate, the history's own mean length (all tokens ÷ all
    requests) stands in; a history with no token series at all needs `mean_prompt_tokens` /
    `mean_output_tokens`. Windows without request-rate data are gaps: no requests are drawn there."""
    frame = series.frame
    rate = frame["request_rate"].to_numpy(dtype=float)
    fluid_run = _needs_fluid(float(np.nansum(rate)) * series.step_seconds)
    how_used = ("rate windows, each at its request rate and mean prompt and output tokens" if fluid_run else
                "Poisson arrivals at each window's request rate, exponential lengths around its mean prompt and "
                f"output tokens, seed {seed}")
    notes = [f"{series.source} history: {len(rate)} windows of {series.step_seconds:g}s; {how_used}",
             *series.notes]
    if not (np.isfinite(rate) & (rate > 0)).any():
        raise SimulationInputError(
            f"{series.source} history has no request rate above 0 in any window (all zero, negative, non-finite or "
            "gaps): nothing to simulate; choose a --history with traffic")
    means = {}
    for column, what, given, option in (
            ("prompt_tokens_rate", "prompt", mean_prompt_tokens, "--mean-prompt-tokens"),
            ("generation_tokens_rate", "output", mean_output_tokens, "--mean-output-tokens")):
        tokens = frame[column].to_numpy(dtype=float) if column in frame else np.full(len(rate), np.nan)
        per_request = np.full(len(rate), np.nan)
        served = np.isfinite(rate) & (rate > 0)
        np.divide(tokens, rate, out=per_request, where=served)
        known = served & np.isfinite(per_request) & (per_request > 0)
        if known.any():
            overall = float(np.nansum(tokens[known]) / np.nansum(rate[known]))
            how = "the history's mean"
        elif given is not None:
            overall, how = given, option
        else:
            why = "; ".join(note for note in series.notes if note.startswith(column))
            raise SimulationInputError(
                f"{series.source} history has no {column} for the windows with requests"
                f"{f' ({why})' if why else ''}, so the {what} lengths are unknown: give {option} N (a mean in tokens)")
        if given is not None and not (math.isfinite(given) and given >= 1):
            raise SimulationInputError(f"{option} must be a mean of ≥ 1 token, not {given!r}")
        missing = served & ~known
        if missing.any():
            notes.append(f"{int(missing.sum())} windows with requests but no {column}: {what} length "
                         f"{overall:,.0f} tokens ({how})")
        means[what] = np.where(known, per_request, overall)
    gaps = int((~np.isfinite(rate)).sum())
    if gaps:
        notes.append(f"{gaps} windows without request-rate data are gaps: no requests drawn there")
    windows = pd.DataFrame({"window_start_s": np.arange(len(rate)) * series.step_seconds,
                            "total_rate_rps": rate, "mean_input_tokens_est": means["prompt"],
                            "mean_output_tokens_est": means["output"]})
    if fluid_run:
        gap = ~np.isfinite(rate)
        rate_windows = RateWindows(
            series.source, windows["window_start_s"].to_numpy(dtype=float), np.nan_to_num(rate),
            np.nan_to_num(means["prompt"], nan=1.0), np.nan_to_num(means["output"], nan=1.0),
            series.step_seconds, gap=gap)
        training = _training_sample(windows, series.source, seed)
        training = training.compressed(compress) if compress != 1.0 else training
        return _of_windows(_compressed(rate_windows, compress), training, tuple(notes))
    workload = draw_from_rate_windows(windows, series.source, seed=seed)
    if compress != 1.0:
        workload = workload.compressed(compress)
        notes.append(f"arrivals compressed ×{compress:g}")
    return _of_workload(workload, tuple(notes), False)


def read_prometheus(url: str, model: str, *, history_s: float, step_s: float, promql: str,
                    end: float) -> DemandSeries:
    """`model`'s demand over the `history_s` before `end` (unix seconds) from a Prometheus query_range API."""
    if promql not in PROMQL:
        raise SimulationInputError(f"unknown --promql {promql!r}; choose {' or '.join(PROMQL)}")
    if not (math.isfinite(history_s) and history_s >= 2 * step_s):
        raise SimulationInputError(f"history {history_s:g}s must cover at least two steps of {step_s:g}s")
    with PrometheusRangeReader(url) as reader:
        return reader.demand(model, end - history_s, end, step_s, PROMQL[promql])


@dataclass(frozen=True)
class Fleet:
    """The fleet, SLOs and HPA every policy of one run is simulated with."""

    config: FleetConfig
    ttft_slo_s: float
    tpot_slo_s: float
    hpa: HpaConfig


def build_fleet(profile: str | None = None, *, ttft_slo_s: float = 1.0, tpot_slo_s: float = 0.1,
                cold_start_s: float | None = None, polling_interval_s: float = 15.0, min_replicas: int = 1,
                max_replicas: int = 1000) -> Fleet:
    """One replica per the profile (its KV blocks as `llmobs forecast capacity` computes them), and the SLO
    checked against it: an SLO no number of replicas can meet is refused before anything runs."""
    step_profile = load_profile(profile or DEFAULT_PROFILE)
    max_model_len = _max_model_len(step_profile)
    capacity = step_profile.capacity(context_tokens=max_model_len)
    if capacity.num_blocks * capacity.block_size < max_model_len:
        raise SimulationInputError(
            f"profile {step_profile.name}: one replica's KV cache holds {capacity.kv_tokens:,} tokens, less than "
            f"one request of {max_model_len:,} tokens (vLLM would not start): a bigger GPU or more GPUs per replica")
    if not 1 <= min_replicas <= max_replicas:
        raise SimulationInputError(f"need 1 ≤ --min-replicas ({min_replicas}) ≤ --max-replicas ({max_replicas})")
    engine = EngineConfig(kv_blocks=capacity.num_blocks, block_size=capacity.block_size, max_model_len=max_model_len)
    config = FleetConfig(engine, step_profile, model=step_profile.name, max_replicas=max_replicas,
                         sync_interval_s=polling_interval_s, ttft_slo_s=ttft_slo_s)
    if cold_start_s is not None:
        config = replace(config, cold_start_s=cold_start_s)
    check_slo(config, ttft_slo_s, tpot_slo_s)
    hpa = HpaConfig(polling_interval_s=polling_interval_s, min_replicas=min_replicas, max_replicas=max_replicas)
    return Fleet(config, ttft_slo_s, tpot_slo_s, hpa)


def _max_model_len(profile: StepProfile) -> int:
    """`MAX_MODEL_LEN`, or the model's own context when it is shorter: vLLM refuses a --max-model-len above the
    model config's max_position_embeddings, so a deployment of that model serves at most that."""
    own = profile.model_config.get("max_position_embeddings")
    if isinstance(own, bool) or not isinstance(own, int):
        return MAX_MODEL_LEN
    if own < 1:
        raise SimulationInputError(f"profile {profile.name}: max_position_embeddings must be ≥ 1, not {own}")
    return min(MAX_MODEL_LEN, own)


def first_part(workload: Workload, fraction: float) -> Workload:
    """The requests that arrive in the first `fraction` of the workload's span (what a policy may learn from)."""
    span = float(workload.arrival[-1]) if len(workload) else 0.0
    k = int(np.searchsorted(workload.arrival, span * fraction, side="right"))
    hashes = workload.hashes[:k] if workload.hashes else ()
    return Workload(workload.source, workload.arrival[:k], workload.prompt[:k], workload.output[:k], hashes,
                    workload.hash_block_tokens, workload.notes)


def policy_spec(key: str) -> PolicySpec:
    if key not in POLICIES:
        raise SimulationInputError(f"unknown policy {key!r}; choose one of {', '.join(POLICIES)}")
    return POLICIES[key]


@dataclass(frozen=True)
class Outcome:
    """One policy's run and the measures the comparison is made of. `result` is a `SimulationResult`, or the
    fluid mode's result (same measures, no per-request percentiles)."""

    spec: PolicySpec
    knob: float
    result: SimulationResult | FluidResult
    ttft_slo_s: float
    tpot_slo_s: float

    @property
    def scale_events(self) -> int:
        """Replica-count changes the policy made (the timeline's first entry is the starting fleet)."""
        return max(0, len(self.result.replica_timeline) - 1)

    @property
    def peak_replicas(self) -> int:
        return max((ready + starting for _, ready, starting in self.result.replica_timeline), default=0)

    def measures(self) -> dict[str, float | int | str | bool]:
        r = self.result
        out: dict[str, float | int | str | bool] = {
            "policy": self.spec.key,
            "label": self.spec.label,
            "knob": self.spec.knob,
            "knob_value": self.knob,
            "bound": self.spec.clairvoyant,
            "requests": len(r) if isinstance(r, SimulationResult) else round(r.requests),  # fluid: expected
            "attainment": float(r.attainment(self.ttft_slo_s, self.tpot_slo_s)),
            "gpu_hours": float(r.gpu_hours),
            "goodput_per_gpu_hour": float(r.goodput_per_gpu_hour(self.ttft_slo_s, self.tpot_slo_s)),
            "scale_events": self.scale_events,
            "peak_replicas": self.peak_replicas,
            "ttft_p50_s": math.nan,
            "ttft_p90_s": math.nan,
            "tpot_p50_s": math.nan,
        }
        if isinstance(r, SimulationResult):
            ttft, tpot = r.ttft, r.tpot
            if np.isfinite(ttft).any():
                out["ttft_p50_s"] = float(np.nanpercentile(ttft, 50))
                out["ttft_p90_s"] = float(np.nanpercentile(ttft, 90))
            if np.isfinite(tpot).any():
                out["tpot_p50_s"] = float(np.nanpercentile(tpot, 50))
            out["unfinished"] = r.unfinished
            out["rejected"] = int(r.rejected.sum())
        return out


@dataclass(frozen=True)
class Setup:
    """Everything the policies share in one run: traffic, fleet, what they know beforehand."""

    traffic: Traffic
    fleet: Fleet
    context: PolicyContext
    notes: tuple[str, ...] = field(default_factory=tuple)


def prepare(traffic: Traffic, fleet: Fleet, *, capacity_rps: float | None = None,
            initial_replicas: int | None = None) -> Setup:
    """The policies' shared context; `capacity_rps` (requests/s one replica serves within the SLO) is
    profiled on the training part of the traffic when not given."""
    training = traffic.training
    notes = list(traffic.notes)
    if traffic.fluid:
        try:
            load_fluid_model(fleet.config)
        except SimulationInputError as exc:
            raise SimulationInputError(
                f"~{traffic.requests:,.0f} requests need the fluid mode (over {REQUEST_LEVEL_LIMIT:,}), and {exc} "
                "— or cut the traffic with --start/--duration") from None
    if capacity_rps is None:
        sample = training if len(training) >= 2 else traffic.workload or training
        capacity_rps = profiled_capacity(sample, fleet)
        notes.append(f"capacity {capacity_rps:.2f} req/s per replica, profiled on one simulated replica: Poisson "
                     "arrivals, the training requests' lengths, ≥ 99 % of the attainable")
    elif not (math.isfinite(capacity_rps) and capacity_rps >= MIN_CAPACITY_RPS):
        raise SimulationInputError(f"--capacity-per-replica must be a request rate ≥ {MIN_CAPACITY_RPS:g}/s (one "
                                   f"request in ~17 minutes), not {capacity_rps:g}")
    if initial_replicas is None:
        initial_replicas = max(fleet.hpa.min_replicas, math.ceil(traffic.first_minute_rate / capacity_rps - 1e-9))
        initial_replicas = min(initial_replicas, fleet.hpa.max_replicas)
        notes.append("replicas at the start: enough for the first minute's traffic at the capacity")
    elif not 0 <= initial_replicas <= fleet.hpa.max_replicas:
        raise SimulationInputError(f"--initial-replicas {initial_replicas} must be in [0, --max-replicas]")
    config = replace(fleet.config, initial_replicas=initial_replicas)
    context = PolicyContext(config, fleet.ttft_slo_s, fleet.tpot_slo_s, capacity_rps, fleet.hpa, training,
                            traffic.workload)
    return Setup(traffic, Fleet(config, fleet.ttft_slo_s, fleet.tpot_slo_s, fleet.hpa), context, tuple(notes))


def profiled_capacity(workload: Workload, fleet: Fleet) -> float:
    """Requests/s one replica serves within the SLOs on this length mix: what a load test would tell
    (`load_test_capacity`, the same one `benchmarks/autoscale.py` sizes its traces with)."""
    return load_test_capacity(workload, fleet.config, fleet.ttft_slo_s, fleet.tpot_slo_s)


def run_policy(setup: Setup, key: str, knob: float | None = None) -> Outcome:
    """One policy at `knob` (default: what its documentation suggests) on the setup's traffic."""
    spec = policy_spec(key)
    if spec.clairvoyant and setup.traffic.workload is None:
        raise SimulationInputError(f"{spec.key}: {WINDOWS_ONLY}; choose another policy or cut the traffic with "
                                   "--duration to run it at the request level")
    value = spec.default(setup.context) if knob is None else knob
    _check_knob(spec, value, setup.context)
    try:
        controller = spec.build(value, setup.context)
    except ValueError as exc:  # a policy that cannot run on this traffic says why (the clairvoyant bound
        # needs every request); SimulationInputError is a ValueError and keeps its own message
        if isinstance(exc, SimulationInputError):
            raise
        raise SimulationInputError(f"{spec.key}: {exc}") from None
    traffic = setup.traffic
    result: SimulationResult | FluidResult
    if traffic.fluid_demand is not None:
        result = simulate_fluid(traffic.fluid_demand, setup.fleet.config, controller)
    else:
        assert traffic.workload is not None
        result = simulate(traffic.workload, setup.fleet.config, controller)
    return Outcome(spec, value, result, setup.fleet.ttft_slo_s, setup.fleet.tpot_slo_s)


def _check_knob(spec: PolicySpec, value: float, context: PolicyContext) -> None:
    """A knob far outside what the policy's own comparison grid sweeps is a typo, not a setting: it must be
    > 0 and at most 10 × the grid's top (2 × for a grid of shares and fractions, ≤ 1.25)."""
    grid = spec.grid(context)
    top = max(grid)
    high = top * (2 if top <= 1.25 else 10)
    if not (math.isfinite(value) and 0 < value <= high):
        raise SimulationInputError(
            f"{spec.key}: {spec.knob} = {value:g} is out of range (0, {high:g}]; its comparison grid here is "
            f"{', '.join(f'{g:g}' for g in grid)}")


WINDOWS_ONLY = "needs every request, and this traffic is only rate windows"


def compare(setup: Setup) -> tuple[list[Outcome], list[str]]:
    """Every policy at its default knob, in registry order, and why any could not run on this traffic
    (the clairvoyant bound needs every request, which the fluid mode on rate windows does not have)."""
    outcomes: list[Outcome] = []
    skipped: list[str] = []
    for key in POLICIES:
        if POLICIES[key].clairvoyant and setup.traffic.workload is None:
            skipped.append(f"{key}: {WINDOWS_ONLY}")
            continue
        outcomes.append(run_policy(setup, key))
    return outcomes, skipped


__all__ = ["DEFAULT_PROFILE", "REQUEST_LEVEL_LIMIT", "TRAIN_FRACTION", "Fleet", "Outcome", "Setup", "Traffic",
           "build_fleet", "compare", "prepare", "read_prometheus", "run_policy",
           "traffic_from_prometheus", "traffic_from_trace"]
