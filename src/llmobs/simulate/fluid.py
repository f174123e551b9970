"""Long-trace mode: a fleet run on rate windows, with each replica replaced by a model fitted from the
request-level simulator.

ServeGen's 14 days are ~1.4 billion requests at full rate, too many to simulate one by one. This mode keeps
the fleet's dynamics (controller, cold starts, scale-in drains, GPU time) and replaces per-request serving by
a fitted table:

* **The replica model** (`FluidModel`): the request-level simulator (`simulate()` with a fixed fleet of one
  replica, and of four to capture how least-loaded routing pools the replicas' queues) is run at a grid of
  Poisson rates and length mixes — exponential prompt and output lengths around a mean, as `workload` draws
  ServeGen's windows. For each mix the table holds a replica's capacity (requests/s it finishes in a
  sustained overload: the queue never empty, the KV cache's preemptions and every admission's prefill paid)
  and its batch in that overload (requests past their first token and not finished, as many as its KV cache
  holds: what a backlog waits behind)
  and, at each utilization (rate ÷ capacity), the SLO attainment over a grid of (TTFT, TPOT) bounds,
  the mean number of requests in a replica (Little's law) and what a scaler reads off llmobs' signals
  (running, waiting, KV usage, finished rate, token rates, TTFT p90), averaged over the steady part of the
  run. Values between grid points are interpolated linearly (in log length, log fleet size, log SLO and
  utilization); outside the grid they are clamped to its edge. `scripts/fit_fluid_model.py` regenerates the
  committed table.
* **The fleet** (`simulate_fluid`): demand (arrivals per `resolution_s`, 1 s by default, in windows (k·h, (k+1)·h]
  as a rate over the last seconds counts them) goes to the ready replicas as least-loaded routing sends it: each
  replica holds its own requests (a fluid), and a step's arrivals fill the replicas holding the fewest up to a
  common level (water-filling; one ready for part of a step counts for that part). No request moves between
  replicas, so after a scale-up the new replicas take the new arrivals while a backlog drains on the replicas it
  queued on. A replica's requests shrink at the throughput the table gives for that many (the steady state at
  utilization u holds L(u) requests and serves u × capacity; past u_max its queue grows as a single server's, L(u)
  ∝ 1/(1 − u), up to u = 0.999, beyond which it serves at capacity), reached with a lag: a replica finishes a
  request only a residence time after admitting it, so one whose batch grows — an overload starting, a new
  replica flooded by least-loaded routing — finishes far fewer requests for a while than the steady state at
  that many would (`_serve`). What it holds beyond its overload batch (the table's, or L(u_max) where that is
  larger) waits for a first token — the backlog: until the batch is full every arrival is admitted at once, as a
  real replica admits every arrival's prefill while its KV cache has room. A request is served as the steady
  state at the utilization whose L(u) matches the requests in the replicas it went to; one arriving while the
  backlog ahead of it is longer than `ttft_s` of capacity misses its TTFT SLO. This is what makes a cold start
  or an under-provisioned fleet cost attainment. When the demand comes from a per-request trace, the SLOs are
  read from the requests' own arrival instants and lengths instead of the table: each request goes to the ready
  replica holding the fewest unfinished requests, as least-loaded routing sends it (a request holding its replica
  until it is prefilled and decoded, `PrefillState.least_loaded`), each replica prefills its prompts first come
  first served (a full token budget per step), a request's first token comes at the end of the step that holds
  its prompt's last token, and its TPOT counts a full-budget step for each budget of prompts behind it — in its
  step and arriving on its replica while it decodes — and the decode step at the replica's load for the others.
  The controller runs at each sync (`sync_interval_s`) on a `ControlView` built from the model (each ready
  replica shows the table's observables at the utilization of what it holds; beyond L(u_max) it runs up to its
  overload batch, what it holds beyond L(u_max) added to `running` (and to KV usage, as much per request as at
  L(u_max), at most 1), and only what it holds beyond that batch to `waiting` and to TTFT p90 — the split the
  request-level pages show in an overload; no `signals`;
  `door_rate` is the demand over the signal window, counted as the request-level mode counts it). Scaling
  follows `fleet`: new replicas serve `cold_start_s` after the decision; a removal takes a starting replica
  first (newest first), else the newest ready one, which takes the requests it holds with it and costs GPU
  time until it has served them.

What the fluid model ignores, stated: the shape of the length distributions beyond their means for rate windows
(the table assumes exponential lengths; a per-request trace's own lengths enter through its requests, above);
prefix-cache hits (the table is fitted without shared prefixes); arrivals within a rate window other than Poisson;
the composition of the requests in a replica at steady state (prefilling vs decoding) beyond the table's average;
imbalance between replicas other than least-loaded routing's (round robin is not modelled; for rate windows,
replicas holding as many requests are taken as equal); the shape of the finishes' lag beyond its mean (a
first-order lag, as exponential residence times give); the lag of the gauges (the table's
steady-state values are shown at once, while `SignalTracker` averages a 60 s window — `door_rate`, which KEDA on
request rate reads, is counted over the same window in both modes); a per-request trace's bursts in the gauges a
policy reads (its requests' own TTFTs and TPOTs count them, the view shows the table's steady states: a fixed
fleet of four on Azure code ×10 averages 37 requests waiting and TTFT p90 3.9 s on its pages, 5.6 and 0.47 s in the
view; a fixed fleet of two or three on 15 minutes of ServeGen's rate windows agrees within 20 % on average on
running, waiting, KV usage, finish rate and TTFT p90); fleet sizes between and beyond the fitted ones
(interpolated in log size, held beyond 4). Rejections (prompt ≥ max_model_len) are kept: counted exactly in
windows built from a per-request workload, from the exponential tail for ServeGen's means. ServeGen windows with
rate 0 are gaps in its data, not idle time: `fill_gaps` interpolates them from their neighbours (and the notes say
how many). Agreement with the request-level simulator, measured, is in tests/simulate/test_fluid.py (cases outside
2 points are marked there with their gap and cause).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmobs.simulate.control import Controller, ControlView, ReplicaLoad
from llmobs.simulate.engine import EngineConfig
from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.fleet import FleetConfig, simulate
from llmobs.simulate.workload import MAX_TOKENS, Workload, rate_window_columns, read_trace_csv

TABLE_RESOURCE = "fluid_llama-3.1-8b-h100.json"
REFIT_COMMAND = "PYTHONPATH=src python scripts/fit_fluid_model.py"

# The fitting grid: mean prompt and output tokens (log-spaced over what the bundled traces hold), utilization,
# and the SLO bounds attainment is tabulated at.
PROMPT_MEANS = (64.0, 128.0, 256.0, 1024.0, 2048.0, 4096.0, 16384.0)
OUTPUT_MEANS = (8.0, 16.0, 32.0, 128.0, 256.0, 512.0)
UTILIZATIONS = (0.05, 0.2, 0.4, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
# Fleet sizes fitted: least-loaded routing pools the replicas' queues, so a fleet of 4 at a given
# utilization queues far less than one replica does; beyond the largest size the pooling gain is held.
FLEET_SIZES = (1, 4)
# Beyond the fitted utilizations a replica's queue grows as a single server's (see `FluidFleet._fit_curve`).
QUEUE_UTILIZATIONS = (0.98, 0.99, 0.995, 0.999)
TTFT_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
TPOT_GRID = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
SIGNALS = ("running", "waiting", "kv_usage", "request_rate", "prompt_tokens_rate", "generation_tokens_rate",
           "ttft_p90_s")
OBSERVABLES = (*SIGNALS, "concurrency", "drain_s")
# Requests per grid point: about FIT_SPAN_S of virtual time (a steady middle long enough for several syncs'
# signal windows), within FIT_REQUESTS (enough for the attainment's tail at 95 % utilization) and MAX_FIT_REQUESTS.
FIT_SPAN_S = 200.0
FIT_REQUESTS = 3000
MAX_FIT_REQUESTS = 20_000
CAPACITY_REQUESTS = 2000
# The capacity is measured in an overload at OVERLOAD × a first guess, over OVERLOAD_SPAN_S of arrivals (at
# least OVERLOAD_REQUESTS), from OVERLOAD_SETTLE of their span (the batch has filled by then).
OVERLOAD = 2.0
OVERLOAD_SPAN_S = 120.0
OVERLOAD_REQUESTS = 6000
OVERLOAD_SETTLE = 0.3


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
    # the admitted requests' arrival times and prompt lengths, when the windows come from a per-request trace
    request_arrival: np.ndarray = field(default_factory=lambda: np.zeros(0))
    request_prompt: np.ndarray = field(default_factory=lambda: np.zeros(0))
    request_output: np.ndarray = field(default_factory=lambda: np.zeros(0))

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
                raise SimulationInputError(
                    f"{self.source}: {name} has {len(getattr(self, name))} values for {n} windows")
        if not (math.isfinite(self.width_s) and self.width_s > 0):
            raise SimulationInputError(f"{self.source}: window width must be > 0 seconds, not {self.width_s!r}")
        if not np.isfinite(self.start).all() or (np.diff(self.start) <= 0).any():
            raise SimulationInputError(f"{self.source}: window starts must be finite and increasing")
        for name in ("rate", "mean_prompt", "mean_output"):
            values = getattr(self, name)
            bad = ~np.isfinite(values) | (values < 0)
            if name != "rate":
                bad &= ~self.gap  # a gap has no data: its means are filled with its rate
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise SimulationInputError(
                    f"{self.source}: window {i} (at {self.start[i]:g} s) has {name} {float(values[i])!r}; it must be a "
                    "finite number ≥ 0")
        busy = (self.rate > 0) & ~self.gap
        for name in ("mean_prompt", "mean_output"):
            values = getattr(self, name)
            bad = busy & ((values < 1) | (values > MAX_TOKENS))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise SimulationInputError(
                    f"{self.source}: window {i} (at {self.start[i]:g} s) has traffic but {name} {float(values[i])!r}; "
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
        # window k holds the arrivals in (k·width, (k+1)·width] (those at 0 in the first), as a rate over the
        # last seconds counts them at its end
        index = np.maximum(np.ceil(workload.arrival / width_s).astype(np.int64) - 1, 0)
        n = int(index[-1]) + 1
        count = np.bincount(index, minlength=n).astype(float)
        refused = workload.prompt >= max_model_len
        served = np.bincount(index, weights=(~refused).astype(float), minlength=n)
        # mean lengths of the requests vLLM serves (of all of them where it refuses every one)
        prompt = np.bincount(index, weights=np.where(refused, 0, workload.prompt).astype(float), minlength=n)
        output = np.bincount(index, weights=np.where(refused, 0, workload.output).astype(float), minlength=n)
        prompt_all = np.bincount(index, weights=workload.prompt.astype(float), minlength=n)
        output_all = np.bincount(index, weights=workload.output.astype(float), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_prompt = np.where(served > 0, prompt / served, np.where(count > 0, prompt_all / count, 0.0))
            mean_output = np.where(served > 0, output / served, np.where(count > 0, output_all / count, 0.0))
            share = np.where(count > 0, 1.0 - served / count, 0.0)
        return cls(workload.source, np.arange(n) * width_s, count / width_s, mean_prompt, mean_output, width_s,
                   reject_share=share, notes=(*workload.notes, f"aggregated into {width_s:g} s windows"),
                   request_arrival=workload.arrival[~refused], request_prompt=workload.prompt[~refused],
                   request_output=workload.output[~refused])


def load_rate_windows(path: str | Path, *, start_s: float = 0.0, duration_s: float | None = None,
                      rate_scale: float = 1.0) -> RateWindows:
    """ServeGen's rate windows (`window_start_s`, `total_rate_rps`, mean input/output tokens), cut to
    [start_s, start_s + duration_s) and scaled. A rate of 0 is a gap in ServeGen's data, not idle time
    (data/traces/README.md): see `fill_gaps`, which `simulate_fluid` applies."""
    name = str(path)
    df = read_trace_csv(path)
    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise SimulationInputError(f"rate scale must be > 0, not {rate_scale!r}")
    start, rate, mean_in, mean_out = rate_window_columns(df, name)
    width = float(np.median(np.diff(start))) if len(start) > 1 else 600.0
    end = start_s + duration_s if duration_s is not None else float(start[-1]) + width
    keep = (start + width > start_s) & (start < end)
    if not keep.any():
        raise SimulationInputError(f"{name}: no windows between {start_s:g}s and {end:g}s")
    for what, values in (("total_rate_rps", rate), ("mean_input_tokens_est", mean_in),
                         ("mean_output_tokens_est", mean_out)):
        # a window with rate 0 is a gap (its means are empty in ServeGen's file); elsewhere every value counts
        bad = keep & (np.isnan(values) | (values < 0)) & ((rate != 0) | (values is rate))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SimulationInputError(f"{name}: row {i + 2} has {what} {float(values[i])!r}; it must be a number ≥ 0")
    gap = rate[keep] == 0
    # the cut's first window starts at 0 and its last one ends at the cut's end, as `load_workload` draws them
    starts = np.maximum(start[keep] - start_s, 0.0)
    last_width = min(width, end - float(start[keep][-1]))
    return RateWindows(f"servegen:{Path(name).name}", starts, rate[keep] * rate_scale,
                       mean_in[keep], mean_out[keep], last_width, gap=gap,
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
                       windows.width_s, reject_share=windows.reject_share, request_arrival=windows.request_arrival,
                       request_prompt=windows.request_prompt, request_output=windows.request_output,
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
    trailing = table.shape[len(axes):]  # values per point (a stack of tables), if any
    out = np.zeros(shape + trailing)
    for corner in range(1 << len(axes)):
        index = []
        weight = np.ones(shape)
        for d, (i, w) in enumerate(located):
            upper = (corner >> d) & 1
            index.append(i + upper)
            weight = weight * (w if upper else 1.0 - w)
        out += weight.reshape(shape + (1,) * len(trailing)) * table[tuple(index)]
    return out


@dataclass(frozen=True)
class FluidModel:
    """One replica's fitted behaviour (see the module docstring); `key` names the engine and profile it was
    fitted for, so a table is never used for another."""

    key: dict[str, Any]
    fleet_sizes: np.ndarray
    prompt_means: np.ndarray
    output_means: np.ndarray
    utilizations: np.ndarray
    ttft_grid: np.ndarray
    tpot_grid: np.ndarray
    capacity_rps: np.ndarray  # [prompt, output]
    attainment_table: np.ndarray  # [fleet size, prompt, output, utilization, ttft, tpot], admitted requests
    observables: dict[str, np.ndarray]  # name -> [fleet size, prompt, output, utilization], per replica
    # [prompt, output]: requests one replica runs (admitted, not waiting) in a sustained overload — its batch,
    # as the KV cache (or max_num_seqs) bounds it; what it holds beyond this waits for a first token
    saturated_batch: np.ndarray

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
        out: np.ndarray = np.exp(log_cap)
        return out

    def batch(self, mean_prompt: np.ndarray | float, mean_output: np.ndarray | float) -> np.ndarray:
        """Requests one replica runs in a sustained overload at this length mix (interpolated in log batch)."""
        log_batch = _interpolate(np.log(self.saturated_batch), self._mix_axes(),
                                 self._mix(np.asarray(mean_prompt, float), np.asarray(mean_output, float)))
        out: np.ndarray = np.exp(log_batch)
        return out

    def _size(self, replicas: np.ndarray | float) -> np.ndarray:
        out: np.ndarray = np.log(np.maximum(np.asarray(replicas, float), 1.0))
        return out

    def attainment(self, utilization: np.ndarray | float, mean_prompt: np.ndarray | float,
                   mean_output: np.ndarray | float, ttft_s: float, tpot_s: float,
                   replicas: np.ndarray | float = 1.0) -> np.ndarray:
        """Share of admitted requests meeting both SLOs in a fleet of `replicas` at this utilization and mix."""
        u = np.asarray(utilization, float)
        mix = self._mix(np.asarray(mean_prompt, float), np.asarray(mean_output, float))
        slo = [np.full(np.shape(u), math.log(ttft_s)), np.full(np.shape(u), math.log(tpot_s))]
        axes = [np.log(self.fleet_sizes), *self._mix_axes(), self.utilizations, np.log(self.ttft_grid),
                np.log(self.tpot_grid)]
        out: np.ndarray = np.clip(_interpolate(self.attainment_table, axes, [self._size(replicas), *mix, u, *slo]),
                                  0.0, 1.0)
        return out

    def observe(self, name: str, utilization: np.ndarray | float, mean_prompt: np.ndarray | float,
                mean_output: np.ndarray | float, replicas: np.ndarray | float = 1.0) -> np.ndarray:
        """A steady-state observable (`OBSERVABLES`, per replica) at this utilization, mix and fleet size."""
        axes = [np.log(self.fleet_sizes), *self._mix_axes(), self.utilizations]
        mix = self._mix(np.asarray(mean_prompt, float), np.asarray(mean_output, float))
        return _interpolate(self.observables[name], axes,
                            [self._size(replicas), *mix, np.asarray(utilization, float)])

    # --- persistence
    def to_json(self) -> str:
        data = {"key": self.key, "fleet_sizes": self.fleet_sizes.tolist(), "prompt_means": self.prompt_means.tolist(),
                "output_means": self.output_means.tolist(), "utilizations": self.utilizations.tolist(),
                "ttft_grid": self.ttft_grid.tolist(), "tpot_grid": self.tpot_grid.tolist(),
                "capacity_rps": np.round(self.capacity_rps, 6).tolist(),
                "saturated_batch": np.round(self.saturated_batch, 4).tolist(),
                "attainment": np.round(self.attainment_table, 5).tolist(),
                "observables": {k: np.round(v, 6).tolist() for k, v in self.observables.items()}}
        return json.dumps(data, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FluidModel:
        try:
            raw = json.loads(text)
            return cls(raw["key"], np.array(raw["fleet_sizes"]), np.array(raw["prompt_means"]),
                       np.array(raw["output_means"]),
                       np.array(raw["utilizations"]), np.array(raw["ttft_grid"]), np.array(raw["tpot_grid"]),
                       np.array(raw["capacity_rps"]), np.array(raw["attainment"]),
                       {k: np.array(v) for k, v in raw["observables"].items()}, np.array(raw["saturated_batch"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SimulationInputError(f"not a fluid model table ({exc})") from None

    def __post_init__(self) -> None:
        for name, values in self.observables.items():
            self.observables[name] = _fill_missing_sizes(values)


def _fill_missing_sizes(values: np.ndarray) -> np.ndarray:
    """Cells a fit left without a value (a short, fast fit run at a larger fleet size can end before its
    steady span held a scrape) take the value of the nearest fitted fleet size at the same mix and
    utilization — per replica, the same load shows about the same gauges; the smaller fleet queues a little
    more, the conservative side. Without this, a policy reading the gauges would see NaN and act on
    nothing."""
    if values.ndim < 1 or not np.isnan(values).any():
        return values
    filled = values.copy()
    sizes = values.shape[0]
    for size in range(sizes):
        for other in sorted(range(sizes), key=lambda o: abs(o - size)):
            gap = np.isnan(filled[size])
            if not gap.any():
                break
            filled[size][gap] = values[other][gap]
    return filled


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


def _fixed_fleet(config: FleetConfig, replicas: int = 1) -> FleetConfig:
    return FleetConfig(config.engine, config.profile, model=config.model, initial_replicas=replicas,
                       max_replicas=replicas,
                       cold_start_s=0.0, scrape_interval_s=config.scrape_interval_s,
                       sync_interval_s=config.sync_interval_s, signal_window_s=config.signal_window_s,
                       ttft_slo_s=config.ttft_slo_s, tail_s=config.tail_s)


def fit_capacity(config: FleetConfig, mean_prompt: float, mean_output: float, *, seed: int = 0,
                 requests: int = CAPACITY_REQUESTS) -> float:
    """Requests/s one replica finishes in a sustained overload (`fit_overload`)."""
    return fit_overload(config, mean_prompt, mean_output, seed=seed, requests=requests)[0]


def fit_overload(config: FleetConfig, mean_prompt: float, mean_output: float, *, seed: int = 0,
                 requests: int = CAPACITY_REQUESTS) -> tuple[float, float]:
    """Requests/s one replica finishes in a sustained overload, and the requests it runs meanwhile (its batch).
    Poisson arrivals at OVERLOAD × a first guess (`requests` arriving at once, the throughput between their 10th
    and 90th percentile finish; doubled until the admitted arrivals outrun the finishes), the finishes counted
    from OVERLOAD_SETTLE of the arrivals' span to its end, while the queue never runs dry; the batch is the mean
    number of requests past their first token and not finished over the same span. The guess alone is not the
    capacity: with short requests a batch of `max_num_seqs` is half of `requests`, and their synchronized start
    overstates what a replica sustains by up to a quarter; an overload also pays for the preemptions a full KV
    cache causes and the prefill of every admission. The batch is what a backlog queues behind: the steady states
    the table holds run far fewer requests than a replica whose KV cache is full of them."""
    rng = np.random.default_rng(seed)
    w = Workload("capacity", np.zeros(requests), _exponential_lengths(rng, mean_prompt, requests),
                 _exponential_lengths(rng, mean_output, requests))
    result = simulate(w, _fixed_fleet(config))
    done = np.sort(result.finish[result.finished])
    lo, hi = done[len(done) // 10], done[(9 * len(done)) // 10]
    rate = OVERLOAD * float(9 * len(done) // 10 - len(done) // 10) / float(hi - lo)
    while True:
        n = int(min(3 * MAX_FIT_REQUESTS, max(OVERLOAD_REQUESTS, rate * OVERLOAD_SPAN_S)))
        arrival = np.cumsum(rng.exponential(1.0 / rate, n))
        arrival -= arrival[0]
        w = Workload("overload", arrival, _exponential_lengths(rng, mean_prompt, n),
                     _exponential_lengths(rng, mean_output, n))
        result = simulate(w, _fixed_fleet(config))
        span = float(arrival[-1])
        settled = OVERLOAD_SETTLE * span
        counted = (arrival >= settled) & ~result.rejected
        finish = result.finish[result.finished]
        served = int(((finish >= settled) & (finish < span)).sum())
        if served < 0.9 * int(counted.sum()):  # the queue grew all along: an overload
            # requests past their first token and not finished, on average over the counted span
            first = np.where(result.first_token >= 0, result.first_token, np.inf)
            last = np.where(result.finished, result.finish, np.inf)
            decoding = float(np.clip(np.minimum(last, span) - np.maximum(first, settled), 0.0, None).sum())
            counted_s = (1.0 - OVERLOAD_SETTLE) * span
            return served / counted_s, max(1.0, decoding / counted_s)
        rate *= 2  # the guess was low (a few long prompts can skew it): overload harder


def fit_requests(rate: float) -> int:
    return int(min(MAX_FIT_REQUESTS, max(FIT_REQUESTS, rate * FIT_SPAN_S)))


def fit_point(config: FleetConfig, mean_prompt: float, mean_output: float, rate: float, *, seed: int = 0,
              replicas: int = 1, requests: int | None = None, ttft_grid: Sequence[float] = TTFT_GRID,
              tpot_grid: Sequence[float] = TPOT_GRID) -> tuple[np.ndarray, dict[str, float]]:
    """A fixed fleet of `replicas` (one, as a rule) at Poisson `rate` per replica with exponential lengths:
    attainment over the SLO grid (among admitted requests arriving in the steady middle, 20–90 % of the run)
    and the per-replica mean of what llmobs' signals show at the syncs in that span (the run goes through the
    fleet's scrape path)."""
    rng = np.random.default_rng(seed)
    rate *= replicas
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

    result = simulate(w, _fixed_fleet(config, replicas), record)
    steady = (arrival >= lo) & (arrival <= hi) & ~result.rejected
    ttft, tpot = result.ttft[steady], result.tpot[steady]
    finished = result.finished[steady]
    with np.errstate(invalid="ignore"):
        att = np.array([[float((finished & (ttft <= t) & (tpot <= p)).mean()) for p in tpot_grid]
                        for t in ttft_grid])
    observed: dict[str, float] = {}
    for name in SIGNALS:
        values = np.array([getattr(load, name) for load in loads], dtype=float)
        observed[name] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    # Little's law over the steady span: requests in the replica (running + waiting) on average
    observed["concurrency"] = (float(steady.sum()) / (hi - lo) * float(np.nanmean(result.e2e[steady]))
                               / replicas)
    observed["drain_s"] = max(0.0, float(np.nanmax(result.finish)) - float(arrival[-1]))
    return att, observed


