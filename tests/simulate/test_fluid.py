"""The long-trace (fluid) mode: it agrees with the request-level simulator on real 1-hour traces, its committed
table is what the simulator gives, cold starts and under-provisioning cost attainment, and bad rate windows
are refused or flagged."""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import pytest

from llmobs.simulate import ControlView, SimulationInputError, SimulationResult, Workload, load_workload, simulate
from llmobs.simulate.fluid import (
    CHECK_POINTS,
    FluidResult,
    RateWindows,
    bundled_fleet_config,
    check_table,
    fill_gaps,
    load_fluid_model,
    load_rate_windows,
    simulate_fluid,
)
from llmobs.simulate.policies import keda_rate
from llmobs.simulate.policies.base import PolicyContext

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"
CONFIG = bundled_fleet_config()
MODEL = load_fluid_model(CONFIG)

# trace -> (time compression, replicas of the fixed fleet, replicas KEDA starts from): each compressed to a
# load of a few replicas. ServeGen: 15 minutes of its windows at half rate, drawn as requests by
# `load_workload` for the request-level run and read as windows for the fluid one.
AGREEMENT_TRACES = {
    "AzureLLMInferenceTrace_conv.csv": (8.0, 4, 2),
    "AzureLLMInferenceTrace_code.csv": (10.0, 4, 2),
    "mooncake_fast25_conversation.csv": (1.0, 5, 2),
    "servegen_m-small_rate_10min.csv": (1.0, 3, 1),
}
SERVEGEN_CUT = {"start_s": 3600.0, "duration_s": 900.0, "rate_scale": 0.5}


def _controller(name: str, threshold_rps: float):  # type: ignore[no-untyped-def]
    if name == "fixed":
        return None
    return keda_rate.build(threshold_rps, PolicyContext(CONFIG, 1.0, 0.05, threshold_rps))


@functools.cache
def _both(trace: str, controller: str) -> tuple[SimulationResult, FluidResult]:
    compress, replicas, keda_start = AGREEMENT_TRACES[trace]
    demand: RateWindows | Workload
    if trace.startswith("servegen"):
        workload = load_workload(TRACES / trace, seed=1, **SERVEGEN_CUT)
        demand = load_rate_windows(TRACES / trace, **SERVEGEN_CUT)
    else:
        workload = demand = load_workload(TRACES / trace).compressed(compress)
    threshold = 0.7 * float(MODEL.capacity(workload.prompt.mean(), workload.output.mean()))
    config = dataclasses.replace(CONFIG, initial_replicas=replicas if controller == "fixed" else keda_start,
                                 max_replicas=64)
    return (simulate(workload, config, _controller(controller, threshold)),
            simulate_fluid(demand, config, _controller(controller, threshold), MODEL))


def _case(trace: str, controller: str, slo: tuple[float, float], gap: float | None = None):  # type: ignore[no-untyped-def]
    """One agreement case; `gap` (points, fluid − request level, as measured) marks a case the fluid model
    does not yet reproduce within 2 points (strict: a model fix that closes it makes the mark fail)."""
    reason = f"fluid off by {gap:+.1f} points: {GAP_REASONS[trace]}" if gap else ""
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if gap else []
    return pytest.param(trace, controller, slo, marks=marks, id=f"{trace.split('.')[0]}-{controller}-{slo}")


# why a trace's marked cases differ (none is marked now: every case agrees within 2 points)
GAP_REASONS: dict[str, str] = {}


