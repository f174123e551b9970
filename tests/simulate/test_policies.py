"""Each compared policy's rule on hand-made views (what its source says it does), llmobs' floor and its
fallback, the one-replica capacity profile, and one run per policy on the Azure conversation trace that
must scale the fleet up under a burst."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from llmobs.forecast.replay import HpaConfig
from llmobs.simulate import (
    ControlView,
    EngineConfig,
    FleetConfig,
    ReplicaLoad,
    StepProfile,
    Workload,
    load_profile,
    load_workload,
    simulate,
)
from llmobs.simulate.policies import POLICIES, PolicyContext, profile_capacity
from llmobs.simulate.policies.aibrix_kpa import KpaAutoscaler
from llmobs.simulate.policies.clairvoyant import build as build_clairvoyant
from llmobs.simulate.policies.dynamo_planner import DynamoPlanner, LoadPredictor
from llmobs.simulate.policies.keda_waiting import total_waiting
from llmobs.simulate.policies.llmd_wva import SaturationConfig, WvaController, analyze
from llmobs.simulate.policies.llmobs_hybrid import LlmobsPolicy

TRACE = Path(__file__).resolve().parents[2] / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
PROFILE = StepProfile("test", fixed_s=0.01, prefill_token_s=1e-4, decode_seq_s=1e-3, kv_token_s=1e-6)
ENGINE = EngineConfig(kv_blocks=4000, block_size=16, max_num_seqs=64, max_num_batched_tokens=2048, max_model_len=4096)


def load(running: float = 10.0, waiting: float = 0.0, kv: float = 0.3, rate: float = 2.0,
         prompt_rate: float = 1000.0, gen_rate: float = 400.0) -> ReplicaLoad:
    return ReplicaLoad(running, waiting, kv, rate, prompt_rate, gen_rate)


def view(now: float, loads: tuple[ReplicaLoad, ...] | list[ReplicaLoad], *, starting: int = 0,
         ready: int | None = None, door_rate: float = 4.0, prompt_tokens: float = 500.0) -> ControlView:
    loads = tuple(loads)
    ready = len(loads) if ready is None else ready
    return ControlView(now, ready, starting, loads, door_rate, door_rate * prompt_tokens)


def context(capacity_rps: float = 10.0, **fields: object) -> PolicyContext:
    training = Workload("t", np.arange(0.0, 1000.0, 0.1), np.full(10000, 500), np.full(10000, 200))
    values: dict = {"fleet": FleetConfig(ENGINE, PROFILE, cold_start_s=120.0), "ttft_slo_s": 1.0,
                    "tpot_slo_s": 0.1, "capacity_rps": capacity_rps, "training": training}
    values.update(fields)
    return PolicyContext(**values)


# --- the registry -----------------------------------------------------------------------------------

def test_every_compared_policy_is_registered_with_a_sweep_and_a_default_that_builds() -> None:
    assert set(POLICIES) == {"keda-rate", "keda-waiting", "aibrix-kpa", "llmd-wva", "dynamo-planner",
                             "llmobs", "clairvoyant"}
    ctx = context(future=Workload("f", np.array([0.0, 1.0]), np.array([10, 10]), np.array([5, 5])))
    for key, spec in POLICIES.items():
        grid = spec.grid(ctx)
        assert 6 <= len(grid) <= 9, key
        assert all(math.isfinite(v) and v > 0 for v in grid), key
        assert list(grid) == sorted(set(grid)), key  # distinct values, in order
        assert spec.knob and spec.source and spec.label, key
        assert grid[0] <= spec.default(ctx) <= grid[-1], key
        assert callable(spec.build(spec.default(ctx), ctx)), key
        assert spec.clairvoyant == (key == "clairvoyant")


# --- KEDA on waiting ----------------------------------------------------------------------------------

def test_keda_waiting_proposes_total_waiting_over_the_threshold() -> None:
    loads = [load(waiting=10), load(waiting=12), load(waiting=math.nan)]
    assert total_waiting(view(0.0, loads)) == 22.0  # an unreadable gauge adds nothing to the sum
    control = POLICIES["keda-waiting"].build(5.0, context())
    assert control(view(15.0, loads)) == 5  # ceil(22 / 5)
    assert control(view(30.0, [load(waiting=0)] * 5)) == 5  # lower: held by the 300 s stabilization


# --- AIBrix KPA ----------------------------------------------------------------------------------------

def test_kpa_enters_panic_when_the_short_window_doubles_the_long_one_and_scales_on_it() -> None:
    kpa = KpaAutoscaler(target=10.0)
    current = 2
    for t in range(15, 181, 15):
        current = kpa.decide(float(t), current, 20.0)
    assert current == 2 and not kpa.in_panic
    for t in (195.0, 210.0, 225.0, 240.0):
        current = kpa.decide(t, current, 200.0)
    assert kpa.in_panic  # panic mean 200 > 2 × stable mean
    # each step at most doubles the count (MaxScaleUpRate 2), towards ceil(panic total / target) = 20
    assert current == 20


def test_kpa_scales_on_the_stable_window_and_keeps_the_count_within_tolerance() -> None:
    kpa = KpaAutoscaler(target=10.0)
    assert kpa.decide(15.0, 3, 31.0) == 3  # 10.3 per pod: within 10 % of the target
    kpa = KpaAutoscaler(target=10.0)
    assert kpa.decide(15.0, 3, 45.0) == 5
    assert not kpa.in_panic


def test_kpa_scale_down_takes_the_lowest_recommendation_of_its_300s_cooldown() -> None:
    kpa = KpaAutoscaler(target=10.0)
    current = kpa.decide(0.0, 4, 40.0)
    assert current == 4
    for t in range(15, 181, 15):
        current = kpa.decide(float(t), current, 10.0)
    # the stable mean falls slowly; a lower recommendation applies at once (AIBrix takes the window's min)
    assert current < 4
    assert kpa.decide(400.0, current, None) <= current  # no new sample: decided on what the window holds


def test_kpa_never_goes_below_min_replicas_and_waits_for_a_first_sample() -> None:
    kpa = KpaAutoscaler(target=10.0, min_replicas=1)
    assert kpa.decide(15.0, 3, None) == 3
    assert kpa.decide(30.0, 3, 0.0) >= 1


# --- llm-d WVA -----------------------------------------------------------------------------------------

def test_wva_scales_up_when_the_average_spare_kv_falls_under_the_trigger() -> None:
    config = SaturationConfig()
    assert analyze([(0.65, 0.0), (0.72, 0.0)], config).scale_up is False  # spare 0.115 ≥ 0.10
    assert analyze([(0.65, 0.0), (0.76, 0.0)], config).scale_up is True  # spare 0.095 < 0.10
    assert analyze([(0.3, 3.0)], config).scale_up is True  # queue spare 2 < 3
    everyone_saturated = analyze([(0.85, 0.0), (0.2, 6.0)], config)
    assert everyone_saturated.non_saturated == 0 and everyone_saturated.scale_up


def test_wva_scales_down_only_when_the_load_fits_on_one_replica_fewer() -> None:
    config = SaturationConfig()
    assert analyze([(0.1, 0.0), (0.1, 0.0), (0.1, 0.0)], config).scale_down_safe
    assert not analyze([(0.5, 0.0), (0.5, 0.0)], config).scale_down_safe  # 0.8 − 1.0 < 0.1 after removal
    assert not analyze([(0.1, 0.0)], config).scale_down_safe  # needs two non-saturated replicas
    assert not analyze([(0.1, 0.0), (0.9, 0.0)], config).scale_down_safe  # one of two is saturated


def test_wva_holds_its_target_while_replicas_start_and_reaches_the_cluster_through_the_chart_hpa() -> None:
    wva = WvaController(SaturationConfig())
    hot = [load(kv=0.78), load(kv=0.78)]
    assert wva.step(view(0.0, hot)) == 3
    assert wva.step(view(30.0, hot, starting=1)) == 3  # in transition: no new decision
    assert wva.step(view(60.0, [*hot, load(kv=0.7)])) == 4  # three report again, still short of spare
    control = POLICIES["llmd-wva"].build(0.1, context())
    counts = {t: control(view(float(t), hot)) for t in range(0, 256, 15)}
    # WVA asks for 3 at once; the chart's HPA applies a scale-up only after 240 s of asking
    assert {counts[t] for t in range(0, 240, 15)} == {2} and counts[255] == 3


def test_wva_never_adds_while_the_peak_of_the_last_minute_is_within_bounds() -> None:
    wva = WvaController(SaturationConfig())
    assert wva.step(view(0.0, [load(kv=0.5), load(kv=0.5)])) == 2  # spare 0.3: no need, removal unsafe
    assert wva.step(view(15.0, [load(kv=0.75), load(kv=0.75)])) == 2  # between engine runs: held
    assert wva.step(view(30.0, [load(kv=0.5), load(kv=0.5)])) == 3  # the peak of the last minute counts


# --- Dynamo planner -------------------------------------------------------------------------------------

def test_dynamo_predictor_falls_back_to_the_last_value_and_skips_leading_idle() -> None:
    predictor = LoadPredictor([0.0, 0.0, 5.0, 7.0])
    assert predictor.values == [5.0, 7.0] and predictor.predict() == 7.0
    predictor.add(math.nan)  # read as no load
    assert predictor.values[-1] == 0.0
    assert LoadPredictor([4.0] * 8).predict() == 4.0
    rising = LoadPredictor([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0])
    assert rising.predict() > 80.0  # ARIMA carries the trend


def test_dynamo_sets_replicas_from_predicted_demand_every_adjustment_interval() -> None:
    ctx = context(capacity_rps=10.0, training=None)
    planner = DynamoPlanner(1.0, ctx)
    steady = [load(rate=2.0, gen_rate=500.0)]  # 250 output tokens per request, as profiled
    decisions = [planner.step(view(float(t), steady, door_rate=35.0, prompt_tokens=1000.0)) for t in range(15, 361, 15)]
    assert [d for d in decisions if d is not None] == [4, 4]  # at 180 s and 360 s: ceil(35 / 10)
    assert decisions[0] is None
    half = DynamoPlanner(0.5, ctx)
    out = [half.step(view(float(t), steady, door_rate=35.0, prompt_tokens=1000.0)) for t in range(15, 181, 15)]
    assert out[-1] == 7  # planning with half the profiled capacity


# --- llmobs -------------------------------------------------------------------------------------------

def test_llmobs_never_proposes_below_the_reactive_floor() -> None:
    rng = random.Random(3)
    for headroom in POLICIES["llmobs"].grid(context()):
        policy = LlmobsPolicy(headroom, context())
        for step in range(300):
            n = rng.randint(0, 6)
            loads = [load(running=rng.uniform(0, 50), waiting=rng.choice([0, 0, 3, 40]), kv=rng.random(),
                          rate=rng.uniform(0, 5), gen_rate=rng.uniform(0, 2000)) for _ in range(n)]
            v = view(15.0 * step, loads, starting=rng.randint(0, 2), door_rate=rng.uniform(0, 80),
                     prompt_tokens=rng.uniform(10, 4000))
            assert policy.proposal(v) >= policy.floor(v)


def test_llmobs_falls_back_to_the_floor_on_unusable_loads() -> None:
    policy = LlmobsPolicy(0.5, context())
    busy = [load(waiting=50, kv=0.95), load(waiting=60, kv=0.95)]
    policy.proposal(view(0.0, busy, door_rate=30.0))
    assert policy.proposal(view(15.0, busy, door_rate=30.0)) > policy.floor(view(15.0, busy, door_rate=30.0))
    broken = [load(waiting=50, kv=math.nan), load(waiting=60, kv=0.95)]
    v = view(30.0, broken, door_rate=30.0)
    assert policy.proposal(v) == policy.floor(v) == 4  # ceil(30 / (0.8 × 10))
    unscraped = view(45.0, [], ready=3, door_rate=30.0)
    assert policy.proposal(unscraped) == policy.floor(unscraped)
    assert policy.fallbacks == 2


def test_llmobs_counts_tokens_so_longer_prompts_at_the_same_rate_need_more_replicas() -> None:
    short = LlmobsPolicy(0.8, context()).proposal(view(15.0, [load()], door_rate=8.0, prompt_tokens=500.0))
    long = LlmobsPolicy(0.8, context()).proposal(view(15.0, [load()], door_rate=8.0, prompt_tokens=3000.0))
    assert long > short


def test_llmobs_adds_replicas_when_replicas_keep_queueing_not_for_a_one_sync_burst() -> None:
    policy = LlmobsPolicy(1.0, context())
    calm = policy.proposal(view(15.0, [load(waiting=0)] * 2, door_rate=8.0))
    burst = policy.proposal(view(30.0, [load(waiting=30)] * 2, door_rate=8.0))
    assert burst == calm  # served before a replica added for it would be ready
    assert policy.proposal(view(45.0, [load(waiting=0)] * 2, door_rate=8.0)) == calm
    policy.proposal(view(60.0, [load(waiting=30)] * 2, door_rate=8.0))
    queued = policy.proposal(view(75.0, [load(waiting=30)] * 2, door_rate=8.0))
    assert queued > calm and queued >= 3
    full_kv = policy.proposal(view(90.0, [load(waiting=0, kv=0.95)] * 2, door_rate=8.0))
    assert full_kv > calm  # queueing, then out of KV: saturated at two syncs in a row either way


# --- clairvoyant ----------------------------------------------------------------------------------------

def test_clairvoyant_adds_replicas_a_cold_start_before_a_burst() -> None:
    arrival = np.concatenate([np.arange(0.0, 600.0, 1.0), np.arange(600.0, 900.0, 0.02)])
    future = Workload("f", arrival, np.full(arrival.size, 500), np.full(arrival.size, 200))
    ctx = context(capacity_rps=10.0, future=future)
    control = build_clairvoyant(0.9, ctx)
    assert control(view(300.0, [load()])) == 1
    before = control(view(600.0 - 120.0, [load()]))  # the burst starts within the cold start + a sync
    assert before >= math.ceil(50 / 10)
    with pytest.raises(ValueError, match="future"):
        build_clairvoyant(0.9, context())


# --- capacity profiling ---------------------------------------------------------------------------------

def test_profile_capacity_finds_the_highest_rate_meeting_the_slo() -> None:
    rng = np.random.default_rng(1)
    arrival = np.cumsum(rng.exponential(0.5, 1500))
    w = Workload("p", arrival - arrival[0], rng.integers(100, 600, 1500), rng.integers(20, 200, 1500))
    fleet = FleetConfig(ENGINE, PROFILE)
    capacity = profile_capacity(w, fleet, 1.0, 0.05)
    sample = w.compressed(capacity / (1499 / w.arrival[-1]))
    assert simulate(sample, fleet).attainment(1.0, 0.05) >= 0.99
    over = w.compressed(1.3 * capacity / (1499 / w.arrival[-1]))
    assert simulate(over, fleet).attainment(1.0, 0.05) < 0.99


# --- end to end on the Azure conversation trace -----------------------------------------------------------

@pytest.fixture(scope="module")
def azure() -> tuple[PolicyContext, Workload]:
    profile = load_profile("llama-3.1-8b-h100")
    capacity = profile.capacity(context_tokens=8192)
    engine = EngineConfig(kv_blocks=capacity.num_blocks, block_size=capacity.block_size, max_model_len=8192)
    trace = load_workload(TRACE, duration_s=2400.0)
    n = len(trace) // 2
    training = Workload(trace.source, trace.arrival[:n], trace.prompt[:n], trace.output[:n])
    rest = Workload(trace.source, trace.arrival[n:] - trace.arrival[n], trace.prompt[n:], trace.output[n:])
    burst = rest.compressed(4.0)  # the next 20 minutes four times faster than the policies learned
    fleet = FleetConfig(engine, profile, cold_start_s=60.0, max_replicas=12)
    cap = profile_capacity(training, fleet, 2.0, 0.1)
    ctx = PolicyContext(fleet, 2.0, 0.1, cap, HpaConfig(max_replicas=12), training=training, future=burst)
    return ctx, burst


@pytest.mark.parametrize("key", sorted(POLICIES))
def test_each_policy_scales_the_fleet_up_under_a_burst(key: str, azure: tuple[PolicyContext, Workload]) -> None:
    ctx, burst = azure
    spec = POLICIES[key]
    result = simulate(burst, ctx.fleet, spec.build(spec.default(ctx), ctx))
    peak = max(ready + starting for _, ready, starting in result.replica_timeline)
    assert peak >= 2, f"{key} never scaled up: {result.replica_timeline}"
    assert result.finished.sum() + result.unfinished + result.rejected.sum() == len(burst)