def point_seed(i: int, j: int, k: int) -> int:
    """The seed of grid point (prompt i, output j, utilization k): a refit of one point repeats its draw."""
    return (i * 100 + j) * 100 + k


CHECK_POINTS = ((3, 4, 2), (4, 1, 5), (1, 2, 6))  # grid points (prompt, output, utilization) a check refits


def check_table(config: FleetConfig, model: FluidModel, points: Sequence[tuple[int, int, int]] = CHECK_POINTS
                ) -> list[str]:
    """Refit a few grid points of `model` (one replica, the same seeds) and say where they differ from it:
    the committed table must be what the simulator gives (empty list when it is)."""
    drift = []
    for i, j, k in points:
        mp, mo, u = float(model.prompt_means[i]), float(model.output_means[j]), float(model.utilizations[k])
        capacity, batch = fit_overload(config, mp, mo, seed=i * 100 + j)
        if not math.isclose(capacity, float(model.capacity_rps[i, j]), rel_tol=1e-5):
            drift.append(f"capacity at prompt {mp:g}, output {mo:g}: {capacity:.6f} vs {model.capacity_rps[i, j]:.6f}")
        if not math.isclose(batch, float(model.saturated_batch[i, j]), rel_tol=1e-4):
            drift.append(f"saturated batch at prompt {mp:g}, output {mo:g}: {batch:.4f} vs "
                         f"{model.saturated_batch[i, j]:.4f}")
        attainment, observed = fit_point(config, mp, mo, u * capacity, seed=point_seed(i, j, k))
        if not np.allclose(attainment, model.attainment_table[0, i, j, k], atol=1e-4):
            drift.append(f"attainment at prompt {mp:g}, output {mo:g}, utilization {u:g}")
        for name in OBSERVABLES:
            if not math.isclose(observed[name], float(model.observables[name][0, i, j, k]), rel_tol=1e-4,
                                abs_tol=1e-5):
                drift.append(f"{name} at prompt {mp:g}, output {mo:g}, utilization {u:g}: {observed[name]:.6f} vs "
                             f"{model.observables[name][0, i, j, k]:.6f}")
    return drift