@pytest.mark.parametrize(("trace", "controller", "slo"), [
    _case("AzureLLMInferenceTrace_conv.csv", "fixed", (1.0, 0.05)),
    _case("AzureLLMInferenceTrace_conv.csv", "fixed", (2.0, 0.1)),
    _case("AzureLLMInferenceTrace_conv.csv", "keda-rate", (1.0, 0.05)),
    _case("AzureLLMInferenceTrace_conv.csv", "keda-rate", (2.0, 0.1)),
    _case("AzureLLMInferenceTrace_code.csv", "fixed", (1.0, 0.05)),
    _case("AzureLLMInferenceTrace_code.csv", "fixed", (2.0, 0.1)),
    _case("AzureLLMInferenceTrace_code.csv", "keda-rate", (1.0, 0.05)),
    _case("AzureLLMInferenceTrace_code.csv", "keda-rate", (2.0, 0.1)),
    _case("mooncake_fast25_conversation.csv", "fixed", (1.0, 0.05)),
    _case("mooncake_fast25_conversation.csv", "fixed", (2.0, 0.1)),
    _case("mooncake_fast25_conversation.csv", "keda-rate", (1.0, 0.05)),
    _case("mooncake_fast25_conversation.csv", "keda-rate", (2.0, 0.1)),
    _case("servegen_m-small_rate_10min.csv", "fixed", (1.0, 0.05)),
    _case("servegen_m-small_rate_10min.csv", "fixed", (0.5, 0.03)),
    _case("servegen_m-small_rate_10min.csv", "keda-rate", (1.0, 0.05)),
    _case("servegen_m-small_rate_10min.csv", "keda-rate", (0.5, 0.03)),
])
def test_fluid_attainment_agrees_with_the_request_level_simulator(trace: str, controller: str,
                                                                  slo: tuple[float, float]) -> None:
    requests, fluid = _both(trace, controller)
    assert abs(fluid.attainment(*slo) - requests.attainment(*slo)) <= 0.02


@pytest.mark.parametrize("trace", list(AGREEMENT_TRACES))
@pytest.mark.parametrize("controller", ["fixed", "keda-rate"])
def test_fluid_gpu_hours_and_scaling_follow_the_request_level_run(trace: str, controller: str) -> None:
    requests, fluid = _both(trace, controller)
    assert fluid.gpu_hours == pytest.approx(requests.gpu_hours, rel=0.1)
    assert fluid.scale_events == len(requests.replica_timeline) - 1
    assert fluid.requests == pytest.approx(len(requests), rel=0.01)  # ServeGen: Poisson draws vs their mean


def test_the_committed_table_is_what_the_simulator_gives() -> None:
    """A refit of a few grid points (same seeds) reproduces the committed table: regenerate it with
    scripts/fit_fluid_model.py after any change to the engine, the profile or the fit."""
    assert check_table(CONFIG, MODEL) == []
    doctored = dataclasses.replace(MODEL, capacity_rps=MODEL.capacity_rps * 1.01)
    assert any("capacity" in line for line in check_table(CONFIG, doctored, [CHECK_POINTS[0]]))
    doctored = dataclasses.replace(MODEL, saturated_batch=MODEL.saturated_batch * 1.01)
    assert any("saturated batch" in line for line in check_table(CONFIG, doctored, [CHECK_POINTS[0]]))


def _windows(rate: list[float], width: float = 60.0, prompt: float = 1000.0, output: float = 200.0) -> RateWindows:
    n = len(rate)
    return RateWindows("test", np.arange(n) * width, np.array(rate, dtype=float), np.full(n, prompt),
                       np.full(n, output), width)


def test_under_provisioning_and_cold_starts_cost_attainment_through_the_backlog() -> None:
    capacity = float(MODEL.capacity(1000.0, 200.0))
    steady = _windows([2 * 0.5 * capacity] * 20)  # half of two replicas' capacity
    two = dataclasses.replace(CONFIG, initial_replicas=2)
    assert simulate_fluid(steady, two, model=MODEL).attainment(1.0, 0.05) > 0.95
    one = dataclasses.replace(CONFIG, initial_replicas=1)  # the same demand on one replica: 100 % + queue
    assert simulate_fluid(steady, one, model=MODEL).attainment(1.0, 0.05) < 0.5

    def scale_to_two(view: ControlView) -> int:
        return 2

    # from zero replicas: nothing serves until the first sync's replicas are ready (15 s + 120 s)
    cold = simulate_fluid(steady, dataclasses.replace(CONFIG, initial_replicas=0), scale_to_two, MODEL)
    assert cold.attainment(1.0, 0.05, end_s=135.0) == 0.0
    assert cold.attainment(1.0, 0.05, start_s=600.0) > 0.95
    assert cold.scale_events == 1 and cold.replica_timeline[-1] == (15.0, 0, 2)
    assert cold.gpu_hours == pytest.approx(2 * (cold.end_time - 15.0) / 3600)


