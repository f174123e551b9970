"""Autoscaling replay: the KEDA+HPA model checked step by step on hand-made demand, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llmobs.forecast.cli import register
from llmobs.forecast.demand import DEFAULT_TRACE_DIR, DemandSeries, read_trace
from llmobs.forecast.errors import ForecastInputError
from llmobs.forecast.recommend import ReplicaPolicy, ReplicaRecommender, learn_capacity_per_replica
from llmobs.forecast.replay import (
    HpaConfig,
    ReplayConfig,
    matched_tail_quantile,
    replay,
    tune_utilization,
    underprovision_exact_bound,
    underprovision_lower_bound,
)

STEP = 10.0
FAST = HpaConfig(polling_interval_s=10, metric_window_s=10)


def series(values: list[float] | np.ndarray) -> DemandSeries:
    idx = pd.date_range("2024-01-01", periods=len(values), freq="10s")
    return DemandSeries(pd.DataFrame({"request_rate": np.asarray(values, dtype=float)}, index=idx), STEP, "test")


def test_reactive_step_up_is_late_by_exactly_the_cold_start() -> None:
    # 1 req/s for 30 buckets, then 5. Decided at the end of bucket 30, ready 60 s (6 buckets) after the
    # next one starts: buckets 30..36 are short of capacity — 7 × 10 s.
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=60, hpa=FAST)
    r = replay(series([1.0] * 30 + [5.0] * 30), "reactive", cfg, utilization=1.0)
    assert r.underprovisioned_minutes == pytest.approx(7 * 10 / 60)
    assert r.scale_events == 1 and r.peak_replicas == 5
    assert r.replicas[31] == 5 and r.ready_capacity[36] == 1 and r.ready_capacity[37] == 5
    # 31 buckets at 1 replica, 29 at 5 (starting replicas are paid for too)
    assert r.replica_minutes == pytest.approx((31 * 1 + 29 * 5) * 10 / 60)
    assert r.unserved_requests == pytest.approx(7 * 4 * 10)


def test_hpa_tolerance_ignores_changes_within_ten_percent() -> None:
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=0, hpa=FAST)
    start = [2.0] * 5
    assert replay(series(start + [2.15] * 10), "reactive", cfg, utilization=1.0).scale_events == 0
    assert replay(series(start + [2.5] * 10), "reactive", cfg, utilization=1.0).peak_replicas == 3


def test_scale_down_waits_for_the_stabilization_window() -> None:
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=0, hpa=FAST)
    r = replay(series([5.0] * 5 + [1.0] * 60), "reactive", cfg, utilization=1.0)
    drop = int(np.argmax(r.replicas < 5))
    # last recommendation of 5 at bucket 4; it leaves the 300 s window after bucket 34
    assert drop == 36 and r.replicas[-1] == 1


def test_scale_up_is_rate_limited_like_hpa() -> None:
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=0, hpa=HpaConfig(polling_interval_s=10,
                                                                                metric_window_s=10))
    r = replay(series([1.0] * 3 + [40.0] * 10), "reactive", cfg, utilization=1.0)
    # max(+100 %, +4 pods) per decision (one decision per ≤ 15 s period): 1 → 5 → 10 → 20 → 40
    assert list(r.replicas[3:8]) == [1, 5, 10, 20, 40]


def test_a_lower_proposal_never_raises_the_count_after_a_rate_limited_scale_up() -> None:
    # One burst to 40 req/s is capped by the scale-up limit at 1 → 5; the load is gone by the next
    # decision. HPA clamps the count between its up and down recommendations, so the old proposal of 40
    # still in the stabilization window holds 5 — it does not carry on to 10.
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=0, hpa=FAST)
    r = replay(series([1.0] * 3 + [40.0] + [1.0] * 10), "reactive", cfg, utilization=1.0)
    assert list(r.replicas[3:8]) == [1, 5, 5, 5, 5]


def test_perfect_forecast_removes_the_cold_start_shortfall() -> None:
    values = np.array([1.0] * 30 + [5.0] * 30)
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=60, hpa=FAST)
    horizon = 7
    oracle = np.concatenate([values[horizon:], [values[-1]] * horizon])
    for policy in ("predictive", "hybrid"):
        r = replay(series(values), policy, cfg, utilization=1.0, forecast_upper=oracle)
        assert r.underprovisioned_minutes == 0.0, policy
    reactive = replay(series(values), "reactive", cfg, utilization=1.0)
    assert reactive.underprovisioned_minutes > 1.0


def test_tuning_matches_replica_minutes() -> None:
    rng = np.random.default_rng(3)
    values = 10 + 5 * np.sin(np.arange(400) / 30) + rng.normal(0, 1, 400)
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=60)
    s = series(values)
    budget = replay(s, "reactive", cfg, utilization=0.8).replica_minutes
    upper = np.roll(values, -7) * 1.1
    u = tune_utilization(s, "predictive", cfg, budget, forecast_upper=upper)
    got = replay(s, "predictive", cfg, utilization=u, forecast_upper=upper).replica_minutes
    assert abs(got / budget - 1) < 0.02


@pytest.mark.parametrize("cap", [0.0, -1.0, float("nan"), float("inf")])
def test_absurd_capacity_is_refused(cap: float) -> None:
    with pytest.raises(ForecastInputError, match="capacity per replica"):
        ReplayConfig(capacity_per_replica=cap)
    with pytest.raises(ForecastInputError, match="capacity per replica"):
        ReplicaPolicy(capacity_per_replica=cap)


def test_bad_policy_and_missing_forecast() -> None:
    cfg = ReplayConfig(capacity_per_replica=1.0)
    with pytest.raises(ForecastInputError, match="unknown policy"):
        replay(series([1.0] * 10), "psychic", cfg)
    with pytest.raises(ForecastInputError, match="needs one forecast per step"):
        replay(series([1.0] * 10), "predictive", cfg)
    with pytest.raises(ForecastInputError, match="no data"):
        replay(series([np.nan] * 10), "reactive", cfg)


def test_recommender_uses_forecast_floor_and_stabilization() -> None:
    rec = ReplicaRecommender(ReplicaPolicy(capacity_per_replica=10, target_utilization=0.8, min_replicas=1,
                                           max_replicas=8, scale_down_stabilization_s=300))
    r = rec.recommend(0, forecast_upper=80, current_demand=20)
    assert (r.desired, r.from_forecast, r.from_current) == (8, 10, 2)  # clamped to max 8
    r = rec.recommend(60, forecast_upper=10, current_demand=35)
    assert r.from_current == 4 and r.desired == 8 and r.stabilized  # still inside the 300 s window
    assert rec.recommend(400, forecast_upper=10, current_demand=35).desired == 5  # floor: ceil(35 ÷ (10 × 0.8))


def test_learn_capacity_from_slo_meeting_observations() -> None:
    obs = [(r, 2, 0.5) for r in np.linspace(2, 20, 30)] + [(40, 2, 3.0)] * 5  # the 40 req/s points broke SLO
    cap = learn_capacity_per_replica(obs, latency_slo_s=1.0)
    assert 8 < cap <= 10
    with pytest.raises(ForecastInputError, match="configure it instead"):
        learn_capacity_per_replica(obs[:3], latency_slo_s=1.0)


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _short_trace(tmp_path: Path, lines: int = 3000) -> Path:
    out = tmp_path / "conv.csv"
    with (DEFAULT_TRACE_DIR / "AzureLLMInferenceTrace_conv.csv").open() as f:
        out.write_text("".join(next(f) for _ in range(lines + 1)))
    return out


def test_cli_simulate_json_and_plot(tmp_path: Path) -> None:
    trace = _short_trace(tmp_path)
    png = tmp_path / "sim.png"
    runner = CliRunner()
    r = runner.invoke(_app(), ["forecast", "simulate", "--trace", str(trace), "--policy", "reactive",
                               "--capacity-per-replica", "1", "--cold-start", "2m", "--json", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    expected = replay(read_trace(trace, 10), "reactive", ReplayConfig(1.0, 120.0))
    assert d["underprovisioned_minutes"] == pytest.approx(expected.underprovisioned_minutes)
    assert d["replica_minutes"] == pytest.approx(expected.replica_minutes)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(_app(), ["forecast", "simulate", "--trace", str(trace), "--policy", "hybrid",
                               "--capacity-per-replica", "1", "--cold-start", "1m", "--forecaster", "moving_average_6"])
    assert r.exit_code == 0 and "underprovisioned_minutes" in r.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--capacity-per-replica", "0"], "capacity per replica"),
        (["--capacity-per-replica", "1", "--policy", "magic"], "unknown policy"),
        (["--capacity-per-replica", "1", "--cold-start", "soon"], "duration 'soon'"),
        (["--capacity-per-replica", "1", "--policy", "predictive", "--forecaster", "oracle"], "unknown forecaster"),
    ],
)
def test_cli_simulate_bad_input_is_one_error_line(tmp_path: Path, args: list[str], needle: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from llmobs.cli import app
    from llmobs.cli_support import run_app

    code = run_app(app, ["forecast", "simulate", "--trace", str(_short_trace(tmp_path, 400)), *args])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out + err


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0, 50, allow_nan=False), min_size=5, max_size=80),
    cold=st.sampled_from([0.0, 30.0, 120.0]),
    policy=st.sampled_from(["reactive", "predictive", "hybrid"]),
)
def test_replay_invariants(values: list[float], cold: float, policy: str) -> None:
    """Whatever the demand: minutes add up, at least min replicas are paid for, capacity is never negative."""
    s = series(values)
    cfg = ReplayConfig(capacity_per_replica=2.0, cold_start_s=cold, hpa=HpaConfig(min_replicas=1, max_replicas=30))
    upper = np.asarray(values) * 1.2
    r = replay(s, policy, cfg, utilization=0.8, forecast_upper=upper)
    assert 0 <= r.underprovisioned_minutes <= r.minutes + 1e-9
    assert r.replica_minutes >= r.minutes - 1e-9
    assert (r.ready_capacity >= 2.0 - 1e-9).all() and (r.replicas <= 30).all()
    short = np.asarray(values) > r.ready_capacity + 1e-9
    assert r.underprovisioned_minutes == pytest.approx(short.sum() * STEP / 60)


def test_lower_bound_is_zero_when_the_budget_covers_the_peak_and_counts_every_bucket_at_zero_budget() -> None:
    values = np.array([1.0] * 20 + [3.0] * 20)
    # 3 replicas all along (40 buckets × 3) suffices: nothing forced short.
    assert underprovision_lower_bound(values, 1.0, STEP, 60, 40 * 3 * STEP / 60) == 0.0
    # No replica-minutes at all: every bucket with demand is short.
    got = underprovision_lower_bound(values, 1.0, STEP, 60, 0.0)
    assert got == pytest.approx(40 * STEP / 60)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(0, 30, allow_nan=False), min_size=20, max_size=80),
    st.sampled_from([0.0, 30.0, 60.0]),
    st.sampled_from(["reactive", "predictive", "hybrid"]),
    st.floats(0.5, 1.5),
)
def test_lower_bound_never_exceeds_what_a_replayed_policy_achieves(
    values: list[float], cold: float, policy: str, u: float
) -> None:
    # The bound holds for any policy at its own cost — here every replayed policy, scored from the start.
    y = np.asarray(values)
    cfg = ReplayConfig(capacity_per_replica=2.0, cold_start_s=cold, hpa=FAST)
    upper = np.concatenate([y[3:], y[-1:].repeat(3)]) * 1.1
    r = replay(series(y), policy, cfg, utilization=min(u, 1.0) if policy == "hybrid" else u, forecast_upper=upper)
    bound = underprovision_lower_bound(y, 2.0, STEP, cold, r.replica_minutes)
    assert bound <= r.underprovisioned_minutes + 1e-9
    exact = underprovision_exact_bound(y, 2.0, STEP, cold, r.replica_minutes)
    assert exact is not None and bound - 1e-9 <= exact <= r.underprovisioned_minutes + 1e-9


def test_exact_bound_is_the_relaxed_optimum_and_tighter_than_the_dual() -> None:
    # One 10 s spike needing 3 replicas over a flat load of 1, cold start 3 buckets: covering the spike
    # costs 2 extra pods × (3 cold + 1 ready) = 8 replica-buckets. With 40 + 7 the spike stays short.
    y = np.array([1.0] * 20 + [3.0] + [1.0] * 19)
    minutes = STEP / 60
    assert underprovision_exact_bound(y, 1.0, STEP, 3 * STEP, 48 * minutes) == 0.0
    assert underprovision_exact_bound(y, 1.0, STEP, 3 * STEP, 47 * minutes) == pytest.approx(minutes)
    assert underprovision_exact_bound(y, 1.0, STEP, 3 * STEP, 0.0) == pytest.approx(40 * minutes)
    # The dual of the same relaxation can only be weaker (here: strictly).
    assert underprovision_lower_bound(y, 1.0, STEP, 3 * STEP, 47 * minutes) < minutes
    assert underprovision_exact_bound(y, 1.0, STEP, 3 * STEP, 47 * minutes, max_work=10) is None  # too big


def test_band_quantile_matches_the_tail_the_reference_leaves_short() -> None:
    cfg = ReplayConfig(capacity_per_replica=1.0, cold_start_s=60, hpa=FAST)
    # 60 buckets (10 min); reactive is short for 7 of them (70 s) after the step up: q = 1 − 7/60.
    r = replay(series([1.0] * 30 + [5.0] * 30), "reactive", cfg, utilization=1.0)
    assert matched_tail_quantile(r, 0.5, 0.99) == pytest.approx(1 - 7 / 60)
    assert matched_tail_quantile(r) == 0.9  # clipped to the default [0.9, 0.99]
    never_short = replay(series([1.0] * 60), "reactive", cfg, utilization=1.0)
    assert matched_tail_quantile(never_short) == 0.99
    with pytest.raises(ForecastInputError, match="quantile bounds"):
        matched_tail_quantile(r, 0.9, 1.0)
