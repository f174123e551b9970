"""Long-trace mode: a fleet run on rate windows, with each replica replaced by a model fitted from the
request-level simulator.

ServeGen's 14 days are ~1.4 billion requests at full rate, too many to simulate one by one. This mode keeps
the fleet's dynamics (controller, cold starts, scale-in drains, GPU time) and replaces per-request serving by
a fitted table:

* **The replica model** (`FluidModel`): one simulated replica (`simulate()` with a fixed fleet of 1, the same
  engine, profile and scrape path) is run at a grid of Poisson rates and length mixes — exponential prompt
  and output lengths around a mean, as `workload` draws ServeGen's windows. For each mix the table holds the
  replica's capacity (requests/s with the queue never empty) and, at each utilization (rate ÷ capacity), the
  SLO attainment over a grid of (TTFT, TPOT) bounds and what a scaler would read off llmobs' signals
  (running, waiting, KV usage, finished rate, token rates, TTFT p90), averaged over the steady part of the
  run. Values between grid points are interpolated linearly (in log length, log SLO and utilization);
  outside the grid they are clamped to its edge.
* **The fleet** (`simulate_fluid`): steps at the sync interval. Demand is spread evenly over the ready
  replicas (a replica ready for part of a step counts for that part). What they cannot serve waits in a
  backlog served first-come first-served at the fleet's capacity: a request that arrives while the backlog is
  longer than `ttft_s` of capacity misses its TTFT SLO (it would wait longer than the SLO for its first
  token); one that arrives into a shorter backlog is served as at full utilization. The backlog is what makes
  a cold start or an under-provisioned fleet cost attainment. Scaling follows `fleet`: new replicas serve
  `cold_start_s` after the decision, a removal takes a starting replica first (newest first), else the newest
  ready one, which keeps costing GPU time while it drains (the fitted drain time at its load). The controller
  gets a `ControlView` per sync built from the model (no `signals`; `door_rate` is the demand over the signal
  window).

What the fluid model ignores, stated: the shape of the length distributions beyond their means (it assumes
exponential lengths; a trace's real spread, e.g. Mooncake's heavy prompts, is only seen through its
per-window means); prefix-cache hits (the table is fitted without shared prefixes); burstiness inside a step
beyond Poisson (the per-step rate is exact, the arrivals within it are taken as Poisson); the routing's
imbalance (load is split evenly, as least-loaded routing nearly achieves); the time a replica's signals take
to follow a load change (the table's steady-state values are shown at once, while `SignalTracker` averages a
60 s window); preemption storms and per-request queue order beyond the FCFS backlog; and requests still
in the backlog when the run ends count as served late (missed), as the request-level run reports them
unfinished. Rejections (prompt ≥ max_model_len) are kept: counted exactly for windows built from a per-request
workload, from the exponential tail for ServeGen's means.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmobs.simulate.control import Controller, ControlView, ReplicaLoad
from llmobs.simulate.engine import EngineConfig
from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.fleet import FleetConfig, simulate
from llmobs.simulate.profile import StepProfile
from llmobs.simulate.workload import MAX_TOKENS, Workload
from llmobs.sources.traces import TraceFormatError, check_sorted, numeric_column, require_columns

TABLE_RESOURCE = "fluid_llama-3.1-8b-h100.json"
REFIT_COMMAND = "PYTHONPATH=src python scripts/fit_fluid_model.py"

# The fitting grid: mean prompt and output tokens (log-spaced over what the bundled traces hold), utilization,
# and the SLO bounds attainment is tabulated at.
PROMPT_MEANS = (64.0, 256.0, 1024.0, 4096.0, 16384.0)
OUTPUT_MEANS = (8.0, 32.0, 128.0, 512.0)
UTILIZATIONS = (0.05, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95)
TTFT_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
TPOT_GRID = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
OBSERVABLES = ("running", "waiting", "kv_usage", "request_rate", "prompt_tokens_rate", "generation_tokens_rate",
               "ttft_p90_s", "drain_s")
# Requests per grid point: about FIT_SPAN_S of virtual time (a steady middle long enough for several syncs'
# signal windows), within FIT_REQUESTS (enough for the attainment's tail at 95 % utilization) and MAX_FIT_REQUESTS.
FIT_SPAN_S = 300.0
FIT_REQUESTS = 3000
MAX_FIT_REQUESTS = 60_000
CAPACITY_REQUESTS = 2000


# --- rate windows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateWindows:
    """Demand as consecutive windows: window i covers [start[i], start[i+1]) (the last one `width_s`), with
    `rate` requests/s and mean prompt/output tokens. `gap[i]`: no data there (ServeGen's rate 0), filled as
    `fill_gaps` says. `reject_share[i]`: share of the window's requests vLLM refuses (prompt ≥ max_model_len),
    NaN when it is to be taken from the exponential tail of the mean."""

    source: str
    start: np.ndarray
    rate: np.ndarray
    mean_prompt: np.ndarray
    mean_output: np.ndarray
    width_s: float
    gap: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    reject_share: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.start)
        if n == 0:
            raise SimulationInputError(f"{self.source}: no rate windows")
        if not len(self.gap):
            object.__setattr__(self, "gap", np.zeros(n, dtype=bool))
        if not len(self.reject_share):
            object.__setattr__(self, "reject_share", np.full(n, np.nan))
        for name in ("rate", "mean_prompt", "mean_output", "gap", "reject_share"):
            if len(getattr(self, name)) != n:
                raise SimulationInputError(f"{self.source}: {name} has {len(getattr(self, name))} values for {n} windows")
        if not (math.isfinite(self.width_s) and self.width_s > 0):
            raise SimulationInputError(f"{self.source}: window width must be > 0 seconds, not {self.width_s!r}")
        if not np.isfinite(self.start).all() or (np.diff(self.start) <= 0).any():
            raise SimulationInputError(f"{self.source}: window starts must be finite and increasing")
        for name in ("rate", "mean_prompt", "mean_output"):
            values = getattr(self, name)
            bad = ~np.isfinite(values) | (values < 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise SimulationInputError(
                    f"{self.source}: window {i} (at {self.start[i]:g} s) has {name} {values[i]!r}; it must be a "
                    "finite number ≥ 0")
        busy = (self.rate > 0) & ~self.gap
        for name in ("mean_prompt", "mean_output"):
            values = getattr(self, name)
            bad = busy & ((values < 1) | (values > MAX_TOKENS))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise SimulationInputError(
                    f"{self.source}: window {i} (at {self.start[i]:g} s) has traffic but {name} {values[i]!r}; "
                    f"need a mean in [1, {MAX_TOKENS:,}] tokens")

    def __len__(self) -> int:
        return len(self.start)

    @property
    def end(self) -> np.ndarray:
        return np.append(self.start[1:], self.start[-1] + self.width_s)

    @property
    def requests(self) -> float:
        """Expected requests over all windows (gaps as filled)."""
        return float((self.rate * (self.end - self.start)).sum())

    @classmethod
    def from_workload(cls, workload: Workload, width_s: float, max_model_len: int) -> RateWindows:
        """Per-request traffic aggregated into windows of `width_s` from 0: counts, mean lengths and the exact
        share of prompts vLLM refuses. A window without requests is idle time, not a gap."""
        if not (math.isfinite(width_s) and width_s > 0):
            raise SimulationInputError(f"window width must be > 0 seconds, not {width_s!r}")
        if not len(workload):
            raise SimulationInputError(f"{workload.source}: no requests")
        n = int(workload.arrival[-1] // width_s) + 1
        index = (workload.arrival // width_s).astype(np.int64)
        count = np.bincount(index, minlength=n).astype(float)
        prompt = np.bincount(index, weights=workload.prompt.astype(float), minlength=n)
        output = np.bincount(index, weights=workload.output.astype(float), minlength=n)
        rejected = np.bincount(index, weights=(workload.prompt >= max_model_len).astype(float), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_prompt = np.where(count > 0, prompt / count, 0.0)
            mean_output = np.where(count > 0, output / count, 0.0)
            share = np.where(count > 0, rejected / count, 0.0)
        return cls(workload.source, np.arange(n) * width_s, count / width_s, mean_prompt, mean_output, width_s,
                   reject_share=share, notes=(*workload.notes, f"aggregated into {width_s:g} s windows"))


def load_rate_windows(path: str | Path, *, start_s: float = 0.0, duration_s: float | None = None,
                      rate_scale: float = 1.0) -> RateWindows:
    """ServeGen's rate windows (`window_start_s`, `total_rate_rps`, mean input/output tokens), cut to
    [start_s, start_s + duration_s) and scaled. A rate of 0 is a gap in ServeGen's data, not idle time
    (data/traces/README.md): see `fill_gaps`, which `simulate_fluid` applies."""
    name = str(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise SimulationInputError(f"trace file {name} not found") from None
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulationInputError(f"{name}: not a readable CSV ({exc})") from None
    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise SimulationInputError(f"rate scale must be > 0, not {rate_scale!r}")
    try:
        require_columns(df, ("window_start_s", "total_rate_rps", "mean_input_tokens_est",
                             "mean_output_tokens_est"), name)
        start = numeric_column(df, "window_start_s", name)
        check_sorted(start, "window_start_s", name)
        rate = numeric_column(df, "total_rate_rps", name)
        mean_in = numeric_column(df, "mean_input_tokens_est", name)
        mean_out = numeric_column(df, "mean_output_tokens_est", name)
    except TraceFormatError as exc:
        raise SimulationInputError(str(exc)) from None
    width = float(np.median(np.diff(start))) if len(start) > 1 else 600.0
    end = start_s + duration_s if duration_s is not None else float(start[-1]) + width
    keep = (start + width > start_s) & (start < end)
    if not keep.any():
        raise SimulationInputError(f"{name}: no windows between {start_s:g}s and {end:g}s")
    for what, values in (("total_rate_rps", rate), ("mean_input_tokens_est", mean_in),
                         ("mean_output_tokens_est", mean_out)):
        bad = keep & (np.isnan(values) | (values < 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SimulationInputError(f"{name}: row {i + 2} has {what} {values[i]!r}; it must be a number ≥ 0")
    gap = rate[keep] == 0
    return RateWindows(f"servegen:{Path(name).name}", start[keep] - start_s, rate[keep] * rate_scale,
                       mean_in[keep], mean_out[keep], width, gap=gap,
                       notes=(f"ServeGen windows, rate × {rate_scale:g}",))


def fill_gaps(windows: RateWindows) -> RateWindows:
    """Fill gap windows (no data) by linear interpolation of rate and mean lengths between the nearest windows
    with data on either side (the nearest one at either end): a hole in the data is not a lull, and leaving it
    at 0 would let a controller scale the fleet away. The filled windows count like any other; the notes say
    how many there were."""
    if not windows.gap.any():
        return windows
    ok = ~windows.gap
    if not ok.any():
        raise SimulationInputError(f"{windows.source}: every window is a gap: no traffic to simulate")
    t = windows.start
    filled = {}
    for name in ("rate", "mean_prompt", "mean_output"):
        values = getattr(windows, name).astype(float).copy()
        values[~ok] = np.interp(t[~ok], t[ok], values[ok])
        filled[name] = values
    n = int(windows.gap.sum())
    return RateWindows(windows.source, windows.start, filled["rate"], filled["mean_prompt"], filled["mean_output"],
                       windows.width_s, reject_share=windows.reject_share,
                       notes=(*windows.notes, f"{n} gap windows (rate 0: no data) filled by interpolation between "
                              "their neighbours"))


# --- the fitted replica model ------------------------------------------------------------------------------


def _axis_weights(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower grid index and weight of the upper neighbour for each x (clamped to the axis)."""
    x = np.clip(x, axis[0], axis[-1])
    i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2)
    w = (x - axis[i]) / (axis[i + 1] - axis[i])
    return i, w


