"""Step-time profiles: the bundled GPU profile, its KV capacity through `llmobs forecast capacity`'s
arithmetic, and profiles that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmobs.forecast.capacity import estimate_capacity
from llmobs.simulate import SimulationInputError, StepProfile, load_profile, parse_profile


def test_the_bundled_h100_profile_names_its_source_and_sizes_its_kv_as_llmobs_capacity_does() -> None:
    p = load_profile("llama-3.1-8b-h100")
    assert "H100" in p.source and p.gpu == "H100-80GB"
    cap = p.capacity(context_tokens=8192)
    same = estimate_capacity(p.model_config, gpu_memory_gib=80, context_tokens=8192)
    assert cap.num_blocks == same.num_blocks > 10_000
    # a lone decode step is the weight-read floor; a 256-sequence step at 1k context lands near 26 ms
    assert p.step_seconds(0, 1, 1000) == pytest.approx(0.006, rel=0.05)
    assert p.step_seconds(0, 256, 256_000) == pytest.approx(0.026, rel=0.05)


@pytest.mark.parametrize(("text", "message"), [
    ("fixed_s: 0.01\nprefill_token_s: 1e-5\n", "missing decode_seq_s"),
    ("fixed_s: -1\nprefill_token_s: 1e-5\ndecode_seq_s: 1e-5\n", "fixed_s -1.0"),
    ("fixed_s: fast\nprefill_token_s: 1e-5\ndecode_seq_s: 1e-5\n", "must be a number"),
    ("fixed_s: 0\nprefill_token_s: 0\ndecode_seq_s: 0\n", "must take time"),
    ("- 1\n- 2\n", "expected a mapping"),
])
def test_unusable_profiles_are_refused(text: str, message: str) -> None:
    with pytest.raises(SimulationInputError, match=message):
        parse_profile(text, "profile test")


def test_a_profile_whose_gpu_cannot_hold_the_model_is_refused(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "src/llmobs/simulate/profiles/llama-3.1-8b-h100.yaml").read_text()
    path = tmp_path / "t4.yaml"
    path.write_text(text.replace("gpu: H100-80GB", "gpu: T4"))
    with pytest.raises(SimulationInputError, match="exceed usable GPU memory"):
        load_profile(path).capacity(context_tokens=8192)


def test_an_unknown_profile_lists_the_bundled_ones() -> None:
    with pytest.raises(SimulationInputError, match=r"llama-3\.1-8b-h100"):
        load_profile("no-such-profile")


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("fixed_s", "1" + "0" * 400, "an integer of 401 digits"),
    ("gpus_per_replica", "99999999999999999999999999", "gpus_per_replica 99999999999999999999999999 must be in"),
])
def test_absurd_numbers_in_a_profile_are_refused_in_one_line(field: str, value: str, needle: str) -> None:
    text = "\n".join(f"{k}: {v}" for k, v in {"fixed_s": 0.005, "prefill_token_s": 1e-5, "decode_seq_s": 1e-4,
                                             field: value}.items())
    with pytest.raises(SimulationInputError, match=needle):
        parse_profile(text)


def test_numpy_numbers_are_taken_as_plain_ones_and_a_fractional_gpu_count_is_refused() -> None:
    import numpy as np

    base = load_profile("llama-3.1-8b-h100")
    fitted = StepProfile(name="fit", fixed_s=np.float32(0.005), prefill_token_s=np.float64(1e-5),
                         decode_seq_s=1e-4, gpus_per_replica=np.int64(2))
    assert type(fitted.fixed_s) is float and type(fitted.gpus_per_replica) is int
    with pytest.raises(SimulationInputError, match=r"gpus_per_replica must be a whole number, not 1\.5"):
        StepProfile(name="x", fixed_s=base.fixed_s, prefill_token_s=base.prefill_token_s,
                    decode_seq_s=base.decode_seq_s, gpus_per_replica=1.5)  # type: ignore[arg-type]
