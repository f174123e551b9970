"""The fleet: what a controller reads (llmobs' own signals from rendered vLLM pages), cold starts, drains,
routing, conservation of requests, determinism, and SLOs no fleet can meet."""

from __future__ import annotations

import numpy as np
import pytest

from llmobs.signals.tracker import SignalTracker
from llmobs.simulate import (
    ControlView,
    EngineConfig,
    FleetConfig,
    ReplicaEngine,
    SimRequest,
    SimulationInputError,
    StepProfile,
    Workload,
    check_slo,
    replica_page,
    simulate,
)
from llmobs.simulate.fleet import PageReader
from llmobs.simulate.stats import PageTemplate
from llmobs.sources.page import parse_page

PROFILE = StepProfile("test", fixed_s=0.01, prefill_token_s=1e-4, decode_seq_s=1e-3, kv_token_s=1e-6)
ENGINE = EngineConfig(kv_blocks=400, block_size=16, max_num_seqs=16, max_num_batched_tokens=512, max_model_len=2048)


def workload(n: int, rate: float, prompt: int = 200, output: int = 50, seed: int = 0) -> Workload:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    arrival -= arrival[0]
    return Workload("test", arrival, rng.integers(prompt // 2, prompt * 2, n), rng.integers(1, output * 2, n))


def test_the_page_read_by_llmobs_shows_the_replica_as_the_simulator_holds_it() -> None:
    e = ReplicaEngine(ENGINE, PROFILE, start=0.0)
    for i in range(40):
        e.submit(SimRequest(i, 0.0, 300, 100))
    tracker = SignalTracker("replica-0")
    e.advance(1.0)
    tracker.observe(parse_page(replica_page(e, "m")), 1.0)
    e.advance(3.0)
    (signals,) = tracker.observe(parse_page(replica_page(e, "m")), 3.0)
    assert signals.requests_running == len(e.running) == 16  # max_num_seqs
    assert signals.requests_waiting == len(e.waiting) > 0
    assert signals.kv_cache_utilization == pytest.approx(e.kv_usage)
    assert signals.kv_cache_capacity_tokens == 400 * 16
    assert signals.generation_tokens_rate > 0


def test_the_scrape_path_renders_and_reads_the_same_page_as_render_page_and_parse_page() -> None:
    """The fleet renders pages from a template and reads them with the exporter's warm parser (speed); both
    must give exactly what `replica_page` and a cold `parse_page` give, scrape after scrape."""
    e = ReplicaEngine(ENGINE, PROFILE, start=5.0)
    template = PageTemplate('m{x}', ENGINE.block_size, ENGINE.kv_blocks, ENGINE.max_model_len)
    reader = PageReader("replica-0")
    warm, cold = SignalTracker("replica-0"), SignalTracker("replica-0")
    rng = np.random.default_rng(3)
    for step in range(6):
        for i in range(int(rng.integers(5, 30))):
            e.submit(SimRequest(100 * step + i, e.clock, int(rng.integers(10, 900)), int(rng.integers(1, 200))))
        e.advance(e.clock + 2.0)
        text = template.render(len(e.running), len(e.waiting), e.kv_usage, e.created, e.stats)
        assert text == replica_page(e, 'm{x}')
        page, reference = reader.read(text), parse_page(text)
        assert page == reference and page.models
        signals = warm.observe(page, 5.0 + 2 * step)
        assert signals == cold.observe(reference, 5.0 + 2 * step)
    assert signals and signals[0].requests_running == len(e.running)


def test_a_controller_reads_signals_and_new_replicas_serve_after_their_cold_start() -> None:
    seen: list[ControlView] = []

    def one_replica(view: ControlView) -> int:
        seen.append(view)
        return 1

    w = workload(5, rate=2.0)
    result = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=0, cold_start_s=100.0), one_replica)
    # nothing serves until the first sync (15 s) adds a replica, which is ready 100 s later
    assert (result.first_token >= 115.0).all()
    assert result.finished.all()
    assert seen[0].ready == 0 and any(v.starting == 1 for v in seen)
    assert result.gpu_seconds == pytest.approx(result.end_time - 15.0)


def test_signals_reach_the_controller_only_from_scraped_pages() -> None:
    views: list[ControlView] = []
    w = workload(3000, rate=60.0)
    simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=2), lambda v: views.append(v) or None)
    assert not views[0].signals  # one scrape so far: a rate needs two pages
    late = views[-1]
    assert len(late.signals) == 2
    assert {s.attribution.endpoint for s in late.signals} == {"replica-0", "replica-1"}
    assert all(s.request_rate > 0 for s in late.signals)