def _interpolate(table: np.ndarray, axes: Sequence[np.ndarray], points: Sequence[np.ndarray]) -> np.ndarray:
    """Multilinear interpolation of `table` (one dimension per axis) at `points` (one array per axis)."""
    located = [_axis_weights(a, np.asarray(p, dtype=float)) for a, p in zip(axes, points, strict=True)]
    shape = np.broadcast_shapes(*(np.shape(i) for i, _ in located))
    out = np.zeros(shape)
    for corner in range(1 << len(axes)):
        index = []
        weight = np.ones(shape)
        for d, (i, w) in enumerate(located):
            upper = (corner >> d) & 1
            index.append(i + upper)
            weight = weight * (w if upper else 1.0 - w)
        out += weight * table[tuple(index)]
    return out


@dataclass(frozen=True)
class FluidModel:
    """One replica's fitted behaviour (see the module docstring); `key` names the engine and profile it was
    fitted for, so a table is never used for another."""

    key: dict[str, Any]
    prompt_means: np.ndarray
    output_means: np.ndarray
    utilizations: np.ndarray
    ttft_grid: np.ndarray
    tpot_grid: np.ndarray
    capacity_rps: np.ndarray  # [prompt, output]
    attainment_table: np.ndarray  # [prompt, output, utilization, ttft, tpot], among admitted requests
    observables: dict[str, np.ndarray]  # name -> [prompt, output, utilization]

    @property
    def max_utilization(self) -> float:
        return float(self.utilizations[-1])

    def _mix(self, mean_prompt: np.ndarray, mean_output: np.ndarray) -> list[np.ndarray]:
        return [np.log(np.maximum(mean_prompt, 1.0)), np.log(np.maximum(mean_output, 1.0))]

    def _mix_axes(self) -> list[np.ndarray]:
        return [np.log(self.prompt_means), np.log(self.output_means)]

    def capacity(self, mean_prompt: np.ndarray | float, mean_output: np.ndarray | float) -> np.ndarray:
        """Requests/s one replica serves with its queue never empty, at this length mix (interpolated in
        log throughput)."""
        log_cap = _interpolate(np.log(self.capacity_rps), self._mix_axes(),
                               self._mix(np.asarray(mean_prompt, float), np.asarray(mean_output, float)))
        return np.exp(log_cap)

    def attainment(self, utilization: np.ndarray | float, mean_prompt: np.ndarray | float,
                   mean_output: np.ndarray | float, ttft_s: float, tpot_s: float) -> np.ndarray:
        """Share of admitted requests meeting both SLOs on a replica at this utilization and mix."""
        u = np.asarray(utilization, float)
        mix = self._mix(np.asarray(mean_prompt, float), np.asarray(mean_output, float))
        slo = [np.full(np.shape(u), math.log(ttft_s)), np.full(np.shape(u), math.log(tpot_s))]
        axes = [*self._mix_axes(), self.utilizations, np.log(self.ttft_grid), np.log(self.tpot_grid)]
        return np.clip(_interpolate(self.attainment_table, axes, [*mix, u, *slo]), 0.0, 1.0)

    def observe(self, name: str, utilization: np.ndarray | float, mean_prompt: np.ndarray | float,
                mean_output: np.ndarray | float) -> np.ndarray:
        """A steady-state observable (`OBSERVABLES`) at this utilization and mix."""
        axes = [*self._mix_axes(), self.utilizations]
        mix = self._mix(np.asarray(mean_prompt, float), np.asarray(mean_output, float))
        return _interpolate(self.observables[name], axes, [*mix, np.asarray(utilization, float)])

    # --- persistence
    def to_json(self) -> str:
        data = {"key": self.key, "prompt_means": self.prompt_means.tolist(),
                "output_means": self.output_means.tolist(), "utilizations": self.utilizations.tolist(),
                "ttft_grid": self.ttft_grid.tolist(), "tpot_grid": self.tpot_grid.tolist(),
                "capacity_rps": np.round(self.capacity_rps, 6).tolist(),
                "attainment": np.round(self.attainment_table, 5).tolist(),
                "observables": {k: np.round(v, 6).tolist() for k, v in self.observables.items()}}
        return json.dumps(data, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FluidModel:
        try:
            raw = json.loads(text)
            return cls(raw["key"], np.array(raw["prompt_means"]), np.array(raw["output_means"]),
                       np.array(raw["utilizations"]), np.array(raw["ttft_grid"]), np.array(raw["tpot_grid"]),
                       np.array(raw["capacity_rps"]), np.array(raw["attainment"]),
                       {k: np.array(v) for k, v in raw["observables"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise SimulationInputError(f"not a fluid model table ({exc})") from None


def model_key(config: FleetConfig) -> dict[str, Any]:
    """What a fitted table depends on: the engine, the step profile, the scrape/signal settings."""
    e, p = config.engine, config.profile
    return {"profile": p.name, "fixed_s": p.fixed_s, "prefill_token_s": p.prefill_token_s,
            "decode_seq_s": p.decode_seq_s, "kv_token_s": p.kv_token_s, "kv_blocks": e.kv_blocks,
            "block_size": e.block_size, "max_num_seqs": e.max_num_seqs,
            "max_num_batched_tokens": e.max_num_batched_tokens, "max_model_len": e.max_model_len,
            "prefix_caching": e.prefix_caching, "scrape_interval_s": config.scrape_interval_s,
            "signal_window_s": config.signal_window_s}


def bundled_fleet_config() -> FleetConfig:
    """The fleet the committed table was fitted for: Llama-3.1-8B on H100 (the bundled profile), 32k context."""
    from llmobs.simulate.profile import load_profile

    profile = load_profile("llama-3.1-8b-h100")
    capacity = profile.capacity(context_tokens=32768)
    engine = EngineConfig(kv_blocks=capacity.num_blocks, block_size=capacity.block_size, max_model_len=32768)
    return FleetConfig(engine, profile, model="llama-3.1-8b")


def load_fluid_model(config: FleetConfig, path: str | Path | None = None) -> FluidModel:
    """The committed table (or the one at `path`) when it was fitted for `config`'s engine and profile."""
    if path is None:
        text = resources.files("llmobs.simulate").joinpath(TABLE_RESOURCE).read_text()
    else:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SimulationInputError(f"cannot read fluid model table {path}: {exc}") from None
    model = FluidModel.from_json(text)
    if model.key != model_key(config):
        raise SimulationInputError(
            "the fluid model table was fitted for another engine or profile "
            f"({model.key.get('profile')}, {model.key.get('kv_blocks')} KV blocks); fit one for this fleet with "
            f"fit_fluid_model(config) (the committed one: {REFIT_COMMAND})")
    return model


def _exponential_lengths(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    # as workload draws ServeGen's windows: exponential around the mean, rounded up, at least 1 token
    return np.ceil(rng.exponential(mean, n)).clip(1, MAX_TOKENS).astype(np.int64)


def _one_replica(config: FleetConfig) -> FleetConfig:
    return FleetConfig(config.engine, config.profile, model=config.model, initial_replicas=1, max_replicas=1,
                       cold_start_s=0.0, scrape_interval_s=config.scrape_interval_s,
                       sync_interval_s=config.sync_interval_s, signal_window_s=config.signal_window_s,
                       ttft_slo_s=config.ttft_slo_s, tail_s=config.tail_s)


def fit_capacity(config: FleetConfig, mean_prompt: float, mean_output: float, *, seed: int = 0,
                 requests: int = CAPACITY_REQUESTS) -> float:
    """Requests/s one replica finishes when its queue never runs dry: `requests` arrive at once and the
    throughput between the 10th and the 90th percentile finish is taken (the fill and the drain excluded)."""
    rng = np.random.default_rng(seed)
    w = Workload("capacity", np.zeros(requests), _exponential_lengths(rng, mean_prompt, requests),
                 _exponential_lengths(rng, mean_output, requests))
    result = simulate(w, _one_replica(config))
    done = np.sort(result.finish[result.finished])
    lo, hi = done[len(done) // 10], done[(9 * len(done)) // 10]
    return (9 * len(done) // 10 - len(done) // 10) / (hi - lo)


def fit_requests(rate: float) -> int:
    return int(min(MAX_FIT_REQUESTS, max(FIT_REQUESTS, rate * FIT_SPAN_S)))


def fit_point(config: FleetConfig, mean_prompt: float, mean_output: float, rate: float, *, seed: int = 0,
              requests: int | None = None, ttft_grid: Sequence[float] = TTFT_GRID,
              tpot_grid: Sequence[float] = TPOT_GRID) -> tuple[np.ndarray, dict[str, float]]:
    """One replica at Poisson `rate` with exponential lengths: attainment over the SLO grid (among admitted
    requests arriving in the steady middle, 20–90 % of the run) and the mean of what llmobs' signals show at
    the syncs in that span (the run goes through the fleet's scrape path)."""
    rng = np.random.default_rng(seed)
    requests = fit_requests(rate) if requests is None else requests
    arrival = np.cumsum(rng.exponential(1.0 / rate, requests))
    arrival -= arrival[0]
    w = Workload("fit", arrival, _exponential_lengths(rng, mean_prompt, requests),
                 _exponential_lengths(rng, mean_output, requests))
    span = float(arrival[-1])
    lo, hi = 0.2 * span, 0.9 * span
    loads: list[ReplicaLoad] = []

    def record(view: ControlView) -> None:
        if lo <= view.now <= hi:
            loads.extend(view.loads)

    result = simulate(w, _one_replica(config), record)
    steady = (arrival >= lo) & (arrival <= hi) & ~result.rejected
    ttft, tpot = result.ttft[steady], result.tpot[steady]
    finished = result.finished[steady]
    with np.errstate(invalid="ignore"):
        att = np.array([[float((finished & (ttft <= t) & (tpot <= p)).mean()) for p in tpot_grid]
                        for t in ttft_grid])
    observed: dict[str, float] = {}
    for name in OBSERVABLES[:-1]:
        values = np.array([getattr(load, name) for load in loads], dtype=float)
        observed[name] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    observed["drain_s"] = max(0.0, float(np.nanmax(result.finish)) - float(arrival[-1]))
    return att, observed


def fit_fluid_model(config: FleetConfig, *, prompt_means: Sequence[float] = PROMPT_MEANS,
                    output_means: Sequence[float] = OUTPUT_MEANS, utilizations: Sequence[float] = UTILIZATIONS,
                    progress: bool = False) -> FluidModel:
    """Fit the table for `config`'s engine and profile (minutes for the default grid)."""
    shape = (len(prompt_means), len(output_means))
    capacity = np.zeros(shape)
    att = np.zeros((*shape, len(utilizations), len(TTFT_GRID), len(TPOT_GRID)))
    obs = {name: np.zeros((*shape, len(utilizations))) for name in OBSERVABLES}
    for i, mp in enumerate(prompt_means):
        for j, mo in enumerate(output_means):
            capacity[i, j] = fit_capacity(config, mp, mo, seed=i * 100 + j)
            for k, u in enumerate(utilizations):
                att[i, j, k], observed = fit_point(config, mp, mo, u * capacity[i, j],
                                                   seed=(i * 100 + j) * 100 + k)
                for name, value in observed.items():
                    obs[name][i, j, k] = value
            if progress:
                print(f"prompt {mp:g} output {mo:g}: capacity {capacity[i, j]:.3f} req/s; attainment(1 s, 50 ms) "
                      f"by utilization {np.round(att[i, j, :, TTFT_GRID.index(1.0), TPOT_GRID.index(0.05)], 3)}",
                      flush=True)
    return FluidModel(model_key(config), np.array(prompt_means, float), np.array(output_means, float),
                      np.array(utilizations, float), np.array(TTFT_GRID), np.array(TPOT_GRID), capacity, att, obs)


# --- the fluid fleet ---------------------------------------------------------------------------------------


def _reject_share(windows: RateWindows, max_model_len: int) -> np.ndarray:
    """Per window, the share of prompts vLLM refuses: as counted, or P(ceil(X) ≥ max_model_len) for an
    exponential X around the window's mean prompt."""
    with np.errstate(divide="ignore", over="ignore"):
        tail = np.exp(-(max_model_len - 1) / np.maximum(windows.mean_prompt, 1e-9))
    return np.where(np.isnan(windows.reject_share), tail, windows.reject_share)


class _Cumulative:
    """Integrals of the windows' demand from time 0, exact for piecewise-constant windows."""

    def __init__(self, windows: RateWindows, max_model_len: int) -> None:
        edges = np.append(windows.start, windows.end[-1])
        dt = np.diff(edges)
        count = windows.rate * dt
        self.edges = edges
        self.requests = np.concatenate(([0.0], np.cumsum(count)))
        self.prompt = np.concatenate(([0.0], np.cumsum(count * windows.mean_prompt)))
        self.output = np.concatenate(([0.0], np.cumsum(count * windows.mean_output)))
        self.rejected = np.concatenate(([0.0], np.cumsum(count * _reject_share(windows, max_model_len))))

    def at(self, series: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        return np.interp(t, self.edges, series)


@dataclass
class _FluidReplica:
    added_at: float
    ready_at: float
    ended_at: float = math.nan


@dataclass(frozen=True)
class FluidResult:
    """A fluid run, step by step (the sync interval). Per step k, over [step_start[k], step_start[k] + step_s):
    `arrivals` (expected requests), `admitted` (less the ones vLLM refuses), the backlog at the step's start
    (`backlog`, requests), the arrival rate of admitted requests (`rate`), the ready replicas' capacity
    (`capacity`, requests/s) and the step's mean lengths. Attainment is computed from these for any SLO."""

    model: FluidModel
    step_s: float
    step_start: np.ndarray
    arrivals: np.ndarray
    admitted: np.ndarray
    backlog: np.ndarray
    rate: np.ndarray
    capacity: np.ndarray
    utilization: np.ndarray
    mean_prompt: np.ndarray
    mean_output: np.ndarray
    replicas: tuple[tuple[float, float], ...]  # (added_at, ended_at) of every replica
    gpus_per_replica: int
    end_time: float
    replica_timeline: tuple[tuple[float, int, int], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def requests(self) -> float:
        return float(self.arrivals.sum())

    def _steps(self, start_s: float | None, end_s: float | None) -> np.ndarray:
        mid = self.step_start + self.step_s / 2
        keep = np.ones(len(mid), dtype=bool)
        if start_s is not None:
            keep &= mid >= start_s
        if end_s is not None:
            keep &= mid < end_s
        return keep

    def met(self, ttft_s: float, tpot_s: float) -> np.ndarray:
        """Expected requests per step that finish within both SLOs.

        Within a step the backlog moves linearly, B(s) = max(0, B0 + (rate − capacity)·s): arrivals while
        B(s) > capacity·ttft_s would wait longer than the TTFT SLO and miss; those arriving into a shorter
        backlog are served as at full utilization; the rest as at the step's utilization."""
        for name, value in (("TTFT", ttft_s), ("TPOT", tpot_s)):
            if not (math.isfinite(value) and value > 0):
                raise SimulationInputError(f"{name} SLO must be a positive number of seconds, not {value!r}")
        dt = self.step_s
        cap, lam, b0 = self.capacity, self.rate, self.backlog
        drift = lam - cap

        def share_above(level: np.ndarray) -> np.ndarray:
            """Share of the step during which B(s) > level."""
            with np.errstate(divide="ignore", invalid="ignore"):
                rising = np.clip(1.0 - np.maximum(0.0, (level - b0) / drift) / dt, 0.0, 1.0)
                falling = np.clip((b0 - level) / -drift / dt, 0.0, 1.0)
            flat = (b0 > level).astype(float)
            return np.where(drift > 0, rising, np.where(drift < 0, falling, flat))

        late = np.where(cap > 0, share_above(cap * ttft_s), 1.0)
        queued = np.where(cap > 0, share_above(np.zeros_like(b0)), 1.0)
        queued = np.clip(queued - late, 0.0, 1.0)
        free = np.clip(1.0 - late - queued, 0.0, 1.0)
        m = self.model
        u_max = m.max_utilization
        at_load = m.attainment(self.utilization, self.mean_prompt, self.mean_output, ttft_s, tpot_s)
        at_full = m.attainment(np.full_like(self.utilization, u_max), self.mean_prompt, self.mean_output, ttft_s, tpot_s)
        met: np.ndarray = self.admitted * (free * at_load + queued * at_full)
        return met

    def attainment(self, ttft_s: float, tpot_s: float, start_s: float | None = None,
                   end_s: float | None = None) -> float:
        """Share of the requests arriving in [start_s, end_s) (by step) that meet both SLOs; refused and late
        ones count as missed, as in `SimulationResult.attainment`."""
        keep = self._steps(start_s, end_s)
        total = float(self.arrivals[keep].sum())
        return float(self.met(ttft_s, tpot_s)[keep].sum()) / total if total > 0 else math.nan

    def gpu_seconds_between(self, start_s: float = 0.0, end_s: float = math.inf) -> float:
        total = sum(max(0.0, min(end, end_s) - max(added, start_s)) for added, end in self.replicas)
        return total * self.gpus_per_replica

    @property
    def gpu_seconds(self) -> float:
        return self.gpu_seconds_between()

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0

    def gpu_hours_between(self, start_s: float = 0.0, end_s: float = math.inf) -> float:
        return self.gpu_seconds_between(start_s, end_s) / 3600.0

    @property
    def scale_events(self) -> int:
        """Replica-count changes the controller made (the timeline's entries after the initial one)."""
        return max(0, len(self.replica_timeline) - 1)

    def goodput_per_gpu_hour(self, ttft_s: float, tpot_s: float) -> float:
        """Requests that met both SLOs per GPU-hour spent."""
        return float(self.met(ttft_s, tpot_s).sum()) / self.gpu_hours if self.gpu_seconds > 0 else 0.0


class FluidFleet:
    """Runs rate windows through a fleet of fitted replicas; `run()` returns one `FluidResult`."""

    def __init__(self, windows: RateWindows, config: FleetConfig, model: FluidModel,
                 controller: Controller | None = None, *, resolution_s: float = 1.0,
                 memory_s: float = 60.0) -> None:
        self.windows = fill_gaps(windows)
        self.resolution_s = max(resolution_s, windows.width_s)
        self.memory_s = memory_s
        self.config = config
        self.model = model
        self.controller = controller
        self.live: list[_FluidReplica] = []
        self.retired: list[_FluidReplica] = []
        self.timeline: list[tuple[float, int, int]] = []
        self.backlog = 0.0
        self._cum = _Cumulative(self.windows, config.engine.max_model_len)
        self._utilization = 0.0
        self._mix = (1.0, 1.0)

    def _counts(self, now: float) -> tuple[int, int]:
        ready = sum(1 for r in self.live if r.ready_at <= now)
        return ready, len(self.live) - ready

    def _drain_s(self, now: float) -> float:
        """How long a ready replica removed now keeps running: its share of the backlog at its capacity, then
        the fitted drain of what it holds at the current load."""
        ready = max(1, self._counts(now)[0])
        mp, mo = self._mix
        capacity = float(self.model.capacity(mp, mo))
        share = self.backlog / ready
        self.backlog -= share
        return share / capacity + float(self.model.observe("drain_s", self._utilization, mp, mo))

    def _scale_to(self, desired: int, now: float) -> None:
        desired = max(0, min(int(desired), self.config.max_replicas))
        changed = desired != len(self.live)
        while len(self.live) < desired:
            self.live.append(_FluidReplica(now, now + self.config.cold_start_s))
        while len(self.live) > desired:
            starting = [r for r in self.live if r.ready_at > now]
            victim = starting[-1] if starting else self.live[-1]
            self.live.remove(victim)
            victim.ended_at = now if victim.ready_at > now else now + self._drain_s(now)
            self.retired.append(victim)
        if changed:
            self.timeline.append((now, *self._counts(now)))

    def _door(self, now: float) -> tuple[float, float]:
        window = self.config.signal_window_s
        lo = max(0.0, now - window)
        span = min(window, now) or window
        c = self._cum
        return (float(c.at(c.requests, now) - c.at(c.requests, lo)) / span,
                float(c.at(c.prompt, now) - c.at(c.prompt, lo)) / span)

    def _view(self, now: float, served_rate: float) -> ControlView:
        ready, starting = self._counts(now)
        mp, mo = self._mix
        loads: tuple[ReplicaLoad, ...] = ()
        if ready:
            u, m = self._utilization, self.model
            capacity = float(m.capacity(mp, mo)) * ready
            per_replica = served_rate / ready
            wait = self.backlog / capacity if capacity > 0 else 0.0
            load = ReplicaLoad(
                running=float(m.observe("running", u, mp, mo)),
                waiting=float(m.observe("waiting", u, mp, mo)) + self.backlog / ready,
                kv_usage=float(np.clip(m.observe("kv_usage", u, mp, mo), 0.0, 1.0)),
                request_rate=per_replica, prompt_tokens_rate=per_replica * mp,
                generation_tokens_rate=per_replica * mo,
                ttft_p90_s=float(m.observe("ttft_p90_s", u, mp, mo)) + wait)
            loads = (load,) * ready
        door_rate, door_prompt = self._door(now)
        return ControlView(now, ready, starting, loads, door_rate, door_prompt)

    def run(self) -> FluidResult:
        cfg, m, c = self.config, self.model, self._cum
        dt = cfg.sync_interval_s
        substeps = max(1, math.ceil(dt / min(dt, self.resolution_s) - 1e-9))
        h = dt / substeps
        horizon = float(c.edges[-1])
        steps = max(1, math.ceil(horizon / dt - 1e-9))
        for _ in range(cfg.initial_replicas):
            self.live.append(_FluidReplica(0.0, 0.0))
        self.timeline.append((0.0, *self._counts(0.0)))
        # demand per substep (arrivals) and per sync step (the length mix, steadier than a second's)
        t0 = np.arange(steps * substeps) * h
        edges = np.append(t0, steps * dt)
        arrivals = np.diff(c.at(c.requests, edges))
        admitted = np.maximum(arrivals - np.diff(c.at(c.rejected, edges)), 0.0)
        sync_edges = np.arange(steps + 1) * dt
        count = np.diff(c.at(c.requests, sync_edges))
        with np.errstate(invalid="ignore", divide="ignore"):
            mix_prompt = np.diff(c.at(c.prompt, sync_edges)) / count
            mix_output = np.diff(c.at(c.output, sync_edges)) / count
        for series in (mix_prompt, mix_output):  # a step without arrivals keeps the last mix
            ok = np.isfinite(series) & (count > 0)
            series[:] = pd.Series(np.where(ok, series, np.nan)).ffill().bfill().fillna(1.0).to_numpy()
        mu = m.capacity(mix_prompt, mix_output)
        backlog = np.zeros(len(t0))
        capacity = np.zeros(len(t0))
        smoothed = np.zeros(len(t0))
        keep = math.exp(-h / self.memory_s) if self.memory_s > 0 else 0.0
        u_bar = 0.0
        u_max = m.max_utilization
        for k in range(steps):
            end = (k + 1) * dt
            served = 0.0
            for j in range(k * substeps, (k + 1) * substeps):
                sub_end = t0[j] + h
                ready = sum(min(1.0, max(0.0, (sub_end - r.ready_at) / h)) for r in self.live)
                cap = ready * float(mu[k])
                capacity[j] = cap
                backlog[j] = self.backlog
                offered = self.backlog + admitted[j]
                done = min(offered, cap * h)
                served += done
                self.backlog = offered - done
                u = min(admitted[j] / h / cap, u_max) if cap > 0 else u_max
                u_bar = keep * u_bar + (1.0 - keep) * u
                smoothed[j] = u_bar
            self._utilization = u_bar
            self._mix = (float(mix_prompt[k]), float(mix_output[k]))
            if self.controller is not None:
                desired = self.controller(self._view(end, served / dt))
                if desired is not None:
                    self._scale_to(desired, end)
        end_time = float(edges[-1])
        ready_capacity = sum(1 for r in self.live if r.ready_at <= end_time) * float(mu[-1])
        if self.live:
            tail = self.backlog / ready_capacity if ready_capacity > 0 else cfg.tail_s
            tail += float(m.observe("drain_s", self._utilization, *self._mix))
            end_time += min(tail, cfg.tail_s)
        notes = list(self.windows.notes)
        if self.backlog > 0.5:
            notes.append(f"{self.backlog:,.0f} requests still queued when the demand ended (counted as missed)")
        replicas = tuple((r.added_at, r.ended_at) for r in self.retired) + tuple(
            (r.added_at, end_time) for r in self.live)
        return FluidResult(m, h, t0, arrivals, admitted, backlog, admitted / h, capacity, smoothed,
                           np.repeat(mix_prompt, substeps), np.repeat(mix_output, substeps), replicas,
                           cfg.profile.gpus_per_replica, end_time, tuple(self.timeline), tuple(notes))


def simulate_fluid(demand: RateWindows | Workload, config: FleetConfig, controller: Controller | None = None,
                   model: FluidModel | None = None, *, resolution_s: float = 1.0,
                   memory_s: float = 60.0) -> FluidResult:
    """Serve `demand` (rate windows, or a per-request workload aggregated into sync-interval windows) with the
    fleet `config` describes, scaled by `controller` (fixed size when None), each replica behaving as `model`
    (the committed table for the bundled profile when None)."""
    model = model or load_fluid_model(config)
    if model.key != model_key(config):
        raise SimulationInputError("the fluid model was fitted for another engine or profile than this fleet's")
    if isinstance(demand, Workload):
        demand = RateWindows.from_workload(demand, resolution_s, config.engine.max_model_len)
    return FluidFleet(demand, config, model, controller, resolution_s=resolution_s, memory_s=memory_s).run()
