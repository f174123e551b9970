"""Measures of one part of a run (the benchmark's training and test parts): which requests count, whose GPU
time counts, and that the parts add up to the whole run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmobs.simulate import ControlView, EngineConfig, FleetConfig, SimulationResult, StepProfile, Workload, simulate

PROFILE = StepProfile("test", fixed_s=0.01, prefill_token_s=1e-4, decode_seq_s=1e-3, kv_token_s=1e-6,
                      gpus_per_replica=2)
ENGINE = EngineConfig(kv_blocks=400, block_size=16, max_num_seqs=16, max_num_batched_tokens=512, max_model_len=2048)


def outcome(arrival: list[float], first: list[float], finish: list[float], output: list[int],
            spans: tuple[tuple[float, float], ...], rejected: list[bool] | None = None,
            timeline: tuple[tuple[float, int, int], ...] = ((0.0, 1, 0),)) -> SimulationResult:
    n = len(arrival)
    gpu_seconds = sum(b - a for a, b in spans)
    return SimulationResult(np.array(arrival), np.array(first), np.array(finish), np.full(n, 100),
                            np.array(output), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                            np.array(rejected or [False] * n), gpu_seconds, max(b for _, b in spans), 0,
                            timeline, (), spans)


def test_a_part_counts_the_requests_arriving_in_it_and_misses_rejected_and_unfinished_ones() -> None:
    r = outcome(arrival=[1.0, 2.0, 11.0, 12.0, 13.0, 14.0],
                first=[1.5, 4.0, 11.2, 12.2, -1.0, -1.0],
                finish=[2.0, 5.0, 12.0, 20.0, -1.0, -1.0],
                output=[11, 11, 11, 11, 11, 11],
                rejected=[False, False, False, False, False, True],
                spans=((0.0, 30.0),))
    train = r.part(0.0, 10.0, ttft_s=1.0, tpot_s=0.1)
    test = r.part(10.0, math.inf, ttft_s=1.0, tpot_s=0.1)
    assert (train.requests, train.met) == (2, 1)  # the second waited 2 s for its first token
    # 11.0 meets both; 12.0's TPOT is 0.78 s; 13.0 never finished; 14.0 was rejected: all three are missed
    assert (test.requests, test.met) == (4, 1)
    assert test.attainment == pytest.approx(0.25)


def test_gpu_time_of_a_part_includes_starting_and_draining_replicas_overlapping_it() -> None:
    # replica 0 serves throughout; replica 1 is added at 5 s and drains until 14 s after being removed at 8 s
    r = outcome(arrival=[1.0], first=[1.1], finish=[1.2], output=[1], spans=((0.0, 20.0), (5.0, 14.0)),
                timeline=((0.0, 1, 0), (5.0, 1, 1), (8.0, 1, 0)))
    assert r.part(10.0, math.inf, 1.0, 0.1).gpu_hours == pytest.approx((10.0 + 4.0) / 3600)
    assert r.part(0.0, 10.0, 1.0, 0.1).gpu_hours == pytest.approx((10.0 + 5.0) / 3600)
    assert r.part(0.0, 10.0, 1.0, 0.1).scale_events == 2
    assert r.part(10.0, math.inf, 1.0, 0.1).scale_events == 0


def test_goodput_per_gpu_hour_is_met_requests_over_the_parts_gpu_hours() -> None:
    r = outcome(arrival=[1.0, 2.0], first=[1.1, 2.1], finish=[1.15, 2.15], output=[2, 2], spans=((0.0, 3600.0),))
    assert r.part(0.0, math.inf, 1.0, 0.1).goodput_per_gpu_hour == pytest.approx(2.0)


def test_the_parts_of_a_scaled_run_add_up_to_the_run() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    rate = np.where(np.arange(n) < n // 2, 20.0, 80.0)  # a step up in load, then the trace ends: scale up and in
    arrival = np.cumsum(rng.exponential(1 / rate))
    w = Workload("test", arrival - arrival[0], rng.integers(100, 400, n), rng.integers(1, 100, n))

    def by_queue(view: ControlView) -> int | None:
        if not view.loads:
            return None
        return max(1, math.ceil(sum(x.concurrency for x in view.loads) / 12))

    result = simulate(w, FleetConfig(ENGINE, PROFILE, initial_replicas=2, cold_start_s=30.0), by_queue)
    assert len(result.replica_timeline) > 2 and len(result.replica_spans) > 2  # it did scale
    split = float(arrival[-1]) * 0.4
    head = result.part(0.0, split, 1.0, 0.2)
    tail = result.part(split, math.inf, 1.0, 0.2)
    assert head.requests + tail.requests == n
    assert head.met + tail.met == int(result.met(1.0, 0.2).sum())
    assert head.gpu_hours + tail.gpu_hours == pytest.approx(result.gpu_hours)  # 2 GPUs per replica in both
    assert head.scale_events + tail.scale_events == len(result.replica_timeline) - 1


def test_a_result_without_replica_spans_refuses_to_split_its_gpu_time() -> None:
    r = outcome(arrival=[1.0], first=[1.1], finish=[1.2], output=[1], spans=((0.0, 10.0),))
    bare = SimulationResult(r.arrival, r.first_token, r.finish, r.prompt, r.output, r.preemptions, r.replica,
                            r.rejected, 10.0, 10.0, 0)
    with pytest.raises(ValueError, match="no replica spans"):
        bare.part(0.0, 5.0, 1.0, 0.1)