def test_a_removed_replica_drains_what_it_holds_and_costs_until_then() -> None:
    w = workload(600, rate=40.0)
    result = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=2, tail_s=3600.0),
                      lambda v: 1 if v.now >= 5.0 else None)
    assert result.finished.all() and result.unfinished == 0
    assert set(np.unique(result.replica)) == {0, 1}
    served_late = result.arrival[result.replica == 1].max()
    assert served_late < 15.0  # the removed replica took no request after the first sync
    assert result.replica_timeline[-1][1:] == (1, 0)
    # replica 0 for the whole run; replica 1 from 0 until its last request finished
    last_on_1 = result.finish[result.replica == 1].max()
    assert result.gpu_seconds == pytest.approx(result.end_time + max(15.0, last_on_1), rel=1e-9)


def test_a_fixed_fleet_stops_costing_soon_after_its_last_request_finishes() -> None:
    w = workload(300, rate=20.0)
    result = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=2, tail_s=3600.0))
    assert result.finished.all()
    last = result.finish.max()
    assert last <= result.end_time <= last + 15.0  # the next tick after the drain, not the 3600 s horizon
    assert result.gpu_seconds == pytest.approx(2 * result.end_time)


def test_round_robin_alternates_and_least_loaded_avoids_the_busy_replica() -> None:
    w = Workload("rr", np.array([0.0, 0.1, 0.2, 0.3]), np.array([100, 100, 100, 100]), np.array([5, 5, 5, 5]))
    rr = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=2, routing="round_robin"))
    assert rr.replica.tolist() == [1, 0, 1, 0]
    long_first = Workload("ll", np.array([0.0, 0.001, 0.5]), np.array([1500, 100, 100]), np.array([1000, 5, 5]))
    ll = simulate(long_first, FleetConfig(ENGINE, PROFILE, initial_replicas=2))
    assert ll.replica.tolist() == [0, 1, 1]  # at 0.5 s replica 1 is empty again, replica 0 still busy


def test_every_request_is_finished_rejected_or_reported_unfinished() -> None:
    w = workload(2000, rate=200.0)  # far more than one replica serves
    w = Workload("t", w.arrival, np.concatenate([[4000], w.prompt[1:]]), w.output)
    result = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=1, tail_s=0.0))
    assert result.rejected.tolist().count(True) == 1 and result.rejected[0]
    assert result.unfinished > 0
    assert int(result.finished.sum()) + result.unfinished + int(result.rejected.sum()) == len(w)
    assert result.attainment(100.0, 100.0) == pytest.approx(result.finished.mean())
    assert any("rejected" in n for n in result.notes)


def test_outputs_past_max_model_len_stop_there() -> None:
    w = Workload("t", np.array([0.0]), np.array([2000]), np.array([500]))
    result = simulate(w, FleetConfig(ENGINE, PROFILE))
    assert result.output.tolist() == [48] and result.finished.all()


def test_the_same_inputs_give_the_same_run() -> None:
    w = workload(1500, rate=50.0, seed=3)
    config = FleetConfig(ENGINE, PROFILE, initial_replicas=2)
    a, b = simulate(w, config), simulate(w, config)
    assert np.array_equal(a.finish, b.finish) and np.array_equal(a.replica, b.replica)
    assert a.gpu_seconds == b.gpu_seconds


def test_attainment_and_goodput_count_requests_meeting_both_slos() -> None:
    w = workload(400, rate=10.0)
    result = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=1))
    met = (result.ttft <= 0.5) & (result.tpot <= 0.05)
    assert result.attainment(0.5, 0.05) == pytest.approx(met.mean())
    assert result.goodput_per_gpu_hour(0.5, 0.05) == pytest.approx(met.sum() / (result.gpu_seconds / 3600))


def test_an_slo_no_fleet_can_meet_is_refused_before_running() -> None:
    config = FleetConfig(ENGINE, PROFILE)
    with pytest.raises(SimulationInputError, match="TPOT SLO 5 ms is below one decode step"):
        check_slo(config, ttft_s=1.0, tpot_s=0.005)
    with pytest.raises(SimulationInputError, match="TTFT SLO"):
        check_slo(config, ttft_s=0.001, tpot_s=0.1)
    with pytest.raises(SimulationInputError, match="positive"):
        check_slo(config, ttft_s=float("nan"), tpot_s=0.1)
    check_slo(config, ttft_s=1.0, tpot_s=0.05)


def test_fleet_settings_out_of_range_are_refused() -> None:
    with pytest.raises(SimulationInputError, match="routing"):
        FleetConfig(ENGINE, PROFILE, routing="random")
    with pytest.raises(SimulationInputError, match="scrape_interval_s"):
        FleetConfig(ENGINE, PROFILE, scrape_interval_s=0)