def fit_fluid_model(config: FleetConfig, *, prompt_means: Sequence[float] = PROMPT_MEANS,
                    output_means: Sequence[float] = OUTPUT_MEANS, utilizations: Sequence[float] = UTILIZATIONS,
                    fleet_sizes: Sequence[int] = FLEET_SIZES, progress: bool = False) -> FluidModel:
    """Fit the table for `config`'s engine and profile (minutes for the default grid)."""
    shape = (len(prompt_means), len(output_means))
    capacity = np.zeros(shape)
    batch = np.zeros(shape)
    att = np.zeros((len(fleet_sizes), *shape, len(utilizations), len(TTFT_GRID), len(TPOT_GRID)))
    obs = {name: np.zeros((len(fleet_sizes), *shape, len(utilizations))) for name in OBSERVABLES}
    for i, mp in enumerate(prompt_means):
        for j, mo in enumerate(output_means):
            capacity[i, j], batch[i, j] = fit_overload(config, mp, mo, seed=i * 100 + j)
            for f, n in enumerate(fleet_sizes):
                for k, u in enumerate(utilizations):
                    att[f, i, j, k], observed = fit_point(config, mp, mo, u * capacity[i, j],
                                                          seed=point_seed(i, j, k), replicas=n)
                    for name, value in observed.items():
                        obs[name][f, i, j, k] = value
                if progress:
                    print(f"{n} × prompt {mp:g} output {mo:g}: capacity {capacity[i, j]:.3f} req/s per replica; "
                          "attainment(1 s, 50 ms) by utilization "
                          f"{np.round(att[f, i, j, :, TTFT_GRID.index(1.0), TPOT_GRID.index(0.05)], 3)}", flush=True)
    return FluidModel(model_key(config), np.array(fleet_sizes, float), np.array(prompt_means, float),
                      np.array(output_means, float),
                      np.array(utilizations, float), np.array(TTFT_GRID), np.array(TPOT_GRID), capacity, att, obs,
                      batch)


