"""llmobs' policy is never worse than reactive: its floor stays at the reactive target, and telemetry faults
injected into a real trace make it fall back to that floor, counted by reason (replay and live path)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.forecast.demand import DEFAULT_TRACE_DIR, DemandSeries, read_trace
from llmobs.forecast.errors import ForecastInputError
from llmobs.forecast.forecasters import Arima
from llmobs.forecast.guard import GuardConfig, assess
from llmobs.forecast.recommend import ReplicaPolicy, ReplicaRecommender
from llmobs.forecast.replay import ReplayConfig, forecast_path, replay, tune_utilization
from llmobs.forecast.service import ForecastConfig, ForecastService
from llmobs.state import ModelDemandPoint

SERVEGEN = DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv"
DAYS = 3  # of the 14: enough for daily peaks, short enough for a unit test


@pytest.fixture(scope="module")
def trace() -> DemandSeries:
    """ServeGen m-small at 60 s (its 10-minute windows interpolated), first three days."""
    return read_trace(SERVEGEN).resample(60, "linear").slice(0, DAYS * 1440)


def _peak_start(y: np.ndarray) -> int:
    """A bucket just before the busiest hour of day 2: where a fault costs the most."""
    day2 = np.nan_to_num(y[1440:2880])
    return 1440 + int(np.argmax(np.convolve(day2, np.ones(60), "valid"))) - 30


def _inject(y: np.ndarray, fault: str) -> np.ndarray:
    """The observed rate with one telemetry fault; the demand the fleet serves is unchanged."""
    seen = y.copy()
    at = _peak_start(y)
    if fault == "gap":
        seen[at: at + 20] = np.nan  # 20 missed scrapes, then telemetry is back
    elif fault == "partial_window":
        seen[at: at + 10] *= 0.01  # one 10-minute window sees 1 % of the fleet's traffic
    elif fault == "invalid_sample":
        seen[[at, at + 7, at + 15]] = [np.inf, -5.0, np.nan]  # a bad sample, a mis-read reset, a NaN
    elif fault == "outlier":
        seen[at] *= 20  # one bucket 20× too high (a double-counted scrape)
    elif fault == "stale":
        seen[at: at + 60] = np.nan  # an hour-long llmobs/Prometheus outage
    else:
        raise AssertionError(fault)
    return seen


def _replay_pair(demand: DemandSeries, seen: np.ndarray, score_from: int, utilization: float = 1.0):
    """Reactive (KEDA on the observed rate) vs hybrid with the forecast made from the same observed rate.

    Hybrid at utilization 1.0: the most cost-tuned setting the equal-cost search may choose for it."""
    cap = float(np.nanmean(demand.request_rate.to_numpy())) / 8
    cfg = ReplayConfig(capacity_per_replica=cap, cold_start_s=300)
    forecaster = Arima(3)
    horizon = 6
    frame = demand.frame.copy()
    clean = seen.copy()
    clean[~np.isfinite(clean) | (clean < 0)] = np.nan
    frame["request_rate"] = clean
    _, upper = forecast_path(DemandSeries(frame, demand.step_seconds, "observed"), forecaster, horizon,
                             quantile=0.95)
    need = forecaster.required_history(horizon, demand.step_seconds)
    reactive = replay(demand, "reactive", cfg, observed=seen, score_from=score_from)
    hybrid = replay(demand, "hybrid", cfg, utilization=utilization, forecast_upper=upper, observed=seen,
                    score_from=score_from, min_history=need)
    return reactive, hybrid


@pytest.mark.parametrize("fault", ["gap", "partial_window", "invalid_sample", "outlier", "stale"])
def test_each_fault_in_a_real_trace_leaves_hybrid_no_worse_than_reactive_and_is_counted(
    trace: DemandSeries, fault: str
) -> None:
    y = trace.request_rate.to_numpy(dtype=float)
    reactive, hybrid = _replay_pair(trace, _inject(y, fault), score_from=1440)
    assert hybrid.underprovisioned_minutes <= reactive.underprovisioned_minutes, (fault, reactive, hybrid)
    assert hybrid.unserved_requests <= reactive.unserved_requests + 1e-6
    assert hybrid.fallbacks[fault] > 0, hybrid.fallbacks
    assert hybrid.to_dict()["fallbacks"][fault] == hybrid.fallbacks[fault]
    assert hybrid.fallbacks.decisions == 2 * 1440  # every decision of the scored days was judged


def test_the_partial_window_fault_would_hurt_a_policy_without_a_floor(trace: DemandSeries) -> None:
    # The fault is not a no-op: the observed collapse makes reactive scale in while the load is there.
    y = trace.request_rate.to_numpy(dtype=float)
    clean_r, _ = _replay_pair(trace, y, score_from=1440)
    faulted_r, faulted_h = _replay_pair(trace, _inject(y, "partial_window"), score_from=1440)
    assert faulted_r.underprovisioned_minutes > clean_r.underprovisioned_minutes
    assert faulted_h.underprovisioned_minutes <= faulted_r.underprovisioned_minutes


def test_a_restart_gives_short_history_and_hybrid_stays_on_the_floor(trace: DemandSeries) -> None:
    # llmobs restarted at the busiest hour: its history starts there; ARIMA(3) needs 30 buckets.
    at = _peak_start(trace.request_rate.to_numpy(dtype=float))
    part = trace.slice(at, at + 720)
    reactive, hybrid = _replay_pair(part, part.request_rate.to_numpy(dtype=float), score_from=0)
    assert hybrid.fallbacks["short_history"] >= 29
    assert hybrid.underprovisioned_minutes <= reactive.underprovisioned_minutes


def test_hybrid_never_plans_its_floor_past_the_reactive_target(trace: DemandSeries) -> None:
    cfg = ReplayConfig(capacity_per_replica=100.0)
    upper = np.zeros(len(trace))
    with pytest.raises(ForecastInputError, match="must be in \\(0, 1\\]"):
        replay(trace, "hybrid", cfg, utilization=6.6, forecast_upper=upper)
    reactive = replay(trace, "reactive", cfg)
    # With a forecast of nothing, hybrid is its floor: exactly reactive, at any tuned utilization.
    for u in (0.3, 1.0):
        hybrid = replay(trace, "hybrid", cfg, utilization=u, forecast_upper=upper)
        assert hybrid.underprovisioned_minutes == reactive.underprovisioned_minutes
        assert hybrid.replica_minutes == reactive.replica_minutes
    # The equal-cost search cannot reach past 1.0 for hybrid, however small the budget.
    u = tune_utilization(trace.slice(0, 600), "hybrid", cfg, 1.0, forecast_upper=upper[:600], bounds=(0.1, 20))
    assert u <= 1.0


@pytest.mark.parametrize(
    ("values", "age", "reason"),
    [
        ([100.0] * 10, 0, "short_history"),
        ([100.0] * 40 + [np.nan] * 3, 0, "stale"),
        ([100.0] * 40, 3, "stale"),
        ([100.0] * 39 + [np.inf], 0, "invalid_sample"),
        ([100.0] * 20 + [-1.0] + [100.0] * 19, 0, "invalid_sample"),
        ([100.0] * 20 + [np.nan] * 3 + [100.0] * 17, 0, "gap"),
        ([100.0] * 20 + [np.nan] * 2 + [100.0] * 18, 0, ""),  # within the tolerance: forward-filled
        ([100.0] * 30 + [1.0] * 5 + [100.0] * 5, 0, "partial_window"),
        ([100.0 + (i % 5) for i in range(39)] + [250.0], 0, "outlier"),
        ([100.0 + (i % 5) for i in range(40)], 0, ""),
        ([50.0 + 2 * i for i in range(40)], 0, ""),  # a steep real ramp is not a fault
    ],
)
def test_guard_names_each_fault(values: list[float], age: int, reason: str) -> None:
    assert assess(np.array(values), need=36, age_steps=age) == reason


def test_guard_config_refuses_absurd_thresholds() -> None:
    with pytest.raises(ForecastInputError):
        GuardConfig(window=2)
    with pytest.raises(ForecastInputError):
        GuardConfig(partial_ratio=1.5)


def test_recommender_floor_is_at_the_reactive_target_whatever_the_forecast_headroom() -> None:
    policy = ReplicaPolicy(capacity_per_replica=10, target_utilization=2.0, max_replicas=100)
    rec = ReplicaRecommender(policy)
    r = rec.recommend(0, forecast_upper=10, current_demand=80)
    assert r.from_floor == math.ceil(80 / (10 * 0.8)) == r.desired  # not ceil(80 ÷ 20)
    r = ReplicaRecommender(policy).recommend(0, forecast_upper=1000, current_demand=80, trusted=False)
    assert r.desired == 10 and not r.trusted  # an untrusted forecast is ignored: the floor alone


class _Holder:
    """The slice of StateHolder that ForecastService reads: per-model history points."""

    def __init__(self, points: list[ModelDemandPoint]) -> None:
        self.points = points

    def models_with_history(self) -> list[str]:
        return ["m"]

    def history(self, model: str) -> list[ModelDemandPoint]:
        return list(self.points)


def _points(rates: np.ndarray, t0: float) -> list[ModelDemandPoint]:
    return [ModelDemandPoint(t0 + 60 * i, float(r), 0.0, 0.0, 0.0, 0.0, 0.0, 1) for i, r in enumerate(rates)]


LIVE_FAULTS = ["gap", "partial_window", "invalid_sample", "outlier", "stale", "short_history"]


@pytest.mark.parametrize("fault", LIVE_FAULTS)
def test_live_recommendation_with_each_fault_is_at_least_the_floor_and_exported(
    trace: DemandSeries, fault: str
) -> None:
    y = trace.request_rate.to_numpy(dtype=float)
    at = _peak_start(y)
    hist = y[at - 400: at + 40].copy()  # the live history ends inside the fault
    if fault == "gap":
        hist[-12:-2] = np.nan
    elif fault == "partial_window":
        hist[-5:] *= 0.01
    elif fault == "invalid_sample":
        hist[-4] = np.inf
    elif fault == "outlier":
        hist[-1] *= 20
    elif fault == "short_history":
        hist = hist[-20:]
    t0 = 1_700_000_000.0
    points = _points(hist, t0)
    points = [p for p in points if math.isfinite(p.request_rate)] if fault == "gap" else points
    last_t = points[-1].time
    now = last_t + (600 if fault == "stale" else 30)  # stale: no point for 10 minutes (an outage)
    cap = float(np.nanmean(y)) / 8
    cfg = ForecastConfig(step_seconds=60, horizon_seconds=300, forecaster="arima_3_1_0",
                         capacity_per_replica={"m": cap}, target_utilization=1.0)
    registry = CollectorRegistry()
    svc = ForecastService(_Holder(points), cfg, registry=registry, clock=lambda: now)
    svc.refit_once()
    fc = svc.refresh_once()["m"]
    current = [p.request_rate for p in points if math.isfinite(p.request_rate) and p.request_rate >= 0][-1]
    floor = math.ceil(current / (cap * 0.8) - 1e-9)
    assert fc.guard_reason == fault
    assert fc.desired_replicas is not None and fc.desired_replicas >= floor
    page = generate_latest(registry).decode()
    assert 'llmobs_forecast_trusted{model="m"} 0.0' in page
    assert f'llmobs_forecast_fallbacks_total{{model="m",reason="{fault}"}} 1.0' in page


def test_live_recommendation_on_clean_history_trusts_the_forecast(trace: DemandSeries) -> None:
    y = trace.request_rate.to_numpy(dtype=float)
    at = _peak_start(y)
    points = _points(y[at - 400: at + 40], 1_700_000_000.0)
    cap = float(np.nanmean(y)) / 8
    cfg = ForecastConfig(step_seconds=60, horizon_seconds=300, forecaster="arima_3_1_0",
                         capacity_per_replica={"m": cap})
    registry = CollectorRegistry()
    svc = ForecastService(_Holder(points), cfg, registry=registry, clock=lambda: points[-1].time + 30)
    svc.refit_once()
    fc = svc.refresh_once()["m"]
    assert fc.guard_reason == "" and fc.fallback_counts == {}
    assert fc.desired_replicas >= math.ceil(points[-1].request_rate / (cap * 0.8) - 1e-9)
    assert 'llmobs_forecast_trusted{model="m"} 1.0' in generate_latest(registry).decode()
