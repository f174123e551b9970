"""Requests from each trace format, and the trace files the simulator must refuse with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmobs.simulate import SimulationInputError, Workload, load_workload
from llmobs.simulate.workload import draw_from_rate_windows

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"


def test_azure_requests_keep_their_own_lengths() -> None:
    w = load_workload(TRACES / "AzureLLMInferenceTrace_conv.csv")
    assert len(w) == 19366
    assert (w.prompt[:2].tolist(), w.output[:2].tolist()) == ([374, 396], [44, 109])
    assert w.arrival[0] == 0.0 and (np.diff(w.arrival) >= 0).all()
    assert w.hashes == ()


def test_mooncake_requests_carry_their_prefix_block_hashes() -> None:
    w = load_workload(TRACES / "mooncake_fast25_conversation.csv", duration_s=60)
    assert w.hashes[0] == tuple(range(14)) and w.hashes[1][0] == 0  # the second request reuses block 0
    assert w.hash_block_tokens == 512
    assert len(w.hashes) == len(w)


def test_servegen_windows_become_seeded_poisson_arrivals_around_the_window_means() -> None:
    path = TRACES / "servegen_m-small_rate_10min.csv"
    a = load_workload(path, seed=1, duration_s=600, rate_scale=0.1)
    b = load_workload(path, seed=1, duration_s=600, rate_scale=0.1)
    c = load_workload(path, seed=2, duration_s=600, rate_scale=0.1)
    assert np.array_equal(a.arrival, b.arrival) and np.array_equal(a.prompt, b.prompt)
    assert not np.array_equal(a.prompt, c.prompt)
    assert len(a) == pytest.approx(809.762 * 0.1 * 600, rel=0.05)  # the first window's rate
    assert a.prompt.mean() == pytest.approx(137.921, rel=0.1)
    assert any("exponential" in n for n in a.notes)


def test_compressing_a_trace_raises_its_rate_and_keeps_its_requests() -> None:
    w = load_workload(TRACES / "AzureLLMInferenceTrace_code.csv")
    fast = w.compressed(10).repeated(2)
    assert len(fast) == 2 * len(w)
    assert fast.arrival[len(w) - 1] == pytest.approx(w.arrival[-1] / 10)


@pytest.mark.parametrize(("text", "message"), [
    ("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,10\n", "missing column.*GeneratedTokens.*prompt and output"),
    ("timestamp_ms,input_length,output_length\n0,-5,10\n", "prompt length -5"),
    ("timestamp_ms,input_length,output_length\n0,10,0\n", "output length 0"),
    ("timestamp_ms,input_length,output_length\n0,10,1e12\n", "output length 1e"),
    ("timestamp_ms,input_length,output_length\n0,10,abc\n", "not a number"),
    ("timestamp_ms,input_length,output_length\n0,10.5,3\n", "prompt length 10.5"),
    ("window_start_s,total_rate_rps\n0,5\n", "missing column.*mean_input_tokens_est"),
    ("window_start_s,total_rate_rps,mean_input_tokens_est,mean_output_tokens_est\n0,5,-3,10\n", "positive mean"),
    ("a,b\n1,2\n", "unknown trace format"),
    ("", "not a readable CSV"),
])
def test_traces_the_simulator_cannot_use_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(SimulationInputError, match=message) as info:
        load_workload(path)
    assert "\n" not in str(info.value)


def test_a_missing_trace_file_is_named() -> None:
    with pytest.raises(SimulationInputError, match="not found"):
        load_workload("/nonexistent/trace.csv")


AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
MOONCAKE_HEADER = "timestamp_ms,input_length,output_length,hash_ids\n"
SERVEGEN_HEADER = "window_start_s,total_rate_rps,mean_input_tokens_est,mean_output_tokens_est\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def _refused(path: Path, message: str, **kwargs: object) -> str:
    with pytest.raises(SimulationInputError, match=message) as info:
        load_workload(path, **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text and "np." not in text
    return text


def test_azure_dates_with_and_without_fractional_seconds_are_read_alike(tmp_path: Path) -> None:
    w = load_workload(_write(tmp_path, AZURE_HEADER + "2023-11-16 18:15:46.6805900,374,44\n"
                             "2023-11-16 18:15:52,396,109\n2023-11-16 18:15:52.5000000,879,55\n"))
    assert w.arrival.tolist() == pytest.approx([0.0, 5.31941, 5.81941])


def test_azure_names_the_first_bad_date_even_after_a_first_row_in_another_form(tmp_path: Path) -> None:
    path = _write(tmp_path, AZURE_HEADER + "2023-11-16 18:15:00,10,10\n2023-11-16 18:15:01.5000000,10,10\n"
                  "not-a-date,10,10\n")
    _refused(path, "TIMESTAMP row 4 is not a date: 'not-a-date'")


def test_azure_epoch_zero_first_row_is_named_as_a_broken_timestamp(tmp_path: Path) -> None:
    path = _write(tmp_path, AZURE_HEADER + "1970-01-01 00:00:00,374,44\n2023-11-16 18:15:50.9951690,396,109\n"
                  "2023-11-16 18:15:51.2224670,879,55\n")
    _refused(path, r"rows 2 and 3 are 19,678 days apart \(1970-01-01 00:00:00, then 2023-11-16.*broken timestamp")


def test_azure_numeric_timestamps_are_refused_not_read_as_nanoseconds(tmp_path: Path) -> None:
    path = _write(tmp_path, AZURE_HEADER + "1700000000,500,100\n1700000003,500,100\n")
    _refused(path, r"TIMESTAMP holds numbers \(row 2: 1700000000\), not dates.*2023-11-16 18:15:46.6805900")


def test_azure_dates_mixing_utc_offsets_and_none_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, AZURE_HEADER + "2023-11-16 18:15:46.6805900,10,10\n2023-11-16 18:15:47+05:00,10,10\n")
    _refused(path, "TIMESTAMP row 3 .* has a UTC offset and row 2 does not")
    # all with an offset: one clock (UTC), read as such
    w = load_workload(_write(tmp_path, AZURE_HEADER + "2023-11-16T18:15:00+01:00,10,10\n2023-11-16T17:15:30Z,10,10\n"))
    assert w.arrival.tolist() == [0.0, 30.0]


@pytest.mark.parametrize("cell", ["nan", "", "inf"])
@pytest.mark.parametrize("row", [0, 2])
def test_mooncake_empty_or_nan_timestamps_are_refused_with_their_row(tmp_path: Path, cell: str, row: int) -> None:
    times = ["0", "1000", "2000"]
    times[row] = cell
    path = _write(tmp_path, MOONCAKE_HEADER + "".join(f"{t},100,10,0 1\n" for t in times))
    _refused(path, f"column timestamp_ms row {row + 2} is {'inf' if cell == 'inf' else 'empty'}")


@pytest.mark.parametrize(("text", "message"), [
    (AZURE_HEADER + "2023-11-16 18:15:46.6805900,374,44\n2100-01-01 00:00:00.0000000,100,100\n",
     "rows 2 and 3 are 27,804 days apart"),
    (MOONCAKE_HEADER + "0,100,10,0\n15000,100,10,1\n1e15,100,10,2\n",
     r"rows 3 and 4 are 11,574,074 days apart \(15000 ms"),
    (SERVEGEN_HEADER + "0,5,100,10\n600,5,100,10\n1e12,5,100,10\n", "rows 3 and 4 are 11,574,074 days apart"),
])
def test_a_far_future_timestamp_is_refused_by_the_reader(tmp_path: Path, text: str, message: str) -> None:
    _refused(_write(tmp_path, text), message)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start_s": float("nan")}, "start must be a finite number of seconds ≥ 0 into the trace, not nan"),
    ({"start_s": -5.0}, "start must be .* not -5"),
    ({"duration_s": 0}, "duration must be a number of seconds > 0 .* not 0"),
    ({"duration_s": -60.0}, "duration must be .* not -60"),
    ({"duration_s": float("nan")}, "duration must be .* not nan"),
    ({"seed": -1}, "seed must be an integer ≥ 0, not -1"),
    ({"seed": 1.5}, "seed must be an integer ≥ 0, not 1.5"),
    ({"seed": "a"}, "seed must be an integer ≥ 0, not 'a'"),
])
@pytest.mark.parametrize("trace", ["AzureLLMInferenceTrace_code.csv", "servegen_m-small_rate_10min.csv"])
def test_bad_cut_or_seed_arguments_are_refused_not_an_empty_workload(trace: str, kwargs: dict[str, object],
                                                                     message: str) -> None:
    _refused(TRACES / trace, message, **kwargs)


def test_rate_window_draws_are_sized_before_drawing() -> None:
    path = TRACES / "servegen_m-small_rate_10min.csv"
    text = _refused(path, "would draw about 1,420,558,702 requests, more than 20,000,000")  # the 14 days, no cut
    assert "shorter span" in text
    _refused(path, "would draw about 485,857,2.* requests", duration_s=600, rate_scale=1e9)
    assert len(load_workload(path, duration_s=60, rate_scale=0.01, seed=np.int64(3))) > 0  # type: ignore[arg-type]


@pytest.mark.parametrize(("rows", "message"), [
    ("0,5,100,10\n600,1e12,100,10\n", "would draw about 600,000,000,003,000 requests"),
    ("0,5,100,10\n600,inf,100,10\n", "window at 600s has total_rate_rps inf; a rate must be a finite number ≥ 0"),
    ("0,5,100,10\n600,-5,100,10\n", "window at 600s has total_rate_rps -5"),
    ("0,5,100,10\n600,5,1e9,10\n", r"mean_input_tokens_est 1e\+09; .*a positive mean of at most 10,000,000 tokens"),
    ("0,5,100,10\n600,5,100,nan\n", "mean_output_tokens_est nan; "),
    ("0,5,100,10\n,5,100,10\n", "column window_start_s row 3 is empty"),
    ("0,5,100,10\n0,5,100,10\n", "window_start_s row 3 repeats row 2's 0s"),
])
def test_rate_windows_that_cannot_be_drawn_are_refused(tmp_path: Path, rows: str, message: str) -> None:
    _refused(_write(tmp_path, SERVEGEN_HEADER + rows), message)


def test_rate_windows_from_elsewhere_check_the_seed_and_the_size() -> None:
    windows = pd.DataFrame({"window_start_s": [0.0, 60.0], "total_rate_rps": [1.0, np.nan],
                            "mean_input_tokens_est": [100.0, np.nan], "mean_output_tokens_est": [10.0, np.nan]})
    assert len(draw_from_rate_windows(windows, "prom", seed=np.int64(1))) > 0  # type: ignore[arg-type]
    for seed in (-1, 1.5, "a"):
        with pytest.raises(SimulationInputError, match="seed must be an integer ≥ 0"):
            draw_from_rate_windows(windows, "prom", seed=seed)  # type: ignore[arg-type]
    with pytest.raises(SimulationInputError, match="would draw about 30,000,000 requests"):
        draw_from_rate_windows(windows.assign(window_start_s=[0.0, 3e7]), "prom")  # a 347-day window


def test_a_workload_takes_whole_float_lengths_as_integers() -> None:
    w = Workload("w", np.array([0.0, 1.0]), np.array([10.0, 20.0]), np.array([3.0, 4.0]))
    assert w.prompt.dtype == np.int64 and w.output.dtype == np.int64
    assert w.prompt.tolist() == [10, 20]
    assert Workload("w", [0, 1], [10, 20], [3, 4]).prompt.tolist() == [10, 20]  # type: ignore[arg-type]
    numpy_block = Workload("w", np.zeros(1), np.ones(1), np.ones(1), hash_block_tokens=np.int64(16))  # type: ignore[arg-type]
    assert type(numpy_block.hash_block_tokens) is int


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prompt": np.array([10.5, 20.0])}, "request 0 has prompt length 10.5"),
    ({"prompt": np.array([[10, 20], [1, 2]])}, "prompt must be a 1-D array of numbers, .* not a 2-D array"),
    ({"arrival": np.zeros((2, 1))}, "arrival must be a 1-D array"),
    ({"output": np.array(["a", "b"])}, "output must be a 1-D array of numbers"),
    ({"hash_block_tokens": 0}, "hash_block_tokens must be an integer ≥ 1 .* not 0"),
    ({"hash_block_tokens": 1.5}, "hash_block_tokens must be an integer ≥ 1 .* not 1.5"),
    ({"arrival": np.array([-1.0, 0.0])}, "request 0 has arrival time -1; arrival times must be finite seconds ≥ 0"),
    ({"arrival": np.array([0.0, np.nan])}, "request 1 has arrival time nan"),
    ({"arrival": np.array([2.0, 1.0])},
     r"request 1 arrives at 1s, before request 0 \(2s\); arrival times must be sorted"),
])
def test_a_workload_refuses_values_that_would_fail_later(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"arrival": np.array([0.0, 1.0]), "prompt": np.array([10, 20]),
                                 "output": np.array([3, 4])} | kwargs
    with pytest.raises(SimulationInputError, match=message) as info:
        Workload("w", **values)  # type: ignore[arg-type]
    assert "np." not in str(info.value)


def test_compression_and_repeat_counts_are_checked_plainly() -> None:
    w = Workload("w", np.array([0.0, 1.0]), np.array([10, 20]), np.array([3, 4]))
    with pytest.raises(SimulationInputError, match=r"compression factor must be a finite number > 0, not -1$"):
        w.compressed(np.float64(-1.0))
    with pytest.raises(SimulationInputError, match=r"repeat count must be an integer ≥ 1, not 1\.5"):
        w.repeated(1.5)  # type: ignore[arg-type]
    assert len(w.repeated(np.int64(2))) == 4  # type: ignore[arg-type]


def test_a_start_past_the_windows_end_says_so() -> None:
    servegen = Path(__file__).resolve().parents[2] / "data" / "traces" / "servegen_m-small_rate_10min.csv"
    with pytest.raises(SimulationInputError, match=r"the start 2\.592e\+06s is past the windows' end \(.*14\.0 days\)"):
        load_workload(servegen, start_s=30 * 86400.0)