# --- the fluid fleet ---------------------------------------------------------------------------------------


def _reject_share(windows: RateWindows, max_model_len: int) -> np.ndarray:
    """Per window, the share of prompts vLLM refuses: as counted, or P(ceil(X) ≥ max_model_len) for an
    exponential X around the window's mean prompt."""
    with np.errstate(divide="ignore", over="ignore"):
        tail = np.exp(-(max_model_len - 1) / np.maximum(windows.mean_prompt, 1e-9))
    share: np.ndarray = np.where(np.isnan(windows.reject_share), tail, windows.reject_share)
    return share


class _Cumulative:
    """Integrals of the windows' demand from time 0, exact for piecewise-constant windows: requests, refused
    requests, and the prompt and output tokens of the admitted ones."""

    def __init__(self, windows: RateWindows, max_model_len: int) -> None:
        edges = np.append(windows.start, windows.end[-1])
        dt = np.diff(edges)
        count = windows.rate * dt
        share = _reject_share(windows, max_model_len)
        admitted = count * (1.0 - share)
        self.edges = edges
        self.requests = np.concatenate(([0.0], np.cumsum(count)))
        self.prompt = np.concatenate(([0.0], np.cumsum(admitted * windows.mean_prompt)))
        self.output = np.concatenate(([0.0], np.cumsum(admitted * windows.mean_output)))
        self.rejected = np.concatenate(([0.0], np.cumsum(count * share)))

    def at(self, series: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        out: np.ndarray = np.asarray(np.interp(t, self.edges, series))
        return out


@dataclass(frozen=True)
class PrefillState:
    """A burst's prompts, per replica and step: `pending` prompt tokens not yet prefilled at the step's start,
    `burst` the prompt tokens arriving in the step, the decode step time at the step's load, and how a
    flooded replica prefills (`rate` tokens/s, `budget` tokens per step of `full_step_s`)."""

    pending: np.ndarray
    burst: np.ndarray
    decode_step_s: np.ndarray
    rate: float
    budget: int
    full_step_s: float
    request_step: np.ndarray  # the step of each admitted request (per-request traces only)
    request_prompt: np.ndarray
    request_output: np.ndarray
    step_s: float = 1.0
    request_arrival: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # the replica each request went to (`least_loaded`), set once the run knows how many were ready
    request_replica: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def first_token_s(self, replica: np.ndarray) -> np.ndarray:
        """Each request's TTFT from its replica's prefill queue (`replica[i]`: where request i went): prompts
        are prefilled first come first served at `rate`, from their own arrival instants (Lindley's
        recursion, per replica), and the first token comes at the end of the step that holds the prompt's
        last token — a step that also takes the prompts queued behind it, up to the token budget."""
        n = len(replica)
        if not n:
            return np.zeros(0)
        by = np.lexsort((np.arange(n), replica))  # per replica, in arrival order
        rep_of = replica[by]
        arrival = self.request_arrival[by].astype(float)
        service = self.request_prompt[by].astype(float) / self.rate
        done = np.cumsum(service)  # prefill seconds through each request, all replicas in a row
        start = np.flatnonzero(np.r_[True, rep_of[1:] != rep_of[:-1]])
        size = np.diff(np.r_[start, n])
        base = np.repeat(done[start] - service[start], size)
        work = done - base  # per replica
        # finish_i = work_i + max over k ≤ i of (arrival_k − work_{k−1}), the max restarting at each replica
        slack = arrival - (work - service)
        span = float(np.abs(slack).max()) + 1.0
        lift = np.repeat(np.arange(len(start)) * 4.0 * span, size)
        best = np.maximum.accumulate(slack + lift) - lift
        finish = work + best
        # the busy period's prefill tokens through it (the period opened where the max was taken), and the
        # queued prompts that fill the rest of its step
        lifted = slack + lift
        opened = np.maximum.accumulate(np.where(lifted >= np.maximum.accumulate(lifted), np.arange(n), 0))
        tokens = (done - (done[opened] - service[opened])) * self.rate
        room = np.ceil(tokens / self.budget - 1e-9) * self.budget - tokens
        horizon = float(max(arrival.max(), finish.max())) + 1.0
        key = rep_of * horizon * 2.0 + arrival
        queued = np.searchsorted(key, rep_of * horizon * 2.0 + finish, side="right") - 1
        behind = np.maximum(done[np.maximum(queued, np.arange(n))] - done, 0.0) * self.rate
        first = finish + np.minimum(room, behind) / self.rate - arrival
        out = np.empty(n)
        out[by] = first
        return out

    def least_loaded(self, replicas: np.ndarray) -> np.ndarray:
        """Where least-loaded routing sends each request (`replicas[i]`: how many are ready when request i
        arrives): to the replica holding the fewest unfinished requests, ties to the first. A request holds its
        replica from its arrival until it is prefilled (first come first served at `rate` on that replica) and
        has decoded its output at the decode step time of its step. One pass over the requests in Python: only
        per-request traces (hours of them, not ServeGen's weeks of rate windows) come here."""
        n = len(self.request_step)
        out = np.zeros(n, dtype=np.int64)
        if not n:
            return out
        width = int(replicas.max())
        held = [0] * width
        prefilled_at = [0.0] * width  # when each replica's prefill queue runs dry
        leaving: list[tuple[float, int]] = []  # (finish, replica) of the requests routed so far
        arrival = self.request_arrival.astype(float).tolist()
        prefill_s = (self.request_prompt.astype(float) / self.rate).tolist()
        decode_s = ((np.maximum(self.request_output.astype(float), 1.0) - 1.0)
                    * self.decode_step_s[self.request_step]).tolist()
        ready = replicas.tolist()
        for i in range(n):
            now = arrival[i]
            while leaving and leaving[0][0] <= now:
                held[heapq.heappop(leaving)[1]] -= 1
            k = ready[i]
            best = 0
            for r in range(1, k):
                if held[r] < held[best]:
                    best = r
            done = max(now, prefilled_at[best]) + prefill_s[i]
            prefilled_at[best] = done
            held[best] += 1
            heapq.heappush(leaving, (done + decode_s[i], best))
            out[i] = best
        return out

    def per_request_met(self, ttft_s: float, tpot_s: float, ready: np.ndarray) -> np.ndarray:
        """Per step, the share of a per-request trace's arrivals that meet both SLOs, from the requests' own
        arrival instants and lengths: each request goes where least-loaded routing sends it (`least_loaded`), so
        the prompts arriving behind a long one are steered away from the replica still prefilling it, as a real
        router steers them (dealt in turn, they would queue behind it); a request's first token waits for its replica's
        prefill queue (`first_token_s`), and it decodes while the prompts behind it on its replica — in its step and
        arriving while it decodes — are prefilled (a full-budget step per budget of them), its other steps
        taking the decode step time at the replica's load."""
        steps = len(self.pending)
        step = self.request_step
        first = np.searchsorted(step, step, side="left")
        rank = np.arange(len(step)) - first
        replicas = np.maximum(1, np.round(ready[step]).astype(np.int64))
        replica = self.request_replica if len(self.request_replica) == len(step) else self.least_loaded(replicas)
        order = np.lexsort((rank, replica, step))
        prompt = self.request_prompt[order].astype(float)
        group = step[order] * (int(replicas.max()) + 1) + replica[order]
        cum = np.cumsum(prompt)
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], len(group)]
        size = ends - starts
        total = np.repeat(cum[ends - 1], size)
        behind = total - cum  # the prompts after it on its replica in this step
        pending = self.pending[step[order]]
        ttft_ok = self.first_token_s(replica)[order] <= ttft_s
        gaps = np.maximum(self.request_output[order].astype(float) - 1.0, 1.0)
        dec = self.decode_step_s[step[order]]
        # the prompts arriving on its replica while it decodes (later steps' bursts) are prefilled behind it
        # too: their chunks stretch its steps as well (the decode time taken from the steps it then has full)
        arrived = np.concatenate(([0.0], np.cumsum(np.where(np.isfinite(self.burst), self.burst, 0.0))))
        since = (step[order] + 1).astype(float)  # its step's end, in steps
        full_steps = np.minimum(behind / self.budget, gaps)
        for _ in range(2):
            decode_s = full_steps * self.full_step_s + (gaps - full_steps) * dec
            later = np.interp(np.minimum(since + decode_s / self.step_s, steps), np.arange(steps + 1),
                              arrived) - arrived[step[order] + 1]
            full_steps = np.minimum((behind + later) / self.budget, gaps)
        tpot = (full_steps * self.full_step_s + (gaps - full_steps) * dec) / gaps
        tpot_ok = (tpot <= tpot_s) | (self.request_output[order] <= 1)
        ok = (ttft_ok & tpot_ok & np.isfinite(pending)).astype(float)
        counted = np.bincount(step[order], minlength=steps).astype(float)
        met = np.bincount(step[order], weights=ok, minlength=steps)
        with np.errstate(divide="ignore", invalid="ignore"):
            share: np.ndarray = np.where(counted > 0, met / counted, 1.0)
        return share