def test_scale_in_takes_the_newest_replicas_which_cost_until_they_have_drained() -> None:
    capacity = float(MODEL.capacity(1000.0, 200.0))
    windows = _windows([0.5 * capacity] * 20)

    def shrink(view: ControlView) -> int | None:
        return 1 if view.now >= 300.0 else None

    result = simulate_fluid(windows, dataclasses.replace(CONFIG, initial_replicas=4), shrink, MODEL)
    assert result.replica_timeline[-1] == (300.0, 1, 0)
    drained = [end for added, end in result.replicas if end < result.end_time]
    assert len(drained) == 3 and all(300.0 < end < 360.0 for end in drained)
    assert result.gpu_seconds == pytest.approx(result.end_time + sum(drained))
    assert result.attainment(1.0, 0.05) > 0.95


def test_a_controller_sees_the_fleet_through_the_same_view_as_in_request_level_mode() -> None:
    views: list[ControlView] = []
    capacity = float(MODEL.capacity(1000.0, 200.0))
    windows = _windows([capacity] * 5 + [3 * capacity] * 5)
    simulate_fluid(windows, dataclasses.replace(CONFIG, initial_replicas=2), views.append, MODEL)
    assert [v.now for v in views[:3]] == [15.0, 30.0, 45.0]
    calm, busy = views[10], views[-1]
    assert calm.door_rate == pytest.approx(capacity) and busy.door_rate == pytest.approx(3 * capacity)
    assert len(calm.loads) == 2 and not calm.signals
    assert calm.loads[0].request_rate == pytest.approx(capacity / 2, rel=0.05)
    assert busy.loads[0].waiting > calm.loads[0].waiting and busy.loads[0].kv_usage > calm.loads[0].kv_usage
    assert busy.loads[0].ttft_p90_s > calm.loads[0].ttft_p90_s


def test_the_view_shows_the_fitted_table_at_the_fleets_size_mix_and_utilization() -> None:
    # a controller asking for random fleet sizes, so the views cover many points of the table
    rng = np.random.default_rng(7)
    views: list[ControlView] = []

    def random_sizes(view: ControlView) -> int:
        views.append(view)
        return int(rng.integers(1, 40))

    windows = load_rate_windows(TRACES / "servegen_m-small_rate_10min.csv", duration_s=86400)
    config = dataclasses.replace(CONFIG, initial_replicas=4, max_replicas=64, cold_start_s=20.0)
    result = simulate_fluid(windows, config, random_sizes, MODEL)
    assert len(views) == len(result.step_start) == len(result.shown_utilization)  # one step per sync
    expected_capacity = result.capacity_replicas * MODEL.capacity(result.mean_prompt, result.mean_output)
    np.testing.assert_allclose(result.capacity, expected_capacity, rtol=1e-12)
    checked = 0
    for view, u, mp, mo in zip(views, result.shown_utilization, result.mean_prompt, result.mean_output,
                               strict=True):
        if not view.loads:
            continue
        shown = {name: float(MODEL.observe(name, u, mp, mo, view.ready)) for name in ("running", "kv_usage")}
        kv_shown = min(1.0, max(0.0, shown["kv_usage"]))
        if u < MODEL.max_utilization:
            assert view.loads[0].running == pytest.approx(shown["running"], rel=1e-12, abs=1e-12, nan_ok=True)
            assert view.loads[0].kv_usage == pytest.approx(kv_shown, rel=1e-12, abs=1e-12, nan_ok=True)
        else:  # saturated: it runs its overload batch, more than the fitted steady states (the test below)
            assert view.loads[0].running >= shown["running"] - 1e-9
            assert view.loads[0].kv_usage >= kv_shown - 1e-9
        checked += 1
        # every gauge a policy reads has a value: a NaN would make KEDA on waiting or the llmobs policy act
        # on nothing (the table's unfitted cells take the nearest fitted fleet size's value)
        load = view.loads[0]
        assert all(math.isfinite(x) for x in (load.running, load.waiting, load.kv_usage, load.request_rate))
    assert checked > 0.9 * len(views) and len({v.ready for v in views}) > 20


def test_windows_from_a_workload_keep_its_requests_lengths_and_refusals() -> None:
    w = Workload("w", np.array([0.1, 0.5, 1.2, 3.9]), np.array([10, 30, 40000, 5]), np.array([1, 3, 5, 7]))
    windows = RateWindows.from_workload(w, 1.0, max_model_len=32768)
    assert windows.rate.tolist() == [2.0, 1.0, 0.0, 1.0]
    assert windows.mean_prompt[:2].tolist() == [20.0, 40000.0] and windows.mean_output[0] == 2.0
    assert windows.reject_share.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert not windows.gap.any()  # a window without requests in a per-request trace is idle time


