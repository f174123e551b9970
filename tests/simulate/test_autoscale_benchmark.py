"""benchmarks/autoscale.py at smoke size: every policy of the registry is swept on a trace and reported with
its frontier, its cheapest knob at the target and its out-of-sample run, the plot is written, and bad input
ends in one line instead of a traceback."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.autoscale import Trace, main, rate_future
from llmobs.simulate import Workload
from llmobs.simulate.policies import POLICIES


def azure_trace(path: Path, minutes: float = 8.0, seed: int = 0) -> Path:
    """An Azure-format trace whose rate doubles halfway: something for the policies to scale on."""
    rng = np.random.default_rng(seed)
    span = minutes * 60.0
    rate = lambda t: 2.0 if t < span / 2 else 4.0  # noqa: E731 — requests/s before and after the step
    t, times = 0.0, []
    while t < span:
        t += rng.exponential(1.0 / rate(t))
        times.append(t)
    n = len(times)
    stamps = pd.Timestamp("2023-11-16 18:00:00") + pd.to_timedelta(times, unit="s")
    pd.DataFrame({"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"),
                  "ContextTokens": rng.integers(2000, 6000, n),
                  "GeneratedTokens": rng.integers(50, 300, n)}).to_csv(path, index=False)
    return path


def test_every_policy_is_swept_and_reported_with_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = azure_trace(tmp_path / "step.csv")
    args = ["--quick", "--jobs", "1", "--load", "1", "--trace", str(trace), "--plot-dir", str(tmp_path / "img")]
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    table = [line.split() for line in lines if line.startswith("   ") and line.split()[0] in POLICIES]
    assert {row[0] for row in table} == set(POLICIES)  # one summary row per policy
    frontier = [line.split() for line in lines if line.startswith("     ") and line.split()[0] in POLICIES]
    for row in frontier:  # cheapest first, and each point dearer than the last buys more attainment
        points = [tuple(map(float, p.split("→"))) for p in row[1:]]
        assert points == sorted(points) and all(b[1] > a[1] for a, b in pairwise(points))
    assert "target: test attainment ≥ 0.9900" in out
    # llmobs never proposes fewer replicas than its reactive floor, so no knob makes it cheaper than the floor
    floor_line = next(line for line in lines if "llmobs' reactive floor alone" in line)
    floor_gpu_h = float(floor_line.split("test ")[1].split()[0])
    cheapest_llmobs = min(p[0] for row in frontier if row[0] == "llmobs"
                          for p in [tuple(map(float, x.split("→"))) for x in row[1:]])
    assert cheapest_llmobs >= 0.99 * floor_gpu_h > 0
    assert (tmp_path / "img" / "autoscale-step.png").stat().st_size > 10_000
    assert lines[-1].startswith("ratio: ")
    assert float(lines[-1].split()[1]) >= 0  # a number (inf when no a–e policy reaches the target), never NaN
    assert any(line.startswith("request-level simulator:") and "simulated requests/s" in line for line in lines)
    by_trace = next(line for line in lines if "by trace (simulated requests/s per core)" in line)
    assert float(by_trace.split("step ")[1].replace(",", "")) > 0  # the one trace, with its own figure


def test_a_trace_without_lengths_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.csv"
    bare.write_text("TIMESTAMP\n2023-11-16 18:00:00.0\n2023-11-16 18:00:01.0\n")
    assert main(["--quick", "--jobs", "1", "--trace", str(bare), "--plot-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("autoscale: skipping bare.csv:") and "ContextTokens" in err[0]
    assert err[-1] == "autoscale: no trace left to run" and len(err) == 2


def test_an_slo_no_fleet_can_meet_is_refused_before_any_run(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    trace = azure_trace(tmp_path / "step.csv", minutes=2)
    assert main(["--quick", "--trace", str(trace), "--tpot", "0.001", "--plot-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "TPOT SLO 1 ms" in captured.err


def test_the_bound_sees_a_rate_window_traces_requests_at_their_rate(tmp_path: Path) -> None:
    """On a long trace (fluid mode) the clairvoyant bound is handed pseudo-requests standing for `weight`
    requests each: together they carry the windows' requests (a gap filled as the fluid run fills it)."""
    path = tmp_path / "windows.csv"
    pd.DataFrame({"window_start_s": [0, 600, 1200], "total_rate_rps": [10.0, 0.0, 30.0],
                  "mean_input_tokens_est": [100.4, 0.0, 300.0], "mean_output_tokens_est": [20.0, 0.0, 40.0]}
                 ).to_csv(path, index=False)
    w = Workload("x", np.array([0.0, 1.0]), np.array([100, 100]), np.array([20, 20]))
    trace = Trace("windows", path, "fluid", w, 720.0, 1800.0, 5.0, 2.0, 1, 10, 1.0, 1.0)
    future, weight = rate_future(trace)
    assert len(future) * weight == pytest.approx((10 + 20 + 30) * 600 * 2.0, abs=weight)  # the gap as 20 req/s
    first, third = (future.arrival < 600).sum(), (future.arrival >= 1200).sum()
    assert third == pytest.approx(3 * first, rel=0.01)
    assert set(future.prompt[future.arrival < 600]) == {101} and set(future.output[future.arrival >= 1200]) == {40}
    assert (np.diff(future.arrival) >= 0).all() and future.arrival[-1] < 1800