@dataclass
class _FluidReplica:
    added_at: float
    ready_at: float
    ended_at: float = math.nan
    held: float = 0.0  # requests in it (running + waiting), once it is ready
    finishing: float = 0.0  # requests/s it finishes (a new replica none: its first requests are still running)


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
    wait_start: np.ndarray
    wait_end: np.ndarray
    prefill: PrefillState
    capacity: np.ndarray
    capacity_replicas: np.ndarray
    utilization: np.ndarray
    fleet_size: np.ndarray
    mean_prompt: np.ndarray
    mean_output: np.ndarray
    replicas: tuple[tuple[float, float], ...]  # (added_at, ended_at) of every replica
    gpus_per_replica: int
    end_time: float
    replica_timeline: tuple[tuple[float, int, int], ...] = ()
    notes: tuple[str, ...] = ()
    # per sync with a controller, the utilization whose steady state the first ready replica was shown at
    # (NaN with none ready); every replica is shown at the steady state of the requests it holds
    shown_utilization: np.ndarray = field(default_factory=lambda: np.zeros(0))

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
        """Expected requests per step that finish within both SLOs: those arriving while the queue beyond a
        saturated replica's would make them wait longer than `ttft_s` miss (the wait moves linearly over
        the step); the others meet the SLOs as a replica in steady state at the step's utilization does."""
        for name, value in (("TTFT", ttft_s), ("TPOT", tpot_s)):
            if not (math.isfinite(value) and value > 0):
                raise SimulationInputError(f"{name} SLO must be a positive number of seconds, not {value!r}")
        w0, w1 = self.wait_start, self.wait_end
        with np.errstate(invalid="ignore", divide="ignore"):
            ramp = np.clip((w1 - ttft_s) / (w1 - w0), 0.0, 1.0)  # share of the step with wait > ttft_s
            ramp = np.where(w0 > ttft_s, np.clip((w0 - ttft_s) / (w0 - w1), 0.0, 1.0), ramp)
        late = np.where(np.isinf(w0) | np.isinf(w1), 1.0,
                        np.where((w0 > ttft_s) & (w1 > ttft_s), 1.0,
                                 np.where((w0 <= ttft_s) & (w1 <= ttft_s), 0.0, ramp)))
        if len(self.prefill.request_step):
            # a per-request trace: the requests' own arrival instants and lengths give TTFT (the prefill queue)
            # and TPOT (the decode steps at the load, stretched by the prefill of the prompts behind)
            served = self.prefill.per_request_met(ttft_s, tpot_s, self.capacity_replicas)
        else:  # rate windows: Poisson arrivals within a window, as the table has them
            served = self.model.attainment(self.utilization, self.mean_prompt, self.mean_output, ttft_s, tpot_s,
                                           self.fleet_size)
        met: np.ndarray = self.admitted * (1.0 - late) * served
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


