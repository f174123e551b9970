"""How many tokens and sequences one vLLM replica can hold in its KV cache.

Two sources, one answer shape (`Capacity`):

* offline, from a Hugging Face `config.json` plus the GPU and the vLLM settings — the arithmetic vLLM
  itself does after profiling (usable memory = GPU memory × `gpu_memory_utilization` − weights −
  activation reserve, then ÷ KV bytes per token);
* live, from a running server's `vllm:cache_config_info` labels (`num_gpu_blocks × block_size`),
  which is the ground truth the offline estimate should be checked against.

The math per layer kind, since this is where estimates usually go wrong:

* full attention: 2 (K and V) × KV heads × head_dim × dtype bytes per token per layer; with tensor
  parallelism each rank holds `max(1, kv_heads / tp)` heads (KV heads are replicated when fewer than tp);
* MLA (DeepSeek-V2/V3): one compressed latent of `kv_lora_rank + qk_rope_head_dim` values per token per
  layer, no separate K and V, replicated on every tensor-parallel rank;
* sliding window: such a layer holds at most `sliding_window` tokens of each sequence, so it changes the
  per-sequence cost (and so max concurrency) only when the context is longer than the window;
* linear-attention / Mamba layers (hybrid models) hold a fixed state per sequence and no per-token KV;
  that state is not counted here (it is small next to the KV of long contexts), and the result says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmobs._yaml import YamlError, load_yaml_text
from llmobs.forecast.errors import ForecastInputError

GIB = 1024**3

DTYPE_BYTES: dict[str, float] = {
    "float32": 4,
    "fp32": 4,
    "float16": 2,
    "fp16": 2,
    "half": 2,
    "bfloat16": 2,
    "bf16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "int8": 1,
    "int4": 0.5,
}

_FULL = "full_attention"
_SLIDING = "sliding_attention"
_NO_KV = "no_kv"  # Mamba / linear attention: constant state per sequence, not counted


@dataclass(frozen=True, slots=True)
class GPU:
    """One row of the GPU table (`gpus.yaml`)."""

    name: str
    memory_gib: float
    usd_per_hour: float | None = None


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the KV-cache math needs from a model config, already resolved per layer."""

    model_type: str
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    layer_kinds: tuple[str, ...]
    sliding_window: int | None
    mla_latent_dim: int | None  # kv_lora_rank + qk_rope_head_dim when the model uses MLA
    dtype: str
    estimated_params: float

    @property
    def is_mla(self) -> bool:
        """True for DeepSeek-style multi-head latent attention."""
        return self.mla_latent_dim is not None


@dataclass(frozen=True, slots=True)
class Capacity:
    """KV capacity of one replica, the figure the replica recommendation divides demand by."""

    source: str
    kv_bytes_per_token: int  # over all KV-holding layers, whole model (not per rank)
    kv_tokens: int  # tokens of full-attention KV that fit, rounded down to whole blocks
    block_size: int
    num_blocks: int
    context_tokens: int
    kv_bytes_per_sequence: int  # at context_tokens, whole model, after sliding-window capping
    max_concurrent_sequences: int
    kv_cache_gib: float  # usable KV memory over all ranks
    weights_gib: float
    tensor_parallel_size: int = 1
    gpu: str = ""
    usd_per_hour: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the CLI's `--json`)."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["kv_bytes_per_token_kib"] = self.kv_bytes_per_token / 1024
        if self.usd_per_hour is not None and self.max_concurrent_sequences > 0:
            d["usd_per_hour_per_sequence"] = self.usd_per_hour / self.max_concurrent_sequences
        return d


def parse_gpu_table(text: str, source: str = "gpus.yaml") -> dict[str, GPU]:
    """GPU table from YAML text (the bundled `gpus.yaml` shape); keys are lower-cased names."""
    try:
        raw = load_yaml_text(text, f"GPU table {source}")
        rows = raw["gpus"]
        table = {
            str(r["name"]).lower(): GPU(str(r["name"]), float(r["memory_gib"]), r.get("usd_per_hour"))
            for r in rows
        }
    except YamlError as exc:
        raise ForecastInputError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ForecastInputError(f"GPU table {source} is unreadable: {exc}") from exc
    for g in table.values():
        if not 0 < g.memory_gib <= 4096:
            raise ForecastInputError(f"GPU table {source}: {g.name} memory {g.memory_gib} GiB is not plausible")
    return table


