"""KV capacity against hand-computed values for well-known configs, and from a real vLLM page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llmobs.forecast.capacity import (
    GIB,
    capacity_from_cache_config_info,
    estimate_capacity,
    load_gpu_table,
    lookup_gpu,
    model_shape,
    parse_cache_config_info,
)
from llmobs.forecast.cli import register
from llmobs.forecast.errors import ForecastInputError
from tests.conftest import FIXTURE_PAGE

LLAMA3_8B = {
    "model_type": "llama", "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "hidden_size": 4096, "intermediate_size": 14336, "vocab_size": 128256, "torch_dtype": "bfloat16",
}
MISTRAL_7B_V01 = {
    "model_type": "mistral", "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "hidden_size": 4096, "intermediate_size": 14336, "vocab_size": 32000, "sliding_window": 4096,
    "torch_dtype": "bfloat16",
}
GEMMA2_9B = {
    "model_type": "gemma2", "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8,
    "head_dim": 256, "hidden_size": 3584, "intermediate_size": 14336, "vocab_size": 256000,
    "sliding_window": 4096, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
}
QWEN2_7B = {
    "model_type": "qwen2", "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "hidden_size": 3584, "intermediate_size": 18944, "vocab_size": 152064, "sliding_window": 131072,
    "use_sliding_window": False, "max_window_layers": 28, "torch_dtype": "bfloat16",
}
DEEPSEEK_V3 = {
    "model_type": "deepseek_v3", "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048, "vocab_size": 129280,
    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
    "v_head_dim": 128, "n_routed_experts": 256, "n_shared_experts": 1, "first_k_dense_replace": 3,
    "torch_dtype": "bfloat16",
}


def test_llama3_8b_is_128_kib_per_token_and_fills_what_is_left() -> None:
    # 32 layers × 8 KV heads × 128 × 2 (K,V) × 2 bytes = 131,072 B. Usable: 80 × 0.9 − 15 − 1 = 56 GiB
    # = 56 × 8192 tokens at 128 KiB each = 458,752 tokens = 28,672 blocks of 16; ÷ 8192 = 56 sequences.
    cap = estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=8192, weights_gib=15.0)
    assert cap.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2 == 128 * 1024
    assert cap.kv_tokens == 458_752
    assert cap.num_blocks == 28_672
    assert cap.max_concurrent_sequences == 56
    assert cap.kv_bytes_per_sequence == 8192 * 128 * 1024


def test_llama3_8b_weights_are_estimated_from_the_config_when_not_given() -> None:
    shape = model_shape(LLAMA3_8B)
    assert shape.estimated_params == pytest.approx(8.03e9, rel=0.01)
    cap = estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=8192)
    assert cap.weights_gib == pytest.approx(shape.estimated_params * 2 / GIB)
    assert any("estimated" in n for n in cap.notes)


def test_tensor_parallel_shards_kv_heads_and_replicates_when_fewer_than_ranks() -> None:
    # tp=2: 4 heads per rank → 64 KiB per token per rank; usable per rank 72 − 7.5 − 1 = 63.5 GiB.
    cap = estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=8192, weights_gib=15.0,
                            tensor_parallel_size=2)
    assert cap.kv_tokens == int(63.5 * GIB // (64 * 1024 * 16)) * 16 == 1_040_384
    assert cap.kv_bytes_per_token == 128 * 1024  # the model's, not the rank's
    # tp=16 > 8 KV heads: each rank still holds one whole head.
    cap16 = estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=8192, weights_gib=16.0,
                              tensor_parallel_size=16)
    assert cap16.kv_tokens == int((72 - 1 - 1) * GIB // (16 * 1024 * 16)) * 16
    assert any("replicated" in n for n in cap16.notes)


def test_fp8_kv_cache_halves_bytes_per_token() -> None:
    cap = estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=8192, weights_gib=15.0,
                            kv_cache_dtype="fp8")
    assert cap.kv_bytes_per_token == 64 * 1024
    assert cap.kv_tokens == 2 * 458_752


def test_deepseek_mla_stores_one_latent_per_token_replicated_per_rank() -> None:
    # MLA: (kv_lora_rank 512 + rope 64) × 2 bytes × 61 layers = 70,272 B per token, no K/V pair.
    shape = model_shape(DEEPSEEK_V3)
    assert shape.is_mla and shape.mla_latent_dim == 576
    assert shape.estimated_params == pytest.approx(671e9, rel=0.03)
    cap = estimate_capacity(DEEPSEEK_V3, gpu_memory_gib=141, context_tokens=32768, weights_gib=8 * 80.0,
                            tensor_parallel_size=8, gpu_memory_utilization=0.9)
    assert cap.kv_bytes_per_token == 61 * 576 * 2 == 70_272
    per_rank = (141 * 0.9 - 80 - 1) * GIB
    assert cap.num_blocks == int(per_rank // (70_272 * 16))
    assert cap.max_concurrent_sequences == int(per_rank // (70_272 * 32768))
    assert any("MLA" in n for n in cap.notes)


def test_sliding_window_caps_per_sequence_kv_only_beyond_the_window() -> None:
    short = estimate_capacity(MISTRAL_7B_V01, gpu_memory_gib=80, context_tokens=4096, weights_gib=14.0)
    long = estimate_capacity(MISTRAL_7B_V01, gpu_memory_gib=80, context_tokens=32768, weights_gib=14.0)
    assert short.kv_bytes_per_token == 128 * 1024
    assert short.kv_bytes_per_sequence == 4096 * 128 * 1024  # window not reached: full context
    # Beyond the window every layer holds 4096 tokens + one block in flight (257 blocks of 16).
    assert long.kv_bytes_per_sequence == 257 * 16 * 128 * 1024
    assert long.max_concurrent_sequences == int((72 - 14 - 1) * GIB // (257 * 16 * 128 * 1024))
    assert long.kv_tokens == short.kv_tokens  # the pool is the same; only the per-sequence cost changes


def test_gemma2_alternates_local_and_global_layers() -> None:
    shape = model_shape(GEMMA2_9B)
    assert shape.layer_kinds.count("sliding_attention") == 21
    cap = estimate_capacity(GEMMA2_9B, gpu_memory_gib=80, context_tokens=8192, weights_gib=18.0)
    per_layer = 2 * 8 * 256 * 2
    assert cap.kv_bytes_per_token == 42 * per_layer == 344_064
    assert cap.kv_bytes_per_sequence == (21 * 8192 + 21 * 257 * 16) * per_layer


def test_qwen2_window_is_ignored_when_use_sliding_window_is_false() -> None:
    shape = model_shape(QWEN2_7B)
    assert shape.sliding_window is None
    cap = estimate_capacity(QWEN2_7B, gpu_memory_gib=24, context_tokens=32768, weights_gib=14.2)
    assert cap.kv_bytes_per_token == 28 * 2 * 4 * 128 * 2 == 57_344
    assert cap.kv_bytes_per_sequence == 32768 * 57_344


def test_hybrid_linear_attention_layers_hold_no_per_token_kv() -> None:
    cfg = {**LLAMA3_8B, "num_hidden_layers": 8,
           "layer_types": ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + ["full_attention"]}
    cap = estimate_capacity(cfg, gpu_memory_gib=80, context_tokens=8192, weights_gib=10.0)
    assert cap.kv_bytes_per_token == 2 * 8 * 128 * 2 * 2
    assert any("not counted" in n for n in cap.notes)


def test_live_capacity_from_the_real_vllm_page(fixture_page: str) -> None:
    labels = parse_cache_config_info(fixture_page)
    cap = capacity_from_cache_config_info(labels, context_tokens=1024)
    assert cap.kv_tokens == 4096 * 128 == int(labels["num_gpu_blocks"]) * int(labels["block_size"])
    assert cap.max_concurrent_sequences == 4096 // (1024 // 128) == 512
    assert cap.kv_bytes_per_token == 1073741824 // (4096 * 128)
    # Without a context, vLLM's own concurrency label (at max-model-len 1024) is used and says the same.
    assert capacity_from_cache_config_info(labels).max_concurrent_sequences == 512


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ({"block_size": "16"}, "num_gpu_blocks"),
        ({"num_gpu_blocks": "None", "block_size": "16"}, "num_gpu_blocks"),
        ({"num_gpu_blocks": "lots", "block_size": "16"}, "not a number"),
        ({"num_gpu_blocks": "-4", "block_size": "16"}, "positive"),
    ],
)
def test_cache_config_info_bad_labels_name_the_problem(labels: dict[str, str], needle: str) -> None:
    with pytest.raises(ForecastInputError, match=needle):
        capacity_from_cache_config_info(labels)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"gpu_memory_gib": 0}, "not plausible"),
        ({"gpu_memory_gib": 1e6}, "not plausible"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"context_tokens": -1}, "context"),
        ({"weights_gib": 500.0}, "exceed usable GPU memory"),
        ({"kv_cache_dtype": "fp3"}, "unknown dtype"),
    ],
)
def test_absurd_capacity_inputs_fail_with_the_reason(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {"gpu_memory_gib": 80, "context_tokens": 8192, "weights_gib": 15.0, **kwargs}
    with pytest.raises(ForecastInputError, match=needle):
        estimate_capacity(LLAMA3_8B, **args)  # type: ignore[arg-type]


def test_config_without_layers_names_the_missing_key() -> None:
    with pytest.raises(ForecastInputError, match="num_hidden_layers"):
        model_shape({"num_attention_heads": 8})


def test_a_fractional_dimension_is_named_not_truncated_to_zero() -> None:
    with pytest.raises(ForecastInputError, match=r"'num_hidden_layers' is not an integer: 2\.5"):
        model_shape({"num_hidden_layers": 2.5, "num_attention_heads": 8, "hidden_size": 512})


def test_gpu_table_is_data_and_lookup_is_case_insensitive() -> None:
    table = load_gpu_table()
    assert lookup_gpu("h100-80gb", table).memory_gib == 80
    with pytest.raises(ForecastInputError, match=r"unknown GPU 'Z9000'; known: .*H100"):
        lookup_gpu("Z9000", table)


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_capacity_json_and_table(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA3_8B))
    runner = CliRunner()
    r = runner.invoke(_app(), ["forecast", "capacity", "--model-config", str(cfg), "--gpu", "H100-80GB",
                               "--context", "8192", "--weights-gib", "15", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["kv_bytes_per_token_kib"] == 128.0 and d["max_concurrent_sequences"] == 56
    assert d["gpu"] == "H100-80GB" and d["usd_per_hour"] > 0
    r = runner.invoke(_app(), ["forecast", "capacity", "--model-config", str(cfg), "--gpu-memory-gib", "80"])
    assert r.exit_code == 0 and "KV tokens that fit" in r.output


def test_cli_capacity_from_a_metrics_page() -> None:
    page = FIXTURE_PAGE
    r = CliRunner().invoke(_app(), ["forecast", "capacity", "--metrics-page", str(page), "--context", "1024",
                                    "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["kv_tokens"] == 524_288


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        ("{not json", [], "is not JSON"),
        (json.dumps(LLAMA3_8B), ["--gpu-memory-gib", "-3"], "not plausible"),
        (json.dumps(LLAMA3_8B), ["--gpu-memory-gib", "8", "--weights-gib", "15"], "exceed usable GPU memory"),
        (json.dumps(LLAMA3_8B), ["--gpu", "nope"], "unknown GPU"),
    ],
)
def test_cli_capacity_bad_input_is_one_error_line(tmp_path: Path, content: str, extra: list[str], needle: str) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(content)
    r = CliRunner().invoke(_app(), ["forecast", "capacity", "--model-config", str(cfg), *extra])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert "Traceback" not in r.output


@settings(max_examples=50, deadline=None)
@given(
    mem=st.floats(24, 200), extra=st.floats(0, 100), ctx=st.integers(128, 65536), ctx2=st.integers(1, 65536),
    cfg=st.sampled_from([LLAMA3_8B, MISTRAL_7B_V01, GEMMA2_9B, QWEN2_7B]),
)
def test_capacity_is_monotone(mem: float, extra: float, ctx: int, ctx2: int, cfg: dict[str, object]) -> None:
    """More memory never holds fewer tokens; a longer context never fits more sequences."""
    kw = {"weights_gib": 10.0, "activation_reserve_gib": 1.0}
    small = estimate_capacity(cfg, gpu_memory_gib=mem, context_tokens=ctx, **kw)
    big = estimate_capacity(cfg, gpu_memory_gib=mem + extra, context_tokens=ctx, **kw)
    assert big.kv_tokens >= small.kv_tokens and big.max_concurrent_sequences >= small.max_concurrent_sequences
    longer = estimate_capacity(cfg, gpu_memory_gib=mem, context_tokens=ctx + ctx2, **kw)
    assert longer.max_concurrent_sequences <= small.max_concurrent_sequences
    assert small.kv_tokens % small.block_size == 0