_SHOWN = ("running", "waiting", "kv_usage", "ttft_p90_s")  # the table's observables a ControlView shows


def _locate(axis: list[float], x: float) -> tuple[int, float]:
    """`_axis_weights` for one point, in Python floats with the same arithmetic (so the same result)."""
    x = min(max(x, axis[0]), axis[-1])
    i = min(max(bisect.bisect_right(axis, x) - 1, 0), len(axis) - 2)
    return i, (x - axis[i]) / (axis[i + 1] - axis[i])


class _ShownSlice:
    """The shown observables at one (fleet size, mix), as functions of utilization alone. A controller looks
    at the fleet every sync, and numpy's per-call overhead on a single point dominated a long run; this is
    `_interpolate`'s arithmetic, corner by corner in its order, in Python floats, so the values are the same
    bit for bit. `table` is the stacked table as nested lists, `located` the (index, weight) on the first
    three axes."""

    def __init__(self, table: list[Any], u_axis: list[float], located: Sequence[tuple[int, float]]) -> None:
        self.u_axis = u_axis
        self.partial: list[float] = []  # weight of each corner of the first three axes, `_interpolate`'s order
        self.rows: list[list[list[float]]] = []  # per corner: the shown values at each utilization knot
        (i0, w0), (i1, w1), (i2, w2) = located
        for corner in range(8):
            b0, b1, b2 = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
            weight = 1.0 * (w0 if b0 else 1.0 - w0)
            weight = weight * (w1 if b1 else 1.0 - w1)
            weight = weight * (w2 if b2 else 1.0 - w2)
            self.partial.append(weight)
            self.rows.append(table[i0 + b0][i1 + b1][i2 + b2])

    def at(self, utilization: float) -> list[float]:
        i, w = _locate(self.u_axis, utilization)
        out = [0.0] * len(self.rows[0][0])
        for upper, share in ((0, 1.0 - w), (1, w)):
            for partial, rows in zip(self.partial, self.rows, strict=True):
                weight = partial * share
                for j, value in enumerate(rows[i + upper]):
                    out[j] += weight * value
        return out