def load_gpu_table(path: str | Path | None = None) -> dict[str, GPU]:
    """The bundled GPU table, or one from a file (read through `demand.read_input_text`, the I/O edge)."""
    from llmobs.forecast.demand import read_input_text, read_package_text

    if path is None:
        return parse_gpu_table(read_package_text("gpus.yaml"))
    return parse_gpu_table(read_input_text(path, "GPU table"), str(path))


def lookup_gpu(name: str, table: Mapping[str, GPU] | None = None) -> GPU:
    """Find a GPU by name (case-insensitive) or fail listing the known names."""
    table = table or load_gpu_table()
    gpu = table.get(name.lower())
    if gpu is None:
        known = ", ".join(g.name for g in table.values())
        raise ForecastInputError(f"unknown GPU {name!r}; known: {known} (or pass --gpu-table FILE)")
    return gpu


MAX_DIMENSION = 2**40
"""Largest size a config.json field may give (layers, heads, widths, vocabulary, experts): far above any
real model, far below what overflows the float arithmetic of the estimates (1e308 did)."""


def _int(cfg: Mapping[str, Any], key: str, default: int | None = None, *, allow_zero: bool = False) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise ForecastInputError(f"model config lacks {key!r}")
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ForecastInputError(f"model config {key!r} is not an integer: {value!r}") from exc
    if isinstance(value, float) and value != out:  # int() would truncate 0.5 to 0 and blame the 0
        raise ForecastInputError(f"model config {key!r} is not an integer: {value!r}")
    if out < 0 or (out == 0 and not allow_zero):
        raise ForecastInputError(f"model config {key!r} must be positive, got {out}")
    if out > MAX_DIMENSION:
        raise ForecastInputError(f"model config {key!r} is implausibly large: {value!r}")
    return out


def _layer_kinds(cfg: Mapping[str, Any], num_layers: int) -> tuple[tuple[str, ...], int | None]:
    """Resolve which layers hold full KV, windowed KV or none, from the several config spellings."""
    window = cfg.get("sliding_window")
    if cfg.get("use_sliding_window") is False:  # Qwen2 ships a window it does not use
        window = None
    window = int(window) if window else None

    layer_types = cfg.get("layer_types")
    block_types = cfg.get("layers_block_type")  # Jamba-style hybrids
    if isinstance(layer_types, list) and len(layer_types) == num_layers:
        kinds = []
        for t in layer_types:
            t = str(t)
            if t == _SLIDING or "sliding" in t:
                kinds.append(_SLIDING if window else _FULL)
            elif t in ("full_attention", "attention", "global", "full"):
                kinds.append(_FULL)
            else:  # "linear_attention", "mamba", "conv", ...
                kinds.append(_NO_KV)
        return tuple(kinds), window
    if isinstance(block_types, list) and len(block_types) == num_layers:
        return tuple(_FULL if str(t) == "attention" else _NO_KV for t in block_types), None
    if window is None:
        return (_FULL,) * num_layers, None
    pattern = cfg.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 1:  # Gemma 3: every pattern-th layer is global
        return tuple(_FULL if (i + 1) % pattern == 0 else _SLIDING for i in range(num_layers)), window
    if str(cfg.get("model_type", "")).startswith("gemma2"):  # Gemma 2: even layers are local
        return tuple(_SLIDING if i % 2 == 0 else _FULL for i in range(num_layers)), window
    max_window_layers = cfg.get("max_window_layers")
    if isinstance(max_window_layers, int) and 0 < max_window_layers < num_layers:
        # Qwen2-style with sliding enabled: the first max_window_layers use full attention.
        return tuple(_FULL if i < max_window_layers else _SLIDING for i in range(num_layers)), window
    return (_SLIDING,) * num_layers, window  # Mistral-7B-v0.1: every layer windowed