def test_servegen_days_run_in_seconds() -> None:
    windows = load_rate_windows(TRACES / "servegen_m-small_rate_10min.csv", duration_s=2 * 86400)
    assert len(windows) == 288
    config = dataclasses.replace(CONFIG, initial_replicas=4, max_replicas=64)
    capacity = float(MODEL.capacity(130.0, 25.0))
    result = simulate_fluid(windows, config, _controller("keda-rate", 0.7 * capacity), MODEL)
    assert result.requests == pytest.approx(float((windows.rate * 600).sum()), rel=1e-3)
    assert 0.0 < result.attainment(1.0, 0.05) <= 1.0
    assert result.gpu_hours_between(0, 86400) < result.gpu_hours
    assert result.scale_events > 10
    assert result.end_time >= 2 * 86400


def test_servegen_gaps_are_flagged_and_filled_from_their_neighbours_not_read_as_idle() -> None:
    windows = load_rate_windows(TRACES / "servegen_m-small_rate_10min.csv")
    assert len(windows) == 2016 and int(windows.gap.sum()) == 37 and (windows.rate[windows.gap] == 0).all()
    filled = fill_gaps(windows)
    i = int(np.flatnonzero(windows.gap)[0])
    assert filled.rate[i] > 0 and min(filled.rate[i - 1], filled.rate[i + 1]) <= filled.rate[i]
    assert filled.rate[i] <= max(filled.rate[i - 1], filled.rate[i + 1])
    assert np.isfinite(filled.mean_prompt).all() and not filled.gap.any()
    assert any("37 gap windows" in note for note in filled.notes)