class FluidFleet:
    """Runs rate windows through a fleet of fitted replicas; `run()` returns one `FluidResult`."""

    def __init__(self, windows: RateWindows, config: FleetConfig, model: FluidModel,
                 controller: Controller | None = None, *, resolution_s: float = 1.0) -> None:
        if not (math.isfinite(resolution_s) and resolution_s > 0):
            raise SimulationInputError(f"resolution must be > 0 seconds, not {resolution_s!r}")
        self.windows = fill_gaps(windows)
        self.resolution_s = max(resolution_s, windows.width_s)
        self.config = config
        self.model = model
        self.controller = controller
        self.live: list[_FluidReplica] = []
        self.retired: list[_FluidReplica] = []
        self.timeline: list[tuple[float, int, int]] = []
        self.router = 0.0  # requests waiting at the router for a first ready replica
        self.shown_utilization: list[float] = []  # per view, the utilization its first ready replica shows
        self._cum = _Cumulative(self.windows, config.engine.max_model_len)
        self._utilization = 0.0
        self._mix = (1.0, 1.0)
        self._knots = (np.zeros(1), np.zeros(1))  # the current step's throughput curve (concurrency, requests/s)
        self._overload_batch = 0.0  # the current step's overload batch: what a replica runs before it queues
        self._curves: dict[tuple[float, float, float], tuple[float, np.ndarray, np.ndarray]] = {}
        self._shown = np.stack([model.observables[name] for name in _SHOWN], axis=-1)
        self._capacities: dict[tuple[float, float], float] = {}
        # the view's interpolation in plain floats (see `_ShownSlice`): the table and axes as lists, the logs of
        # the fleet size and mix taken with numpy as `_interpolate`'s callers take them
        self._shown_lists: list[Any] = self._shown.tolist()
        self._log_axes: list[list[float]] = [np.log(model.fleet_sizes).tolist(), np.log(model.prompt_means).tolist(),
                                             np.log(model.output_means).tolist()]
        self._u_axis: list[float] = model.utilizations.tolist()
        self._log_capacity: list[list[float]] = np.log(model.capacity_rps).tolist()
        self._log_batch: list[list[float]] = np.log(model.saturated_batch).tolist()
        self._batches: dict[tuple[float, float], float] = {}
        self._concurrency_lists: list[Any] = model.observables["concurrency"][..., None].tolist()
        self._logs: dict[float, float] = {}
        self._log_mix = (0.0, 0.0)

    def _counts(self, now: float) -> tuple[int, int]:
        ready = sum(1 for r in self.live if r.ready_at <= now)
        return ready, len(self.live) - ready

    def _level_utilization(self, held: float) -> float:
        """The fitted utilization whose steady state holds `held` requests in a replica (u_max beyond it)."""
        knots, _ = self._knots
        if len(knots) < 3:
            return 0.0
        fitted = len(self.model.utilizations)
        return float(np.interp(min(held, knots[fitted]), knots[1:fitted + 1], self.model.utilizations))

    def _drain_s(self, victim: _FluidReplica) -> float:
        """How long a ready replica removed now keeps running: it takes the requests it holds with it (no
        request moves to another replica, as in vLLM) and serves them at its capacity."""
        mp, mo = self._mix
        capacity = self._capacity(mp, mo)
        u = self._level_utilization(victim.held)
        return max(victim.held / capacity, float(self.model.observe("drain_s", u, mp, mo)))

    def _scale_to(self, desired: int, now: float) -> None:
        desired = max(0, min(int(desired), self.config.max_replicas))
        changed = desired != len(self.live)
        while len(self.live) < desired:
            self.live.append(_FluidReplica(now, now + self.config.cold_start_s))
        while len(self.live) > desired:
            starting = [r for r in self.live if r.ready_at > now]
            victim = starting[-1] if starting else self.live[-1]
            victim.ended_at = now if victim.ready_at > now else now + self._drain_s(victim)  # before it leaves
            self.live.remove(victim)
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
        """What a controller sees: each ready replica at the steady state of the requests it holds (those
        beyond a saturated replica's batch added to `waiting` and to TTFT p90 as the time to serve them), the
        fleet's served rate split as their throughputs are."""
        ready, starting = self._counts(now)
        mp, mo = self._mix
        loads: tuple[ReplicaLoad, ...] = ()
        if ready:
            knots, rates = self._knots
            full = float(knots[len(self.model.utilizations)])
            batch = max(full, self._overload_batch)
            capacity = self._capacity(mp, mo)
            helds = [r.held for r in self.live if r.ready_at <= now]
            throughput = [float(np.interp(held, knots, rates)) for held in helds]
            total = sum(throughput)
            shown = self._shown_slice(ready)
            by_level: dict[tuple[float, float], ReplicaLoad] = {}
            out = []
            self.shown_utilization.append(self._level_utilization(helds[0]))
            for held, rate in zip(helds, throughput, strict=True):
                key = (held, rate)
                load = by_level.get(key)
                if load is None:
                    running, waiting, kv_usage, ttft_p90 = shown.at(self._level_utilization(held))
                    # beyond the fitted steady states a replica first fills its batch (vLLM admits while it has
                    # room, budget and blocks: ~3× L(u_max) at 1000/200 tokens), and only what it holds beyond
                    # that batch waits, as the backlog `_serve` and the TTFTs count
                    queued = max(0.0, held - batch)
                    extra = max(0.0, min(held, batch) - full)
                    if extra > 0 and running > 0:  # the KV they hold: as much per request as at L(u_max)
                        kv_usage *= (running + extra) / running
                    running += extra
                    per_replica = served_rate * rate / total if total > 0 else served_rate / ready
                    load = by_level[key] = ReplicaLoad(
                        running=running, waiting=waiting + queued, kv_usage=min(1.0, max(0.0, kv_usage)),
                        request_rate=per_replica, prompt_tokens_rate=per_replica * mp,
                        generation_tokens_rate=per_replica * mo,
                        ttft_p90_s=ttft_p90 + (queued / capacity if capacity > 0 else 0.0))
                out.append(load)
            loads = tuple(out)
        else:
            self.shown_utilization.append(math.nan)
        door_rate, door_prompt = self._door(now)
        return ControlView(now, ready, starting, loads, door_rate, door_prompt)

    def _log(self, x: float) -> float:
        """log(x) as numpy takes it on a 0-d array, as `FluidModel`'s interpolations do (math.log may differ
        in the last bit), cached: fleet sizes repeat."""
        cached = self._logs.get(x)
        if cached is None:
            cached = float(np.log(np.array(x)))
            if len(self._logs) < 4096:
                self._logs[x] = cached
        return cached

    def _mix_located(self, mean_prompt: float, mean_output: float) -> tuple[tuple[int, float], tuple[int, float]]:
        _, prompts, outputs = self._log_axes
        return (_locate(prompts, self._log(max(mean_prompt, 1.0))), _locate(outputs, self._log(max(mean_output, 1.0))))

    def _log_interpolated(self, table: Sequence[Sequence[float]], mean_prompt: float, mean_output: float) -> float:
        """A [prompt, output] table's log value interpolated at one mix, in Python floats with
        `FluidModel`'s arithmetic (the same weights, the same order of additions)."""
        (ip, wp), (io, wo) = self._mix_located(mean_prompt, mean_output)
        total = 0.0
        for corner in range(4):
            b0, b1 = corner & 1, corner >> 1
            weight = (wp if b0 else 1.0 - wp) * (wo if b1 else 1.0 - wo)
            total += weight * table[ip + b0][io + b1]
        return total

    def _capacity(self, mean_prompt: float, mean_output: float) -> float:
        """`FluidModel.capacity` at one mix (same value), cached: mixes repeat."""
        key = (mean_prompt, mean_output)
        cached = self._capacities.get(key)
        if cached is None:
            log_capacity = self._log_interpolated(self._log_capacity, mean_prompt, mean_output)
            cached = self._capacities[key] = float(np.exp(np.array(log_capacity)))
        return cached

    def _batch(self, mean_prompt: float, mean_output: float) -> float:
        """`FluidModel.batch` at one mix, cached: mixes repeat."""
        key = (mean_prompt, mean_output)
        cached = self._batches.get(key)
        if cached is None:
            cached = self._batches[key] = math.exp(self._log_interpolated(self._log_batch, mean_prompt, mean_output))
        return cached

    def _shown_slice(self, ready: int) -> _ShownSlice:
        sizes, prompts, outputs = self._log_axes
        located = (_locate(sizes, self._log(float(ready))), _locate(prompts, self._log_mix[0]),
                   _locate(outputs, self._log_mix[1]))
        return _ShownSlice(self._shown_lists, self._u_axis, located)

    def _curve(self, mean_prompt: float, mean_output: float, replicas: float) -> tuple[float, np.ndarray, np.ndarray]:
        key = (mean_prompt, mean_output, replicas)
        cached = self._curves.get(key)
        if cached is None:
            cached = self._curves[key] = self._fit_curve(mean_prompt, mean_output, replicas)
        return cached

    def _fit_curve(self, mean_prompt: float, mean_output: float, replicas: float
                   ) -> tuple[float, np.ndarray, np.ndarray]:
        """A replica's throughput as a function of the requests in it at this mix: capacity, and the knots
        (concurrency, requests/s) where the steady state at each fitted utilization u has concurrency L(u) and
        throughput u × capacity. Above L(u_max) the requests beyond it queue: the throughput approaches
        capacity as a single-server queue's does, L(u) = L(u_max)·(1 − u_max)/(1 − u), so that a replica
        loaded just below its capacity builds the queue a real one does instead of serving at capacity with
        none; beyond the last of `QUEUE_UTILIZATIONS` it serves at capacity and the rest waits."""
        m = self.model
        mu = self._capacity(mean_prompt, mean_output)
        u = m.utilizations
        # `m.observe("concurrency", …)` at each fitted utilization, in Python floats (same values)
        located = (_locate(self._log_axes[0], self._log(max(1.0, replicas))),
                   *self._mix_located(mean_prompt, mean_output))
        concurrency = _ShownSlice(self._concurrency_lists, self._u_axis, located)
        level = np.maximum.accumulate(np.array([concurrency.at(x)[0] for x in self._u_axis]))
        level = level + np.arange(len(level)) * 1e-9  # strictly increasing for the inverse
        top = float(u[-1])
        queue = np.array([x for x in QUEUE_UTILIZATIONS if x > top])
        queued = level[-1] * (1.0 - top) / (1.0 - queue) + np.arange(1, len(queue) + 1) * 1e-6
        knots = np.concatenate(([0.0], level, queued, [queued[-1] * 1.05 + 1e-6] if len(queue) else
                                [level[-1] * 1.05 + 1e-6]))
        rates = np.concatenate(([0.0], u * mu, queue * mu, [mu]))
        return mu, knots, rates

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
        count = np.diff(c.at(c.requests, sync_edges)) - np.diff(c.at(c.rejected, sync_edges))
        with np.errstate(invalid="ignore", divide="ignore"):
            mix_prompt = np.diff(c.at(c.prompt, sync_edges)) / count
            mix_output = np.diff(c.at(c.output, sync_edges)) / count
        for series in (mix_prompt, mix_output):  # a step without arrivals keeps the last mix
            ok = np.isfinite(series) & (count > 1e-9)
            series[:] = pd.Series(np.where(ok, series, np.nan)).ffill().bfill().fillna(1.0).to_numpy()
        log_prompt = np.log(np.maximum(mix_prompt, 1.0)).tolist()  # for the view's interpolation
        log_output = np.log(np.maximum(mix_output, 1.0)).tolist()
        tokens = np.diff(c.at(c.prompt, edges))  # prompt tokens admitted per substep
        # A replica flooded with prompts prefills a full token budget per step: this is how fast a burst's
        # prefill backlog clears (the profile's step time, decoding sequences aside).
        budget = cfg.engine.max_num_batched_tokens
        full_step = cfg.profile.step_seconds(budget, 0, 0)
        prefill_rate = budget / full_step
        prefill = 0.0  # prompt tokens admitted and not yet prefilled, fleet-wide
        n = len(t0)
        pending = np.zeros(n)  # per replica, at each substep's start
        burst = np.zeros(n)  # prompt tokens arriving per replica in the substep
        utilization = np.zeros(n)
        wait_start = np.zeros(n)
        wait_end = np.zeros(n)
        capacity = np.zeros(n)
        u_grid = m.utilizations
        u_max = m.max_utilization
        sizes = np.ones(n)
        ready_count = np.zeros(n)
        decode_step = np.full(n, cfg.profile.step_seconds(0, 1, 0))
        for k in range(steps):
            fleet = float(max(1, self._counts(k * dt)[0]))
            mu, knots, rates = self._curve(float(mix_prompt[k]), float(mix_output[k]), fleet)
            self._knots = (knots, rates)
            fitted = len(u_grid)
            full = knots[fitted]  # L(u_max): the most requests a fitted steady state holds
            # what a replica holds beyond its overload batch waits for a first token (a backlog)
            batch = self._overload_batch = max(full, self._batch(float(mix_prompt[k]), float(mix_output[k])))
            served = 0.0
            for j in range(k * substeps, (k + 1) * substeps):
                sub_end = t0[j] + h
                # the replicas serving in this substep, with the share of it they are ready for
                serving = [(r, min(1.0, (sub_end - r.ready_at) / h)) for r in self.live if r.ready_at < sub_end]
                ready = sum(w for _, w in serving)
                capacity[j] = ready * mu
                ready_count[j] = ready
                sizes[j] = fleet
                pending[j] = prefill / ready if ready > 0 else math.inf
                burst[j] = tokens[j] / ready if ready > 0 else math.inf
                prefill = max(0.0, prefill + tokens[j] - ready * prefill_rate * h)
                if ready > 0:
                    if self.router > 0:  # what waited for a replica is on the first one ready
                        min(serving, key=lambda rw: rw[0].ready_at)[0].held += self.router
                        self.router = 0.0
                    # replicas holding as many requests, finishing them as fast (and ready as long) move together
                    groups: dict[tuple[float, float, float], float] = {}
                    for r, w in serving:
                        key = (r.held, w, r.finishing)
                        groups[key] = groups.get(key, 0.0) + w
                    levels: dict[float, float] = {}
                    for (level, _, _), weight in groups.items():
                        levels[level] = levels.get(level, 0.0) + weight
                    before = sum(level * weight for level, weight in levels.items())
                    water = _water_level(levels, float(admitted[j]))
                    lowest = min(levels)
                    moved: dict[tuple[float, float, float], tuple[float, float]] = {}
                    for level, w, finishing in groups:
                        moved[level, w, finishing] = _serve(level, max(level, water), finishing, w * h, knots,
                                                            rates, batch)
                    for r, w in serving:
                        r.held, r.finishing = moved[r.held, w, r.finishing]
                    # where this substep's arrivals went: the least-loaded replicas
                    q = min(moved[group][0] for group in groups if group[0] == lowest)
                    after = sum(moved[group][0] * weight for group, weight in groups.items())
                    served += before + admitted[j] - after
                    per = 0.5 * (lowest + q)
                    utilization[j] = float(np.interp(min(per, full), knots[1:fitted + 1], u_grid))
                    wait_start[j] = max(0.0, lowest - batch) / mu
                    wait_end[j] = max(0.0, q - batch) / mu
                    decode_step[j] = cfg.profile.step_seconds(
                        0, max(1, round(per)), round(per * (mix_prompt[k] + mix_output[k] / 2)))
                else:
                    self.router += admitted[j]
                    utilization[j] = u_max
                    wait_start[j] = wait_end[j] = math.inf
            self._utilization = float(utilization[(k + 1) * substeps - 1])
            self._mix = (float(mix_prompt[k]), float(mix_output[k]))
            self._log_mix = (log_prompt[k], log_output[k])
            if self.controller is not None:
                desired = self.controller(self._view((k + 1) * dt, served / dt))
                if desired is not None:
                    self._scale_to(desired, (k + 1) * dt)
        end_time = float(edges[-1])
        ready_capacity = float(self.model.capacity(*self._mix))
        if self.live:
            # the run goes on until the most loaded replica has served what it holds
            held = max([r.held for r in self.live if r.ready_at <= end_time] + [self.router])
            tail = held / ready_capacity if ready_capacity > 0 else cfg.tail_s
            end_time += min(tail, cfg.tail_s)
        notes = list(self.windows.notes)
        replicas = tuple((r.added_at, r.ended_at) for r in self.retired) + tuple(
            (r.added_at, end_time) for r in self.live)
        # the step each request arrived in, with the windows' convention: (k·h, (k+1)·h], those at 0 in the first
        request_step = np.minimum(np.maximum(np.ceil(self.windows.request_arrival / h).astype(np.int64) - 1, 0),
                                  n - 1)
        prefill_state = PrefillState(pending, burst, decode_step, prefill_rate, budget, full_step, request_step,
                                     self.windows.request_prompt, self.windows.request_output, h,
                                     self.windows.request_arrival)
        # where each request of a per-request trace went: routed once, whatever SLOs are asked of the result
        ready_then = np.maximum(1, np.round(ready_count[request_step]).astype(np.int64))
        prefill_state = replace(prefill_state, request_replica=prefill_state.least_loaded(ready_then))
        return FluidResult(m, h, t0, arrivals, admitted, wait_start, wait_end, prefill_state, capacity,
                           ready_count, utilization,
                           sizes,
                           np.repeat(mix_prompt, substeps), np.repeat(mix_output, substeps), replicas,
                           cfg.profile.gpus_per_replica, end_time, tuple(self.timeline), tuple(notes),
                           np.array(self.shown_utilization))