def _estimate_params(cfg: Mapping[str, Any], shape_layers: int, heads: int, kv_heads: int, hd: int) -> float:
    """Rough parameter count (embeddings + attention + MLP/MoE), used only when weights are not given."""
    def count(key: str, default: int) -> int:  # 0 or falsy in a config.json means "not used"
        return _int(cfg, key, default, allow_zero=True) if cfg.get(key) else default

    hidden = count("hidden_size", heads * hd)
    vocab = count("vocab_size", 0)
    inter = count("intermediate_size", 4 * hidden)
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    if cfg.get("kv_lora_rank"):
        q_lora = count("q_lora_rank", 0)
        nope, rope = count("qk_nope_head_dim", 128), count("qk_rope_head_dim", 64)
        v_hd, kv_lora = count("v_head_dim", 128), count("kv_lora_rank", 0)
        q = hidden * q_lora + q_lora * heads * (nope + rope) if q_lora else hidden * heads * (nope + rope)
        attn = q + hidden * (kv_lora + rope) + kv_lora * heads * (nope + v_hd) + heads * v_hd * hidden
    else:
        attn = hidden * heads * hd * 2 + hidden * kv_heads * hd * 2
    experts = count("n_routed_experts", 0) or count("num_local_experts", 0)
    if experts:
        moe_inter = count("moe_intermediate_size", inter)
        shared = count("n_shared_experts", 0)
        dense_layers = count("first_k_dense_replace", 0)
        moe = 3 * hidden * moe_inter * (experts + shared) + hidden * experts
        mlp_total = dense_layers * 3 * hidden * inter + (shape_layers - dense_layers) * moe
    else:
        mlp_total = shape_layers * 3 * hidden * inter
    return float(embed + shape_layers * attn + mlp_total)


def model_shape(config: Mapping[str, Any]) -> ModelShape:
    """Read the fields the KV math needs from a Hugging Face `config.json` dict.

    Multimodal configs nest the language model under `text_config`; that part is used.
    """
    cfg: Mapping[str, Any] = config
    if isinstance(config.get("text_config"), Mapping) and "num_hidden_layers" not in config:
        cfg = {**config["text_config"], "torch_dtype": config.get("torch_dtype")}
    layers = _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    kv_heads = _int(cfg, "num_key_value_heads", heads)
    if heads % kv_heads:
        raise ForecastInputError(
            f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        )
    head_dim = _int(cfg, "head_dim") if cfg.get("head_dim") else _int(cfg, "hidden_size") // heads
    mla = None
    if cfg.get("kv_lora_rank"):
        mla = _int(cfg, "kv_lora_rank") + _int(cfg, "qk_rope_head_dim", 64)
    kinds, window = _layer_kinds(cfg, layers)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    return ModelShape(
        model_type=str(cfg.get("model_type", "")),
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        layer_kinds=kinds,
        sliding_window=window if _SLIDING in kinds else None,
        mla_latent_dim=mla,
        dtype=dtype,
        estimated_params=_estimate_params(cfg, layers, heads, kv_heads, head_dim),
    )


