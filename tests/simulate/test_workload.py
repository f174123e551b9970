"""Requests from each trace format, and the trace files the simulator must refuse with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmobs.simulate import SimulationInputError, load_workload

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
