"""Autoscaling replay: demand against a scaling policy, step by step, with cold starts.

Every policy is replayed through the same model of the Kubernetes HPA (as driven by KEDA), because
that is how llmobs' signal reaches a cluster too (KEDA reads `llmobs_desired_replicas` or the forecast
as an external metric). Only the metric differs:

* reactive (KEDA + HPA on the observed request rate): desired = ceil(metric ÷ target per replica),
  metric = the rate over the last `metric_window_s` (a Prometheus `rate(...[1m])`);
* predictive: desired = max(ceil(forecast upper quantile at t + cold start ÷ target), what the
  current load needs at full capacity);
* hybrid (llmobs' policy): desired = max(reactive floor, predictive desired). The floor is exactly the
  reactive policy's proposal at the reactive target (`floor_utilization`, 0.8), whatever the hybrid's own
  `utilization` is: a cost search may tune only the predictive part, and only within (0, 1]. While the
  data-quality guard (llmobs.forecast.guard) distrusts the forecast's input, the predictive part is left
  out (predictive and hybrid both run on the floor alone), and each such decision is counted by reason.

HPA behaviour modelled (k8s defaults): decisions every `polling_interval_s` (HPA sync period, 15 s),
10 % tolerance (no change while |usage ratio − 1| ≤ 0.1), scale-up limited to max(+100 %, +4 pods)
per 15 s, scale-down stabilization (the highest recommendation of the last 300 s), min/max replicas.
New pods are ready `cold_start_s` after the decision; scale-down removes not-ready pods first and takes
effect at once. Demand bucket j is under-provisioned when demand > ready replicas × capacity.

`observed` (optional) is what the policies read when it differs from the demand being served — a
telemetry fault (gap, partial window, outage) changes what KEDA and the forecaster see, not the load.
Non-finite or negative samples are dropped (treated as missing) in both.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmobs.forecast.backtest import rolling_forecasts
from llmobs.forecast.demand import DemandSeries
from llmobs.forecast.errors import ForecastInputError
from llmobs.forecast.forecasters import Forecaster, ffill, upper_from_residuals
from llmobs.forecast.guard import FallbackCounts, GuardConfig, assess, clean_rate

POLICIES = ("reactive", "predictive", "hybrid")
REACTIVE_UTILIZATION = 0.8  # KEDA's target on the request rate: the reactive policy's and the floor's
MAX_HYBRID_UTILIZATION = 1.0  # above it the predictive part would plan replicas past their capacity


@dataclass(frozen=True, slots=True)
class HpaConfig:
    """The HPA/KEDA knobs, defaulted to Kubernetes' and KEDA's defaults."""

    polling_interval_s: float = 15.0
    tolerance: float = 0.1
    scale_down_stabilization_s: float = 300.0
    scale_up_pods: int = 4
    scale_up_percent: float = 100.0
    metric_window_s: float = 60.0
    min_replicas: int = 1
    max_replicas: int = 10_000


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """What is being replayed: capacity of one replica, its cold start, and the HPA model."""

    capacity_per_replica: float
    cold_start_s: float = 300.0
    hpa: HpaConfig = field(default_factory=HpaConfig)

    def __post_init__(self) -> None:
        if not math.isfinite(self.capacity_per_replica) or self.capacity_per_replica <= 0:
            raise ForecastInputError(
                f"capacity per replica must be a positive request rate, got {self.capacity_per_replica}"
            )
        if not 0 <= self.cold_start_s <= 7 * 86400:
            raise ForecastInputError(f"cold start {self.cold_start_s}s is not plausible (0 … 7 days)")


@dataclass
class ReplayResult:
    """Outcome of one replay over the scored range."""

    policy: str
    utilization: float
    underprovisioned_minutes: float
    replica_minutes: float
    scale_events: int
    unserved_requests: float
    peak_replicas: int
    minutes: float
    index: pd.DatetimeIndex
    demand: np.ndarray
    ready_capacity: np.ndarray
    replicas: np.ndarray
    forecaster: str = ""
    fallbacks: FallbackCounts = field(default_factory=FallbackCounts)
    floor_utilization: float = REACTIVE_UTILIZATION

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (no time series)."""
        return {
            "policy": self.policy,
            "target_utilization": self.utilization,
            "forecaster": self.forecaster,
            "underprovisioned_minutes": self.underprovisioned_minutes,
            "replica_minutes": self.replica_minutes,
            "scale_events": self.scale_events,
            "unserved_requests": self.unserved_requests,
            "peak_replicas": self.peak_replicas,
            "minutes": self.minutes,
            "floor_utilization": self.floor_utilization if self.policy == "hybrid" else None,
            "forecast_decisions": self.fallbacks.decisions,
            "fallbacks": self.fallbacks.to_dict(),
        }