def _serve(held: float, target: float, finishing: float, dt: float, knots: np.ndarray, rates: np.ndarray,
           batch: float) -> tuple[float, float]:
    """One replica over `dt` seconds of service: it holds `held` requests, `target` with this step's arrivals,
    and finishes them at `finishing` requests/s. Returns what it holds and its finish rate after the step.

    The finish rate follows the steady state's throughput X(Q) at what the replica holds (`knots` → `rates`)
    with a lag: dX/dt = (X(Q) − X)/τ, τ = min(Q, batch)/X(Q), the time a request spends in the batch at this
    load (Little's law). A request admitted into a replica's batch finishes only after its prefill and its
    output's decode steps, so a replica whose batch grows, at the start of an overload or when a new replica
    is flooded, finishes far fewer requests than the steady state at that many would, and its backlog grows
    faster; in a steady state the lag changes nothing (X = X(Q)). Implicit Euler on both dQ/dt = inflow − X and
    the lag, stable at any step size: Q' + c·X(Q') = target − dt·X/(1 + a), a = dt/τ, c = dt·a/(1 + a)."""
    x_now = float(np.interp(held, knots, rates))
    # an empty replica: the residence time at the lightest fitted load
    tau = min(held, batch) / x_now if held > 0 and x_now > 0 else float(knots[1] / rates[1])
    a = dt / tau
    c = dt * a / (1.0 + a)
    rest = target - dt * finishing / (1.0 + a)
    inflow = knots + c * rates
    if rest <= 0.0:
        q = 0.0
    elif rest <= inflow[-1]:
        q = float(np.interp(rest, inflow, knots))
    else:  # beyond the last knot it serves at capacity
        q = float(knots[-1] + (rest - inflow[-1]))
    return q, (finishing + a * float(np.interp(q, knots, rates))) / (1.0 + a)


def _water_level(groups: dict[float, float], arrivals: float) -> float:
    """The level least-loaded routing fills the replicas to: `arrivals` requests go to the replicas holding
    the fewest (`groups`: requests held → how many replicas hold that many), raising them together, until
    every replica below the level holds it."""
    levels = sorted(groups)
    water, weight = levels[0], 0.0
    for i, level in enumerate(levels):
        weight += groups[level]
        room = (levels[i + 1] - water) * weight if i + 1 < len(levels) else math.inf
        if arrivals <= room:
            return water + arrivals / weight
        arrivals -= room
        water = levels[i + 1]
    return water


def simulate_fluid(demand: RateWindows | Workload, config: FleetConfig, controller: Controller | None = None,
                   model: FluidModel | None = None, *, resolution_s: float = 1.0) -> FluidResult:
    """Serve `demand` (rate windows, or a per-request workload aggregated into sync-interval windows) with the
    fleet `config` describes, scaled by `controller` (fixed size when None), each replica behaving as `model`
    (the committed table for the bundled profile when None)."""
    model = model or load_fluid_model(config)
    if model.key != model_key(config):
        raise SimulationInputError("the fluid model was fitted for another engine or profile than this fleet's")
    if isinstance(demand, Workload):
        demand = RateWindows.from_workload(demand, resolution_s, config.engine.max_model_len)
    return FluidFleet(demand, config, model, controller, resolution_s=resolution_s).run()