@pytest.mark.parametrize(("settings", "message"), [
    ({"initial_replicas": 1.5}, "initial_replicas must be a whole number of replicas, not 1.5"),
    ({"initial_replicas": True}, "initial_replicas must be a whole number of replicas, not True"),
    ({"max_replicas": 2.0}, "max_replicas must be a whole number of replicas, not 2"),
    ({"max_replicas": 0, "initial_replicas": 0}, "max_replicas must be ≥ 1"),
    ({"initial_replicas": 5, "max_replicas": 2}, r"initial_replicas 5 must be in \[0, max_replicas 2\]"),
    ({"cold_start_s": "120"}, "cold_start_s must be a finite number of seconds ≥ 0, not '120'"),
    ({"tail_s": np.float64(-1.0)}, "tail_s must be a finite number of seconds ≥ 0, not -1$"),
    ({"sync_interval_s": True}, "sync_interval_s must be a finite number of seconds > 0, not True"),
    ({"ttft_slo_s": float("nan")}, "ttft_slo_s must be a finite number of seconds > 0, not nan"),
    ({"routing": ["least_loaded"]}, r"routing \['least_loaded'\]: use one of"),
    ({"model": 3}, "model must be a name"),
])
def test_fleet_settings_of_the_wrong_type_are_refused_before_running(settings: dict[str, object], message: str) -> None:
    with pytest.raises(SimulationInputError, match=message) as info:
        FleetConfig(ENGINE, PROFILE, **settings)  # type: ignore[arg-type]
    assert "np." not in str(info.value)


def test_numpy_replica_counts_are_taken_as_plain_ints() -> None:
    config = FleetConfig(ENGINE, PROFILE, initial_replicas=np.int64(2), max_replicas=np.int32(4))  # type: ignore[arg-type]
    assert (config.initial_replicas, config.max_replicas) == (2, 4)
    assert type(config.initial_replicas) is int and type(config.max_replicas) is int
    w = workload(50, rate=10.0)
    assert simulate(w, config).finished.all()


def test_whole_float_lengths_run_as_their_integers() -> None:
    w = workload(200, rate=20.0)
    as_floats = Workload("test", w.arrival, w.prompt.astype(float), w.output.astype(float))
    a, b = simulate(w, FleetConfig(ENGINE, PROFILE)), simulate(as_floats, FleetConfig(ENGINE, PROFILE))
    assert np.array_equal(a.finish, b.finish) and a.gpu_seconds == b.gpu_seconds


@pytest.mark.parametrize(("last_arrival", "settings", "message"), [
    (2.4e9, {}, r"span 27,777\.8 days .* 160,000,240 scrape/sync intervals of 15 s, more than 2,200,000"),
    (1e12, {"tail_s": 0.0}, "66,666,666,667 scrape/sync intervals"),
    (3600.0, {"scrape_interval_s": 0.001}, r"span 7,200 s .* 7,200,000 scrape/sync intervals of 0\.001 s"),
])
def test_a_run_over_decades_of_intervals_is_refused_before_any_work(last_arrival: float, settings: dict[str, float],
                                                                     message: str) -> None:
    w = Workload("far", np.array([0.0, last_arrival]), np.array([100, 100]), np.array([10, 10]))
    seen: list[ControlView] = []
    with pytest.raises(SimulationInputError, match=message) as info:
        simulate(w, FleetConfig(ENGINE, PROFILE, **settings), seen.append)  # type: ignore[arg-type]
    assert not seen and "--start/--duration" in str(info.value)


def test_a_year_of_intervals_still_runs() -> None:
    w = Workload("year", np.array([0.0, 360 * 86400.0]), np.array([100, 100]), np.array([10, 10]))
    assert simulate(w, FleetConfig(ENGINE, PROFILE)).finished.all()  # a fixed fleet: no pages to render


def test_a_fixed_fleet_may_walk_a_century_of_idle_intervals_but_not_more() -> None:
    """Load tests serve each request alone, 1,000 s apart, on a fleet nobody scrapes: 40,000 requests span more
    than a controlled run may, and still run; a fixed fleet over centuries does not."""
    spaced = Workload("alone", np.arange(40_000) * 1000.0, np.full(40_000, 100), np.full(40_000, 10))
    assert simulate(spaced, FleetConfig(ENGINE, PROFILE)).finished.all()
    with pytest.raises(SimulationInputError, match="a century"):
        simulate(Workload("far", np.array([0.0, 200 * 365 * 86400.0]), np.array([100, 100]), np.array([10, 10])),
                 FleetConfig(ENGINE, PROFILE))