def forecast_path(
    series: DemandSeries,
    forecaster: Forecaster,
    horizon: int,
    *,
    quantile: float = 0.9,
    refit_every: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(point, upper quantile) forecasts made at the end of every bucket i for bucket i + horizon.

    Causal: each uses demand up to bucket i only. Origins before the forecaster has enough history
    use last value (the documented fallback).
    """
    y = series.request_rate.to_numpy(dtype=float)
    index = pd.DatetimeIndex(series.frame.index)
    n = len(y)
    need = max(1, forecaster.required_history(horizon, series.step_seconds))
    point = ffill(y).copy()  # last value until the forecaster can run
    if need < n - horizon:
        refit = refit_every or max(horizon, math.ceil((n - need) / 12))
        origins, p = rolling_forecasts(y, index, series.step_seconds, forecaster, horizon, need - 1, refit)
        point[origins] = p
        tail = np.arange(n - horizon, n)  # targets beyond the data: forecast, never scored
        point[tail] = forecaster.predict(y, index, tail, horizon, series.step_seconds)
    actual = np.full(n, np.nan)
    actual[: n - horizon] = y[horizon:]
    point = np.nan_to_num(point)
    return point, upper_from_residuals(point, actual, horizon, quantile)


def replay(
    series: DemandSeries,
    policy: str,
    config: ReplayConfig,
    *,
    utilization: float = 0.8,
    forecast_upper: np.ndarray | None = None,
    score_from: int = 0,
    forecaster_name: str = "",
    observed: np.ndarray | None = None,
    floor_utilization: float = REACTIVE_UTILIZATION,
    guard: GuardConfig | None = None,
    min_history: int = 1,
) -> ReplayResult:
    """Replay `series` (request rate) against `policy`; counts from bucket `score_from` on.

    `observed`: the rate the policies read, when telemetry differs from the demand (default: the demand).
    `min_history`: what the forecaster needs (`Forecaster.required_history`), for the guard.
    """
    if policy not in POLICIES:
        raise ForecastInputError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not 0 < utilization <= 20:  # > 1 is meaningful for forecasts: it scales down an upper band
        raise ForecastInputError(f"target utilization {utilization} must be in (0, 20]")
    if policy == "hybrid" and utilization > MAX_HYBRID_UTILIZATION:
        raise ForecastInputError(f"hybrid's target utilization {utilization} must be in (0, 1]: only the "
                                 "predictive part is tuned, and never past a replica's capacity")
    if not 0 < floor_utilization <= MAX_HYBRID_UTILIZATION:
        raise ForecastInputError(f"floor utilization {floor_utilization} must be in (0, 1]")
    y = clean_rate(series.request_rate.to_numpy(dtype=float))
    n = len(y)
    if n < 2:
        raise ForecastInputError("demand series is too short to replay (need ≥ 2 steps)")
    if policy != "reactive" and (forecast_upper is None or len(forecast_upper) != n):
        raise ForecastInputError(f"policy {policy} needs one forecast per step")
    raw_seen = y if observed is None else np.asarray(observed, dtype=float)
    if len(raw_seen) != n:
        raise ForecastInputError(f"observed rate has {len(raw_seen)} steps; the demand has {n}")
    seen = clean_rate(raw_seen)
    step = series.step_seconds
    hpa = config.hpa
    cap = config.capacity_per_replica
    target = cap * utilization
    floor_target = cap * floor_utilization
    guard = guard or GuardConfig()
    fallbacks = FallbackCounts()
    cold_steps = math.ceil(config.cold_start_s / step - 1e-9)
    poll_steps = max(1, round(hpa.polling_interval_s / step))
    win_steps = max(1, round(hpa.metric_window_s / step))
    up_periods = max(1.0, poll_steps * step / 15.0)
    stab_steps = hpa.scale_down_stabilization_s / step
    reasons = _guard_reasons(raw_seen.tobytes(), min_history, guard) if policy != "reactive" else ()
    filled = ffill(seen)
    first = filled[~np.isnan(filled)]
    if first.size == 0:
        raise ForecastInputError("demand series has no data")
    filled = np.nan_to_num(filled)
    rolling = pd.Series(filled).rolling(win_steps, min_periods=1).mean().to_numpy()

    start_target = floor_target if policy == "hybrid" else target  # hybrid starts where reactive does
    start_replicas = max(hpa.min_replicas, min(hpa.max_replicas, replicas_needed(first[0], start_target)))
    ready = start_replicas
    pending: dict[int, int] = {}  # ready step → pods still starting
    recs: deque[tuple[int, int]] = deque()
    under = replica_min = unserved = 0.0
    events = peak = 0
    ready_cap = np.zeros(n)
    spec_hist = np.zeros(n, dtype=int)
    for i in range(n):
        ready += pending.pop(i, 0)
        total = ready + sum(pending.values())
        ready_cap[i] = ready * cap
        spec_hist[i] = total
        if i >= score_from:
            replica_min += total * step / 60.0
            peak = max(peak, total)
            if not np.isnan(y[i]) and y[i] > ready * cap + 1e-9:
                under += step / 60.0
                unserved += (y[i] - ready * cap) * step
        if (i + 1) % poll_steps:
            continue
        current = total
        metric = rolling[i]
        if policy == "reactive":
            proposal = _hpa_proposal(metric, target, current, hpa.tolerance)
        else:
            assert forecast_upper is not None
            floor = _hpa_proposal(metric, floor_target, current, hpa.tolerance)
            reason = reasons[i]
            if i >= score_from:
                fallbacks.record(reason)
            if reason:
                proposal = floor  # the forecast's input is not trusted: plain reactive
            else:
                # "never below what the current load needs": the same windowed rate KEDA would read
                pred = max(replicas_needed(forecast_upper[i], target), replicas_needed(metric, cap))
                pred = current if abs(pred / max(current, 1) - 1) <= hpa.tolerance else pred
                proposal = max(floor, pred) if policy == "hybrid" else pred
        recs.append((i, proposal))
        while recs and recs[0][0] < i - stab_steps:
            recs.popleft()
        # HPA's stabilization: a lower proposal only lowers the count to the highest recommendation of
        # the window, and never raises it (k8s clamps current between the up and down recommendations).
        desired = min(current, max(r for _, r in recs)) if proposal < current else proposal
        up_limit = max(current * (1 + hpa.scale_up_percent / 100.0), current + hpa.scale_up_pods)
        up_limit = math.floor(current + (up_limit - current) * up_periods)
        desired = min(desired, up_limit)
        desired = max(hpa.min_replicas, min(hpa.max_replicas, desired))
        if desired > current:
            key = i + 1 + cold_steps
            pending[key] = pending.get(key, 0) + desired - current
        elif desired < current:
            drop = current - desired
            for key in sorted(pending, reverse=True):  # not-ready pods are removed first
                take = min(drop, pending[key])
                pending[key] -= take
                drop -= take
                if not pending[key]:
                    del pending[key]
                if not drop:
                    break
            ready -= drop
        if desired != current and i >= score_from:
            events += 1
    minutes = (n - score_from) * step / 60.0
    return ReplayResult(
        policy=policy,
        utilization=utilization,
        underprovisioned_minutes=under,
        replica_minutes=replica_min,
        scale_events=events,
        unserved_requests=unserved,
        peak_replicas=peak,
        minutes=minutes,
        index=pd.DatetimeIndex(series.frame.index),
        demand=y,
        ready_capacity=ready_cap,
        replicas=spec_hist,
        forecaster=forecaster_name if policy != "reactive" else "",
        fallbacks=fallbacks,
        floor_utilization=floor_utilization,
    )


@functools.lru_cache(maxsize=8)
def _guard_reasons(raw: bytes, need: int, guard: GuardConfig) -> tuple[str, ...]:
    """The guard's verdict at every bucket, from the history up to it (causal). It depends only on the
    observed series, never on the policy or its headroom, so the cost searches that replay one trace
    dozens of times compute it once."""
    y = np.frombuffer(raw, dtype=float)
    span = guard.window + need  # enough that a gap in the window is not mistaken for a short history
    return tuple(assess(y[max(0, i + 1 - span): i + 1], need, guard) for i in range(len(y)))


def replicas_needed(demand: float, per_replica: float) -> int:
    """ceil(demand ÷ per-replica target); 0 for no or unknown demand."""
    if not math.isfinite(demand) or demand <= 0:
        return 0
    return math.ceil(demand / per_replica - 1e-9)


def _hpa_proposal(metric: float, target: float, current: int, tolerance: float) -> int:
    """HPA's external-metric AverageValue rule: ceil(metric ÷ target), unless within tolerance."""
    if current > 0 and abs(metric / (target * current) - 1.0) <= tolerance:
        return current
    return replicas_needed(metric, target)


def tune_utilization(
    series: DemandSeries,
    policy: str,
    config: ReplayConfig,
    target_replica_minutes: float,
    *,
    forecast_upper: np.ndarray | None = None,
    score_from: int = 0,
    score_to: int | None = None,
    bounds: Sequence[float] = (0.2, 3.0),
    iterations: int = 30,
) -> float:
    """Target utilization (headroom) at which `policy` spends `target_replica_minutes`, by bisection.

    Replica-minutes fall as utilization rises (each replica planned fuller). Scored on
    [score_from, score_to) only, so the tuning part of a trace can be kept apart from the test part.
    """
    part = series.slice(0, score_to)
    fc = None if forecast_upper is None else forecast_upper[: len(part)]
    lo, hi = float(bounds[0]), float(bounds[1])
    if policy == "hybrid":  # only the predictive part is tuned, and never past full capacity
        hi = min(hi, MAX_HYBRID_UTILIZATION)
        lo = min(lo, hi)
    best, best_err = lo, math.inf
    for _ in range(iterations):
        mid = math.sqrt(lo * hi)
        r = replay(part, policy, config, utilization=mid, forecast_upper=fc, score_from=score_from)
        err = abs(r.replica_minutes - target_replica_minutes)
        if err < best_err:
            best, best_err = mid, err
        if r.replica_minutes > target_replica_minutes:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.0005:
            break
    return best


def _relaxation(demand: np.ndarray, capacity_per_replica: float, step_seconds: float,
                cold_start_s: float) -> tuple[np.ndarray, int, int]:
    """The ceiling bounds' shared inputs: demand (NaN as 0), cold start in buckets, and the most replicas
    any bucket can need (more never helps)."""
    y = np.nan_to_num(np.asarray(demand, dtype=float))
    cold = math.ceil(cold_start_s / step_seconds - 1e-9)
    r_max = math.ceil(float(y.max()) / capacity_per_replica - 1e-9) + 1 if len(y) else 0
    return y, cold, r_max


def underprovision_lower_bound(
    demand: np.ndarray,
    capacity_per_replica: float,
    step_seconds: float,
    cold_start_s: float,
    replica_minutes: float,
    *,
    lambdas: int = 60,
) -> float:
    """A lower bound on the under-provisioned minutes of *any* policy, even a clairvoyant one, that
    spends at most `replica_minutes` on `demand` (scored from its first bucket) in this replay model.

    Relaxation: the policy picks the ready replicas R_t of every bucket freely (no HPA sync, tolerance,
    scale-up limit or stabilization; any start count is free), paying R_t per bucket plus the cold start
    of every pod that becomes ready (R_t − R_{t−1})⁺ — only the part of that cold start inside the scored
    range, min(cold, t). Every real replay pays at least that. Bound by Lagrangian duality: for every
    λ ≥ 0, under ≥ min over R of (under + λ·cost) − λ·budget; the best λ of a log grid is returned.
    """
    y, cold, r_max = _relaxation(demand, capacity_per_replica, step_seconds, cold_start_s)
    n = len(y)
    if n == 0:
        return 0.0
    levels = np.arange(r_max + 1, dtype=float)
    budget = replica_minutes * 60.0 / step_seconds  # replica-buckets
    lam = np.geomspace(1e-4, 1e2, lambdas)[:, None]  # price of one replica-bucket in under-buckets
    value = np.zeros((lam.shape[0], r_max + 1))
    for t in range(n):
        short = (y[t] > levels * capacity_per_replica + 1e-9).astype(float)
        if t == 0:
            carry = np.zeros_like(value)  # the starting fleet is free
        else:
            price = lam * min(cold, t)  # per pod becoming ready at t
            down = np.minimum.accumulate(value[:, ::-1], axis=1)[:, ::-1]  # from R' ≥ R: free
            up = np.minimum.accumulate(value - price * levels, axis=1) + price * levels  # from R' ≤ R
            carry = np.minimum(down, up)
        value = carry + short + lam * levels
    dual = value.min(axis=1) - lam[:, 0] * budget
    return max(0.0, float(dual.max())) * step_seconds / 60.0


def underprovision_exact_bound(
    demand: np.ndarray,
    capacity_per_replica: float,
    step_seconds: float,
    cold_start_s: float,
    replica_minutes: float,
    *,
    max_work: float = 2e9,
) -> float | None:
    """The same relaxation as `underprovision_lower_bound`, solved exactly instead of through its dual:
    the fewest under-provisioned minutes of any policy within `replica_minutes`, or None when the problem
    is too large to solve this way (`max_work` ≈ buckets × levels² × budget).

    Every cost in the relaxation is a whole number of replica-buckets, so a dynamic programme over
    (bucket, ready replicas, budget spent) finds the optimum; the dual bound is weaker by its duality
    gap, which on short, spiky traces is large. Still a bound on every real replay (never larger than
    what a replayed policy achieves at its own cost: tests/forecast/test_replay.py checks both).
    """
    y, cold, r_max = _relaxation(demand, capacity_per_replica, step_seconds, cold_start_s)
    n = len(y)
    if n == 0:
        return 0.0
    budget = math.floor(replica_minutes * 60.0 / step_seconds + 1e-9)  # whole replica-buckets
    if budget < 0:
        return None
    if n * (r_max + 1) ** 2 / 2 * (budget + 1) > max_work:
        return None
    levels = np.arange(r_max + 1)
    inf = np.inf
    # value[r, b]: fewest short buckets so far, ending with r ready replicas, having spent exactly b.
    value = np.full((r_max + 1, budget + 1), inf)
    for t in range(n):
        short = (y[t] > levels * capacity_per_replica + 1e-9).astype(float)
        new = np.full_like(value, inf)
        if t == 0:
            for r in levels:  # the starting fleet is free to choose; it pays its own bucket
                if r <= budget:
                    new[r, r:] = 0.0  # spending more than needed is allowed (min over b ≤ budget)
        else:
            price = min(cold, t)
            from_above = np.minimum.accumulate(value[::-1], axis=0)[::-1]  # min over previous R ≥ r
            for r in levels:
                if r <= budget:  # scaling down (or staying) is free: pay r for this bucket
                    new[r, r:] = np.minimum(new[r, r:], from_above[r, : budget + 1 - r])
                for prev in range(r):  # scaling up from prev: each new pod pays its cold start
                    cost = r + price * (r - prev)
                    if cost <= budget:
                        new[r, cost:] = np.minimum(new[r, cost:], value[prev, : budget + 1 - cost])
        value = new + short[:, None]
    best = float(value.min())
    return best * step_seconds / 60.0 if math.isfinite(best) else None


def matched_tail_quantile(reference: ReplayResult, lo: float = 0.9, hi: float = 0.99) -> float:
    """Quantile for a policy's forecast band: 1 − the share of time `reference` was under-provisioned.

    The headroom is tuned to a cost anyway; the quantile only shapes the band (how much more headroom
    goes where the forecast is uncertain). Matching it to the tail the reference policy leaves short at
    that cost makes the band measure the tail the budget has to cover. Clipped to [lo, hi]: a 1 % tail is
    about the smallest a trailing window of a few hundred residuals can estimate.
    """
    if not 0 < lo <= hi < 1:
        raise ForecastInputError(f"quantile bounds {lo}, {hi} must satisfy 0 < lo ≤ hi < 1")
    if reference.minutes <= 0:
        return hi
    return min(hi, max(lo, 1.0 - reference.underprovisioned_minutes / reference.minutes))
