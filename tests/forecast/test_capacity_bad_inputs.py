"""`llmobs forecast capacity` on inputs QA found wrong: each is one `error:` line with exit 2 naming what to
fix (never `unexpected ...` with exit 1, never a silently absurd figure), or a result with a note saying why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmobs.forecast.capacity import (
    capacity_from_cache_config_info,
    estimate_capacity,
    model_shape,
    parse_cache_config_info,
    parse_gpu_table,
)
from llmobs.forecast.cli import register
from llmobs.forecast.errors import ForecastInputError
from tests.forecast.test_capacity import LLAMA3_8B


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _run(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(_app(), ["forecast", "capacity", *args])
    return r.exit_code, r.output


def _config(tmp_path: Path, **changes: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA3_8B, **changes}))
    return str(path)


def _assert_one_error(code: int, output: str, *needles: str) -> None:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "unexpected" not in output and "Traceback" not in output, output
    for needle in needles:
        assert needle in lines[0], output


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--weights-gib", "nan"], "--weights-gib nan is not a finite number"),
        (["--weights-gib", "inf"], "--weights-gib inf is not a finite number"),
        (["--params-b", "nan"], "--params-b nan is not a finite number"),
        (["--activation-reserve-gib", "nan"], "--activation-reserve-gib nan is not a finite number"),
        (["--activation-reserve-gib", "inf"], "--activation-reserve-gib inf is not a finite number"),
        (["--usd-per-hour", "nan"], "--usd-per-hour nan is not a finite number"),
        (["--usd-per-hour", "inf"], "--usd-per-hour inf is not a finite number"),
        (["--usd-per-hour", "-3"], "--usd-per-hour -3 must be ≥ 0"),
        (["--params-b", "-1"], "--params-b -1 must be > 0"),  # was reported as "weights -1.86 GiB"
        (["--params-b", "1", "--weights-gib", "2"], "not both"),  # the weights used to win silently
    ],
)
def test_bad_float_options_are_refused_by_the_option_name(tmp_path: Path, extra: list[str], needle: str) -> None:
    code, out = _run(["--model-config", _config(tmp_path), "--gpu-memory-gib", "80", *extra])
    _assert_one_error(code, out, needle)


def test_non_finite_numbers_are_refused_by_the_library_too() -> None:
    for kwargs in ({"weights_gib": float("nan")}, {"params_billion": float("nan")},
                   {"activation_reserve_gib": float("nan")}, {"usd_per_hour": float("inf")}):
        with pytest.raises(ForecastInputError, match="not a finite number"):
            estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=8192, **kwargs)  # type: ignore[arg-type]


def test_an_explicit_zero_gpu_memory_is_an_error_not_the_tables_figure(tmp_path: Path) -> None:
    code, out = _run(["--model-config", _config(tmp_path), "--gpu", "H100-80GB", "--gpu-memory-gib", "0"])
    _assert_one_error(code, out, "gpu memory 0")
    # A memory that is given wins over the table's, as before.
    code, out = _run(["--model-config", _config(tmp_path), "--gpu", "H100-80GB", "--gpu-memory-gib", "40",
                      "--weights-gib", "15", "--json"])
    assert code == 0, out
    assert json.loads(out)["kv_cache_gib"] == pytest.approx(40 * 0.9 - 15 - 1)


def test_block_sizes_vllm_refuses_are_refused(tmp_path: Path) -> None:
    code, out = _run(["--model-config", _config(tmp_path), "--gpu-memory-gib", "80", "--block-size", "100000000"])
    _assert_one_error(code, out, "block_size 100000000", "1, 8, 16, 32, 64, 128, 256")
    code, out = _run(["--model-config", _config(tmp_path), "--gpu-memory-gib", "80", "--block-size", "128",
                      "--weights-gib", "15", "--json"])
    assert code == 0 and json.loads(out)["kv_tokens"] == 458_752, out  # 56 GiB ÷ 128 KiB, in blocks of 128


@pytest.mark.parametrize("tp", ["3", "100000"])
def test_a_tensor_parallel_size_that_does_not_split_the_heads_is_refused(tmp_path: Path, tp: str) -> None:
    code, out = _run(["--model-config", _config(tmp_path), "--gpu-memory-gib", "80", "--tp", tp])
    _assert_one_error(code, out, f"tensor_parallel_size {tp} does not divide the model's 32 attention heads")


def test_kv_heads_that_cannot_be_split_or_replicated_evenly_are_refused() -> None:
    # 24 heads, 8 KV heads, tp 12: 12 divides 24, but 8 KV heads can neither be split over 12 ranks nor
    # replicated a whole number of times.
    cfg = {**LLAMA3_8B, "num_attention_heads": 24, "hidden_size": 3072}
    with pytest.raises(ForecastInputError, match="8 KV heads"):
        estimate_capacity(cfg, gpu_memory_gib=80, context_tokens=8192, weights_gib=15.0, tensor_parallel_size=12)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"num_hidden_layers": 1_000_000_000_000}, "'num_hidden_layers' is implausibly large"),
        ({"num_hidden_layers": True}, "'num_hidden_layers' is not an integer: True"),
        ({"sliding_window": -1}, "'sliding_window' must be positive, got -1"),
        ({"sliding_window": 0}, "'sliding_window' must be positive, got 0"),
        ({"sliding_window": "x"}, "'sliding_window' is not an integer: 'x'"),
        ({"layer_types": ["full_attention"]}, "'layer_types' has 1 entries for num_hidden_layers 32"),
        ({"layer_types": "full_attention"}, "'layer_types' must be a list"),
        ({"head_dim": 0}, "'head_dim' must be positive, got 0"),
        ({"hidden_size": 8}, "hidden_size 8 is smaller than num_attention_heads 32"),
    ],
)
def test_bad_model_config_fields_name_the_field(tmp_path: Path, changes: dict[str, Any], needle: str) -> None:
    code, out = _run(["--model-config", _config(tmp_path, **changes), "--gpu-memory-gib", "80"])
    _assert_one_error(code, out, needle)


def test_null_not_zero_means_unset_as_in_hugging_face_configs() -> None:
    """Transformers reads `sliding_window: null` as no window and derives `head_dim` only when it is null;
    0 is no such convention, so it is refused rather than read as "unset"."""
    shape = model_shape({**LLAMA3_8B, "sliding_window": None, "head_dim": None})
    assert shape.sliding_window is None and shape.head_dim == 128
    assert set(shape.layer_kinds) == {"full_attention"}
    for key in ("sliding_window", "head_dim"):
        with pytest.raises(ForecastInputError, match=f"'{key}' must be positive, got 0"):
            model_shape({**LLAMA3_8B, key: 0})


def _page(*series: str) -> str:
    head = "# HELP vllm:cache_config_info CacheConfig\n# TYPE vllm:cache_config_info gauge\n"
    return head + "".join(f"vllm:cache_config_info{{{labels}}} 1.0\n" for labels in series)


def test_an_implausible_block_count_on_a_page_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "metrics.txt"
    page.write_text(_page('num_gpu_blocks="1e30",block_size="16"'))
    code, out = _run(["--metrics-page", str(page)])
    _assert_one_error(code, out, "num_gpu_blocks=1e30 is implausibly large")
    with pytest.raises(ForecastInputError, match="implausibly large"):
        capacity_from_cache_config_info({"num_gpu_blocks": "2000000000", "block_size": "1000000"})


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ({"kv_cache_max_concurrency": "x"}, "kv_cache_max_concurrency='x' is not a number"),
        ({"kv_cache_memory_bytes": "nan"}, "kv_cache_memory_bytes='nan' is not a finite number"),
        ({"kv_cache_memory_bytes": "-1"}, "kv_cache_memory_bytes=-1 is not plausible"),
        ({"num_gpu_blocks": "inf"}, "num_gpu_blocks='inf' is not a finite number"),
    ],
)
def test_bad_optional_page_labels_are_named(labels: dict[str, str], needle: str) -> None:
    with pytest.raises(ForecastInputError, match=needle):
        capacity_from_cache_config_info({"num_gpu_blocks": "4096", "block_size": "16", **labels})


def test_a_page_whose_cache_config_series_disagree_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "metrics.txt"
    page.write_text(_page('engine="0",num_gpu_blocks="100",block_size="16"',
                          'engine="1",num_gpu_blocks="200",block_size="16"'))
    code, out = _run(["--metrics-page", str(page)])
    _assert_one_error(code, out, "2 vllm:cache_config_info series (engines 0, 1) that disagree",
                      "num_gpu_blocks 100 vs 200")
    # Engines that agree (data parallel on identical GPUs) describe the same capacity: any one serves.
    same = _page('engine="0",num_gpu_blocks="100",block_size="16"', 'engine="1",num_gpu_blocks="100",block_size="16"')
    assert parse_cache_config_info(same)["num_gpu_blocks"] == "100"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("foo: 1\n", "lacks the 'gpus' key"),
        ("gpus: []\n", "'gpus' must be a non-empty list"),
        ("gpus:\n  - {name: X1}\n", "gpus entry 1 lacks 'memory_gib'"),
        ("gpus:\n  - {name: X1, memory_gib: 80, usd_per_hour: cheap}\n", "usd_per_hour 'cheap' is not a number"),
        ("gpus:\n  - {name: X1, memory_gib: 80, usd_per_hour: -2}\n", "usd_per_hour -2 must be ≥ 0"),
        ("gpus:\n  - {name: X1, memory_gib: true}\n", "memory_gib True is not a number"),
        ("gpus:\n  - {name: X1, memory_gib: 80}\n  - {name: x1, memory_gib: 40}\n", "lists 'x1' twice"),
    ],
)
def test_gpu_table_problems_are_named(table: str, needle: str) -> None:
    with pytest.raises(ForecastInputError, match=needle):
        parse_gpu_table(table, "mine.yaml")


def test_gpu_table_without_gpus_key_through_the_cli(tmp_path: Path) -> None:
    table = tmp_path / "gpus.yaml"
    table.write_text("foo: 1\n")
    code, out = _run(["--model-config", _config(tmp_path), "--gpu", "H100-80GB", "--gpu-table", str(table)])
    _assert_one_error(code, out, f"GPU table {table} lacks the 'gpus' key")


def test_a_context_that_does_not_fit_once_says_vllm_would_refuse_it() -> None:
    """0 sequences is a real answer (the context is too long for the GPU), but a bare 0 reads like a bug."""
    cap = estimate_capacity(LLAMA3_8B, gpu_memory_gib=80, context_tokens=1_000_000, weights_gib=15.0)
    assert cap.max_concurrent_sequences == 0
    assert any("vLLM would refuse this max-model-len" in n for n in cap.notes)