def parse_model_config(text: str, source: str = "model config") -> dict[str, Any]:
    """A `config.json` text as a dict, failing with the source and the reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ForecastInputError(f"{source} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise ForecastInputError(f"{source} is not a JSON object")
    return data


def load_model_config(path: str | Path) -> dict[str, Any]:
    """Read and parse a `config.json` (the read goes through `demand.read_input_text`, the I/O edge)."""
    from llmobs.forecast.demand import read_input_text

    return parse_model_config(read_input_text(path, "model config"), f"model config {path}")


def dtype_bytes(name: str) -> float:
    """Bytes per element for a dtype name as vLLM or HF spell it."""
    key = name.lower().removeprefix("torch.")
    if key not in DTYPE_BYTES:
        raise ForecastInputError(f"unknown dtype {name!r}; known: {', '.join(sorted(DTYPE_BYTES))}")
    return DTYPE_BYTES[key]


def kv_bytes_per_token_per_layer(shape: ModelShape, kv_dtype_bytes: float, tp: int = 1) -> float:
    """KV bytes one token costs in one KV-holding layer on one tensor-parallel rank."""
    if shape.is_mla:
        assert shape.mla_latent_dim is not None
        return shape.mla_latent_dim * kv_dtype_bytes  # latent replicated on every rank
    heads_per_rank = max(1, shape.num_kv_heads // tp) if shape.num_kv_heads >= tp else 1
    return 2 * heads_per_rank * shape.head_dim * kv_dtype_bytes


def estimate_capacity(
    config: Mapping[str, Any],
    *,
    gpu_memory_gib: float,
    context_tokens: int,
    gpu_memory_utilization: float = 0.9,
    kv_cache_dtype: str = "auto",
    weights_gib: float | None = None,
    params_billion: float | None = None,
    weight_dtype: str | None = None,
    tensor_parallel_size: int = 1,
    block_size: int = 16,
    activation_reserve_gib: float = 1.0,
    gpu_name: str = "",
    usd_per_hour: float | None = None,
) -> Capacity:
    """KV tokens and max concurrent sequences of one replica (tp GPUs) from a model config.

    `activation_reserve_gib` stands for what vLLM's profiling run finds for activations and CUDA
    graphs per GPU (typically 0.5–3 GiB); the live `vllm:cache_config_info` is the exact figure.
    """
    if not 0 < gpu_memory_gib <= 4096:
        raise ForecastInputError(f"gpu memory {gpu_memory_gib} GiB is not plausible (0 < GiB ≤ 4096)")
    if not 0 < gpu_memory_utilization <= 1:
        raise ForecastInputError(f"gpu_memory_utilization {gpu_memory_utilization} must be in (0, 1]")
    if not 0 < context_tokens <= 100_000_000:
        raise ForecastInputError(f"context {context_tokens} tokens is not plausible (1 … 100M)")
    if tensor_parallel_size < 1 or block_size < 1:
        raise ForecastInputError("tensor_parallel_size and block_size must be ≥ 1")
    if activation_reserve_gib < 0:
        raise ForecastInputError(f"activation reserve {activation_reserve_gib} GiB must be ≥ 0")
    shape = model_shape(config)
    notes: list[str] = []
    w_dtype = weight_dtype or shape.dtype
    kv_dtype = shape.dtype if kv_cache_dtype == "auto" else kv_cache_dtype
    kv_b = dtype_bytes(kv_dtype)
    if weights_gib is None:
        params = params_billion * 1e9 if params_billion is not None else shape.estimated_params
        if params_billion is None:
            notes.append(f"weights estimated from config: {params / 1e9:.2f} B params × {w_dtype}")
        weights_gib = params * dtype_bytes(w_dtype) / GIB
    if weights_gib < 0:
        raise ForecastInputError(f"weights {weights_gib} GiB must be ≥ 0")
    tp = tensor_parallel_size
    usable_per_rank = gpu_memory_gib * gpu_memory_utilization - weights_gib / tp - activation_reserve_gib
    if usable_per_rank <= 0:
        raise ForecastInputError(
            f"weights ({weights_gib / tp:.1f} GiB per GPU) + activation reserve "
            f"({activation_reserve_gib} GiB) "
            f"exceed usable GPU memory ({gpu_memory_gib * gpu_memory_utilization:.1f} GiB): "
            "raise tensor parallelism, memory or utilization"
        )
    per_layer_rank = kv_bytes_per_token_per_layer(shape, kv_b, tp)
    kv_layers = [k for k in shape.layer_kinds if k != _NO_KV]
    if not kv_layers:
        raise ForecastInputError("model has no attention layers holding KV (attention-free)")
    if len(kv_layers) < shape.num_layers:
        notes.append(
            f"{shape.num_layers - len(kv_layers)} linear-attention/Mamba layers: "
            "their constant per-sequence state is not counted"
        )
    if shape.is_mla:
        notes.append(f"MLA: {shape.mla_latent_dim} latent values per token per layer, replicated per TP rank")
    if not shape.is_mla and shape.num_kv_heads < tp:
        notes.append(f"{shape.num_kv_heads} KV heads < tp {tp}: heads replicated, 1 per rank")
    bytes_per_token_rank = per_layer_rank * len(kv_layers)
    usable_bytes_rank = usable_per_rank * GIB
    num_blocks = int(usable_bytes_rank // (bytes_per_token_rank * block_size))
    kv_tokens = num_blocks * block_size

    # Per-sequence cost: a windowed layer keeps at most the window (+ one block in flight).
    blocks_full = math.ceil(context_tokens / block_size)
    held_tokens = 0
    for kind in kv_layers:
        if kind == _SLIDING and shape.sliding_window is not None:
            held = min(blocks_full, math.ceil(shape.sliding_window / block_size) + 1)
        else:
            held = blocks_full
        held_tokens += held * block_size  # token-layers this sequence occupies
    if shape.sliding_window is not None and context_tokens > shape.sliding_window:
        notes.append(
            f"sliding window {shape.sliding_window} on {kv_layers.count(_SLIDING)}/{len(kv_layers)} layers "
            "caps their KV per sequence"
        )
    max_seqs = int(usable_bytes_rank // (held_tokens * per_layer_rank))
    per_layer_model = kv_bytes_per_token_per_layer(shape, kv_b, 1)  # whole model, not per rank
    return Capacity(
        source="model-config",
        kv_bytes_per_token=round(per_layer_model * len(kv_layers)),
        kv_tokens=kv_tokens,
        block_size=block_size,
        num_blocks=num_blocks,
        context_tokens=context_tokens,
        kv_bytes_per_sequence=round(per_layer_model * held_tokens),
        max_concurrent_sequences=max_seqs,
        kv_cache_gib=usable_per_rank * tp,
        weights_gib=weights_gib,
        tensor_parallel_size=tp,
        gpu=gpu_name,
        usd_per_hour=None if usd_per_hour is None else usd_per_hour * tp,
        notes=tuple(notes),
    )


def _label_int(labels: Mapping[str, str], key: str) -> int:
    raw = labels.get(key)
    if raw is None or raw in ("", "None"):
        raise ForecastInputError(f"vllm:cache_config_info lacks a usable {key!r} label (got {raw!r})")
    try:
        value = int(float(raw))
    except (ValueError, OverflowError) as exc:
        raise ForecastInputError(f"vllm:cache_config_info {key}={raw!r} is not a number") from exc
    if value <= 0:
        raise ForecastInputError(f"vllm:cache_config_info {key}={value} must be positive")
    return value


def capacity_from_cache_config_info(
    labels: Mapping[str, str], context_tokens: int | None = None
) -> Capacity:
    """Capacity of a live server from its `vllm:cache_config_info` labels.

    KV tokens = `num_gpu_blocks × block_size` (vLLM's own allocation, after profiling). Max concurrent
    sequences at `context_tokens` = blocks ÷ blocks per sequence; without a context, vLLM's own
    `kv_cache_max_concurrency` label is used when present (it is computed at max-model-len).
    """
    blocks = _label_int(labels, "num_gpu_blocks")
    block_size = _label_int(labels, "block_size")
    tokens = blocks * block_size
    notes: list[str] = []
    mem_raw = labels.get("kv_cache_memory_bytes")
    kv_gib = float(mem_raw) / GIB if mem_raw not in (None, "", "None") else float("nan")
    per_token = round(float(mem_raw) / tokens) if mem_raw not in (None, "", "None") else 0
    if context_tokens is not None:
        if context_tokens <= 0:
            raise ForecastInputError(f"context {context_tokens} tokens must be positive")
        max_seqs = blocks // math.ceil(context_tokens / block_size)
        ctx = context_tokens
    elif labels.get("kv_cache_max_concurrency") not in (None, "", "None"):
        max_seqs = int(float(labels["kv_cache_max_concurrency"]))
        ctx = 0
        notes.append("max concurrency from vLLM's kv_cache_max_concurrency (at max-model-len)")
    else:
        max_seqs, ctx = 0, 0
        notes.append("no context given and no kv_cache_max_concurrency label: concurrency unknown")
    return Capacity(
        source="vllm:cache_config_info",
        kv_bytes_per_token=per_token,
        kv_tokens=tokens,
        block_size=block_size,
        num_blocks=blocks,
        context_tokens=ctx,
        kv_bytes_per_sequence=per_token * ctx,
        max_concurrent_sequences=max_seqs,
        kv_cache_gib=kv_gib,
        weights_gib=float("nan"),
        notes=tuple(notes),
    )


def parse_cache_config_info(page: str) -> dict[str, str]:
    """Labels of the first `vllm:cache_config_info` sample on a `/metrics` page (text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(page):
        if family.name == "vllm:cache_config_info":
            for sample in family.samples:
                return dict(sample.labels)
    raise ForecastInputError("page has no vllm:cache_config_info series")