def test_a_file_given_twice_runs_once_and_two_files_of_one_name_stay_apart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b").mkdir()
    one, other = azure_trace(tmp_path / "step.csv"), azure_trace(tmp_path / "b" / "step.csv", seed=1)
    args = ["--quick", "--jobs", "1", "--load", "1", "--plot-dir", str(tmp_path / "img")]
    assert main([*args, "--trace", str(one), "--trace", str(one), "--trace", str(other)]) == 0
    out = capsys.readouterr().out
    assert out.count("== step:") == 1 and out.count("== step-2:") == 1  # three paths, two files, two names
    assert (tmp_path / "img" / "autoscale-step.png").exists() and (tmp_path / "img" / "autoscale-step-2.png").exists()


def test_traces_that_scale_to_nonsense_are_skipped_with_the_reason(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Three requests, then quiet for minutes, then traffic: scaled so the training part runs at LOAD ×
    capacity, the trace would be hundreds of millions of requests (it hung); a trace of a few seconds leaves
    no room for a cold start; with --load tiny, parts of a handful of requests would make a 'ratio' of noise."""
    step = pd.read_csv(azure_trace(tmp_path / "step.csv", minutes=12.0))
    times = np.concatenate([[0.0, 10.0, 20.0], np.arange(500.0, 720.0, 0.05)])  # 3 requests, then 20/s
    stamps = pd.Timestamp("2023-11-16 18:00:00") + pd.to_timedelta(times, unit="s")
    pd.DataFrame({"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"), "ContextTokens": 3000,
                  "GeneratedTokens": 100}).to_csv(tmp_path / "sparse.csv", index=False)
    step.iloc[:40].to_csv(tmp_path / "short.csv", index=False)
    args = ["--quick", "--jobs", "1", "--plot-dir", str(tmp_path / "img")]
    assert main([*args, "--trace", str(tmp_path / "sparse.csv"), "--trace", str(tmp_path / "short.csv")]) == 2
    err = capsys.readouterr().err
    assert "sparse.csv: scaled to LOAD × capacity it would be" in err and "more than 1,000,000" in err
    assert "short.csv: spans" in err and "too short for a cold start" in err
    assert main([*args, "--load", "0.01", "--trace", str(tmp_path / "step.csv")]) == 2
    assert "fewer than 100" in capsys.readouterr().err
    assert main([*args, "--jobs", "0", "--trace", str(tmp_path / "step.csv")]) == 2
    assert "--jobs must be ≥ 1" in capsys.readouterr().err