@pytest.mark.parametrize(("row", "message"), [
    ("600,nan,20,1,130,25,0.3", "total_rate_rps nan"),
    ("600,-5,20,1,130,25,0.3", "total_rate_rps -5"),
    ("600,800,20,1,-130,25,0.3", "mean_input_tokens_est -130"),
])
def test_bad_servegen_rows_are_refused_with_the_row(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "servegen.csv"
    path.write_text("window_start_s,total_rate_rps,active_clients,requests_per_min,mean_input_tokens_est,"
                    f"mean_output_tokens_est,token_rate_coverage\n0,800,20,1,130,25,0.3\n{row}\n")
    with pytest.raises(SimulationInputError, match=message):
        load_rate_windows(path)


def test_bad_windows_are_refused() -> None:
    with pytest.raises(SimulationInputError, match="rate nan"):
        _windows([1.0, math.nan])
    with pytest.raises(SimulationInputError, match="rate -1"):
        _windows([1.0, -1.0])
    with pytest.raises(SimulationInputError, match="mean_prompt 0"):
        _windows([1.0], prompt=0.0)
    gaps = RateWindows("g", np.arange(3) * 600.0, np.zeros(3), np.zeros(3), np.zeros(3), 600.0,
                       gap=np.ones(3, dtype=bool))
    with pytest.raises(SimulationInputError, match="every window is a gap"):
        simulate_fluid(gaps, CONFIG, model=MODEL)
    with pytest.raises(SimulationInputError, match="another engine"):
        simulate_fluid(_windows([1.0]), dataclasses.replace(CONFIG, engine=dataclasses.replace(
            CONFIG.engine, max_num_seqs=256)), model=MODEL)


def test_new_replicas_take_the_new_arrivals_while_a_backlog_drains_where_it_queued() -> None:
    """No request moves between replicas: after a scale-up, least-loaded routing sends the arrivals to the new,
    empty replicas, so they meet the SLO at once while the old replica still holds its backlog."""
    capacity = float(MODEL.capacity(1000.0, 200.0))
    windows = _windows([1.5 * capacity] * 10)  # one replica overloaded by half
    views: list[ControlView] = []

    def add_two(view: ControlView) -> int | None:
        views.append(view)
        return 3 if view.now >= 60.0 else None

    result = simulate_fluid(windows, dataclasses.replace(CONFIG, initial_replicas=1, cold_start_s=30.0), add_two,
                            MODEL)
    assert result.attainment(1.0, 0.05, start_s=30.0, end_s=90.0) < 0.1  # the backlog of one replica
    assert result.attainment(1.0, 0.05, start_s=90.0, end_s=150.0) > 0.9  # the new replicas' arrivals
    after = next(v for v in views if v.now == 105.0)
    old, *new = after.loads
    assert len(new) == 2 and old.waiting > 100 * max(load.waiting for load in new)


def test_a_replicas_capacity_is_what_it_sustains_in_an_overload() -> None:
    """The table's capacity is the finish rate of one replica whose queue never runs dry — with short requests
    a batch of 2000 arriving at once, the old measure, overstated it by a quarter."""
    capacity = float(MODEL.capacity(128.0, 32.0))
    rng = np.random.default_rng(11)
    n = int(1.3 * capacity * 60)
    arrival = np.cumsum(rng.exponential(1.0 / (1.3 * capacity), n))
    prompt = np.maximum(1, np.ceil(rng.exponential(128.0, n))).astype(np.int64)
    output = np.maximum(1, np.ceil(rng.exponential(32.0, n))).astype(np.int64)
    result = simulate(Workload("overload", arrival, prompt, output), dataclasses.replace(CONFIG, initial_replicas=1))
    span = float(arrival[-1])
    finish = result.finish[result.finished]
    sustained = float(((finish >= 0.3 * span) & (finish < span)).sum()) / (0.7 * span)
    assert sustained == pytest.approx(capacity, rel=0.05)


def test_short_prompts_behind_a_long_one_are_steered_to_the_idle_replica_as_least_loaded_routing_does() -> None:
    """A long prompt takes its replica about a second to prefill; short one-token requests arriving meanwhile go
    to the other replica, which finishes each before the next arrives — dealt in turn, every other one would
    queue behind the long prompt and miss a half-second TTFT."""
    n = 8
    arrival = np.r_[0.0, 0.05 + 0.1 * np.arange(n)]
    w = Workload("long-then-short", arrival, np.r_[30000, np.full(n, 100)], np.ones(n + 1, dtype=np.int64))
    two = dataclasses.replace(CONFIG, initial_replicas=2)
    requests = simulate(w, two)
    fluid = simulate_fluid(w, two, model=MODEL)
    assert requests.attainment(0.5, 1.0) == pytest.approx(n / (n + 1))
    assert fluid.attainment(0.5, 1.0) == pytest.approx(n / (n + 1))


@pytest.mark.parametrize(("mean_prompt", "mean_output"), [(1000.0, 200.0), (2000.0, 100.0)])
def test_in_an_overload_the_view_splits_running_and_waiting_as_the_replicas_pages_do(
        mean_prompt: float, mean_output: float) -> None:
    """A replica in a sustained overload runs its whole overload batch (vLLM admits while it has room, budget
    and blocks: ~3× the fitted steady states' L(u_max)) and queues only the rest. A policy reading the gauges
    (KEDA on waiting, llm-d's KV-cache and queue thresholds) must see that split in the fluid mode as on the
    request-level mode's pages; showing L(u_max) running, as the view once did, read 60 % too few running, up
    to four times too many waiting, and a KV cache a third full where the pages show it full."""
    capacity = float(MODEL.capacity(mean_prompt, mean_output))
    rng = np.random.default_rng(3)
    n = int(1.3 * capacity * 240)
    arrival = np.cumsum(rng.exponential(1.0 / (1.3 * capacity), n))
    prompt = np.maximum(1, np.ceil(rng.exponential(mean_prompt, n))).astype(np.int64)
    output = np.maximum(1, np.ceil(rng.exponential(mean_output, n))).astype(np.int64)
    workload = Workload("overload", arrival, prompt, output)
    config = dataclasses.replace(CONFIG, initial_replicas=1, max_replicas=4)
    request_views: list[ControlView] = []
    fluid_views: list[ControlView] = []
    simulate(workload, config, lambda v: request_views.append(v) and None)
    simulate_fluid(workload, config, lambda v: fluid_views.append(v) and None, MODEL)

    def mean(views: list[ControlView], gauge: str) -> float:
        return float(np.mean([getattr(v.loads[0], gauge) for v in views if 60.0 <= v.now <= 240.0]))

    for gauge in ("running", "waiting", "kv_usage"):
        assert mean(fluid_views, gauge) == pytest.approx(mean(request_views, gauge), rel=0.2), gauge
