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


_GPU_TABLE_SHAPE = "gpus: [{name: H100-80GB, memory_gib: 80, usd_per_hour: 4.5}, ...]"


def _table_number(where: str, key: str, value: Any) -> float:
    """A number from a GPU-table row; YAML's `true` and `.nan` are refused here, not multiplied later."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ForecastInputError(f"{where}: {key} {value!r} is not a number")
    if not math.isfinite(value):
        raise ForecastInputError(f"{where}: {key} {value!r} is not a finite number")
    return float(value)


def parse_gpu_table(text: str, source: str = "gpus.yaml") -> dict[str, GPU]:
    """GPU table from YAML text (the bundled `gpus.yaml` shape); keys are lower-cased names.

    Each row is checked by hand rather than indexed in a try block, so a missing key is reported as
    missing (a bare KeyError printed only `'gpus'`) and a string price cannot reach `price × tp`.
    """
    try:
        raw = load_yaml_text(text, f"GPU table {source}")
    except YamlError as exc:
        raise ForecastInputError(str(exc)) from None
    if not isinstance(raw, Mapping) or "gpus" not in raw:
        raise ForecastInputError(f"GPU table {source} lacks the 'gpus' key (expected {_GPU_TABLE_SHAPE})")
    rows = raw["gpus"]
    if not isinstance(rows, list) or not rows:
        raise ForecastInputError(f"GPU table {source}: 'gpus' must be a non-empty list (expected {_GPU_TABLE_SHAPE})")
    table: dict[str, GPU] = {}
    for i, row in enumerate(rows, 1):
        where = f"GPU table {source} gpus entry {i}"
        if not isinstance(row, Mapping):
            raise ForecastInputError(f"{where} is not a mapping (expected {_GPU_TABLE_SHAPE})")
        missing = [k for k in ("name", "memory_gib") if row.get(k) is None]
        if missing:
            raise ForecastInputError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
        name = str(row["name"])
        memory = _table_number(where, "memory_gib", row["memory_gib"])
        if not 0 < memory <= 4096:
            raise ForecastInputError(f"GPU table {source}: {name} memory {memory:g} GiB is not plausible")
        price = row.get("usd_per_hour")
        if price is not None:
            price = _table_number(where, "usd_per_hour", price)
            if price < 0:
                raise ForecastInputError(f"GPU table {source}: {name} usd_per_hour {price:g} must be ≥ 0")
        if name.lower() in table:  # names match case-insensitively, so a second row would hide the first
            raise ForecastInputError(f"GPU table {source} lists {name!r} twice")
        table[name.lower()] = GPU(name, memory, price)
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
"""Largest size a config.json field may give (heads, widths, vocabulary, experts): far above any
real model, far below what overflows the float arithmetic of the estimates (1e308 did)."""

MAX_LAYERS = 10_000
"""Most `num_hidden_layers` accepted. No released model has more than a few hundred layers; the per-layer
kinds are a tuple of this length, so 1e12 layers was a MemoryError rather than an error naming the field."""

VLLM_BLOCK_SIZES = (1, 8, 16, 32, 64, 128, 256)
"""The `--block-size` values vLLM accepts (`BlockSize` in vllm/config/cache.py); it refuses any other at
startup, and an estimate for one (1e8 gave 0 blocks) describes no server that can run."""

MAX_CONTEXT_TOKENS = 100_000_000
"""Longest context accepted: far above any model's max-model-len (a few million tokens at most)."""


def _int(cfg: Mapping[str, Any], key: str, default: int | None = None, *, allow_zero: bool = False,
         maximum: int = MAX_DIMENSION) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise ForecastInputError(f"model config lacks {key!r}")
    if isinstance(value, bool):  # JSON true is an int to Python: `"num_hidden_layers": true` was 1 layer
        raise ForecastInputError(f"model config {key!r} is not an integer: {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ForecastInputError(f"model config {key!r} is not an integer: {value!r}") from exc
    if isinstance(value, float) and value != out:  # int() would truncate 0.5 to 0 and blame the 0
        raise ForecastInputError(f"model config {key!r} is not an integer: {value!r}")
    if out < 0 or (out == 0 and not allow_zero):
        raise ForecastInputError(f"model config {key!r} must be positive, got {out}")
    if out > maximum:
        raise ForecastInputError(f"model config {key!r} is implausibly large: {value!r} (limit {maximum:,})")
    return out


def _type_list(cfg: Mapping[str, Any], key: str, num_layers: int) -> list[Any] | None:
    """A per-layer list (`layer_types`, `layers_block_type`), or None when absent.

    Transformers itself requires one entry per layer; a list of another length (or a string) used to be
    skipped silently and every layer taken as full attention, which overstates a hybrid's KV per token.
    """
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ForecastInputError(f"model config {key!r} must be a list of per-layer types, got {value!r:.60}")
    if len(value) != num_layers:
        raise ForecastInputError(
            f"model config {key!r} has {len(value)} entries for num_hidden_layers {num_layers} (one per layer)"
        )
    return value


def _layer_kinds(cfg: Mapping[str, Any], num_layers: int) -> tuple[tuple[str, ...], int | None]:
    """Resolve which layers hold full KV, windowed KV or none, from the several config spellings."""
    # Hugging Face writes "no sliding window" as null (Mistral-7B-v0.2+, Llama); 0 or -1 is no convention of
    # theirs, and -1 used to cap every layer's KV at -1 tokens (28,694 sequences of 8,192 tokens on 80 GiB).
    window: int | None = None
    if cfg.get("use_sliding_window") is not False:  # Qwen2 ships a window it does not use
        window = _int(cfg, "sliding_window") if cfg.get("sliding_window") is not None else None

    layer_types = _type_list(cfg, "layer_types", num_layers)
    block_types = _type_list(cfg, "layers_block_type", num_layers)  # Jamba-style hybrids
    if layer_types is not None:
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
    if block_types is not None:
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
    layers = _int(cfg, "num_hidden_layers", maximum=MAX_LAYERS)
    heads = _int(cfg, "num_attention_heads")
    kv_heads = _int(cfg, "num_key_value_heads", heads)
    if heads % kv_heads:
        raise ForecastInputError(
            f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        )
    # Transformers derives head_dim only when it is null (`head_dim if head_dim is not None else ...`), so 0
    # is refused like -128 rather than quietly replaced by the derived value.
    if cfg.get("head_dim") is not None:
        head_dim = _int(cfg, "head_dim")
    else:
        head_dim = _int(cfg, "hidden_size") // heads
        if head_dim == 0:  # 0 bytes of KV per token would divide by zero below
            raise ForecastInputError(
                f"model config hidden_size {cfg['hidden_size']} is smaller than num_attention_heads {heads}"
            )
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


def _require_finite(**values: float | None) -> None:
    """NaN slips through every `< 0` and `<= 0` check (all comparisons with NaN are false) and became an
    `int(NaN)` ValueError deep in the arithmetic; inf gives inf or 0 results. Both are refused up front."""
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
            raise ForecastInputError(f"{name} {value} is not a finite number")


def _check_context(context_tokens: int) -> None:
    if not 0 < context_tokens <= MAX_CONTEXT_TOKENS:
        raise ForecastInputError(f"context {context_tokens} tokens is not plausible (1 … 100M)")


def _check_tensor_parallel(shape: ModelShape, tp: int) -> None:
    """vLLM's own checks: it splits attention heads evenly over the tensor-parallel ranks, and KV heads too
    (or replicates each on a whole number of ranks when there are fewer KV heads than ranks). A size it
    refuses used to give an estimate anyway (tp 3 with 32 heads: 264 sequences; tp 100000: 7 PiB of KV)."""
    if shape.num_attention_heads % tp:
        raise ForecastInputError(
            f"tensor_parallel_size {tp} does not divide the model's {shape.num_attention_heads} attention heads "
            "(vLLM refuses it)"
        )
    kv = shape.num_kv_heads
    if not shape.is_mla and (kv % tp if kv >= tp else tp % kv):
        raise ForecastInputError(
            f"tensor_parallel_size {tp} neither divides nor is a multiple of the model's {kv} KV heads "
            "(vLLM refuses it)"
        )


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
    _require_finite(gpu_memory_gib=gpu_memory_gib, gpu_memory_utilization=gpu_memory_utilization,
                    weights_gib=weights_gib, params_billion=params_billion,
                    activation_reserve_gib=activation_reserve_gib, usd_per_hour=usd_per_hour)
    if not 0 < gpu_memory_gib <= 4096:
        raise ForecastInputError(f"gpu memory {gpu_memory_gib} GiB is not plausible (0 < GiB ≤ 4096)")
    if not 0 < gpu_memory_utilization <= 1:
        raise ForecastInputError(f"gpu_memory_utilization {gpu_memory_utilization} must be in (0, 1]")
    _check_context(context_tokens)
    if tensor_parallel_size < 1:
        raise ForecastInputError(f"tensor_parallel_size {tensor_parallel_size} must be ≥ 1")
    if block_size not in VLLM_BLOCK_SIZES:
        raise ForecastInputError(
            f"block_size {block_size} is not one vLLM accepts ({', '.join(map(str, VLLM_BLOCK_SIZES))})"
        )
    if activation_reserve_gib < 0:
        raise ForecastInputError(f"activation reserve {activation_reserve_gib} GiB must be ≥ 0")
    if weights_gib is not None and params_billion is not None:  # weights used to win without a word
        raise ForecastInputError("give weights_gib or params_billion, not both")
    if weights_gib is not None and weights_gib < 0:
        raise ForecastInputError(f"weights_gib {weights_gib} must be ≥ 0")
    if params_billion is not None and params_billion <= 0:  # named as given, not as the weights it implies
        raise ForecastInputError(f"params_billion {params_billion} must be > 0")
    if usd_per_hour is not None and usd_per_hour < 0:
        raise ForecastInputError(f"usd_per_hour {usd_per_hour} must be ≥ 0")
    shape = model_shape(config)
    _check_tensor_parallel(shape, tensor_parallel_size)
    notes: list[str] = []
    w_dtype = weight_dtype or shape.dtype
    kv_dtype = shape.dtype if kv_cache_dtype == "auto" else kv_cache_dtype
    kv_b = dtype_bytes(kv_dtype)
    if weights_gib is None:
        params = params_billion * 1e9 if params_billion is not None else shape.estimated_params
        if params_billion is None:
            notes.append(f"weights estimated from config: {params / 1e9:.2f} B params × {w_dtype}")
        weights_gib = params * dtype_bytes(w_dtype) / GIB
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
    if max_seqs == 0:  # vLLM refuses to start in this case; say so rather than leave a bare 0
        notes.append(
            f"one sequence of {context_tokens:,} tokens needs {held_tokens * per_layer_rank / GIB:.2f} GiB of KV "
            f"per GPU, more than the {usable_per_rank:.2f} GiB left: vLLM would refuse this max-model-len"
        )
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


MAX_PAGE_BLOCKS = 2**31 - 1
"""Most `num_gpu_blocks` a page may report: vLLM's block tables hold block ids as int32, so it cannot address
more (real pages show thousands to a few million). `num_gpu_blocks="1e30"` used to give 1.28e32 KV tokens."""

MAX_PAGE_BLOCK_SIZE = 2**20
"""Largest `block_size` a page may report. vLLM's own choices stop at 256, but for hybrid (attention + Mamba)
models it raises the attention block size until a page matches a Mamba state page — hundreds to thousands
of tokens; a million tokens per block is more than any context and leaves room for those."""

MAX_PAGE_KV_TOKENS = 2**37
"""Most KV tokens one engine may report: 4 TiB (the most GPU memory accepted) ÷ 32 bytes, the KV of one token
in a single layer with one 16-wide head at one byte, is far more than any real model could hold."""

MAX_KV_CACHE_BYTES = 4096 * GIB
"""Most `kv_cache_memory_bytes` (per GPU) accepted: the GPU-memory bound used everywhere else here."""


def _label_number(labels: Mapping[str, str], key: str) -> float | None:
    """A numeric label as a finite float, None when absent ("" and "None" are how vLLM writes unset)."""
    raw = labels.get(key)
    if raw is None or raw in ("", "None"):
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ForecastInputError(f"vllm:cache_config_info {key}={raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise ForecastInputError(f"vllm:cache_config_info {key}={raw!r} is not a finite number")
    return value


def _label_int(labels: Mapping[str, str], key: str, maximum: int) -> int:
    value = _label_number(labels, key)
    if value is None:
        raise ForecastInputError(f"vllm:cache_config_info lacks a usable {key!r} label (got {labels.get(key)!r})")
    if value <= 0:
        raise ForecastInputError(f"vllm:cache_config_info {key}={labels[key]} must be positive")
    if value != int(value):  # a count of blocks or tokens; int() would truncate 0.5 to 0
        raise ForecastInputError(f"vllm:cache_config_info {key}={labels[key]} is not a whole number")
    if value > maximum:
        raise ForecastInputError(
            f"vllm:cache_config_info {key}={labels[key]} is implausibly large (limit {maximum:,})"
        )
    return int(value)


def capacity_from_cache_config_info(
    labels: Mapping[str, str], context_tokens: int | None = None
) -> Capacity:
    """Capacity of a live server from its `vllm:cache_config_info` labels.

    KV tokens = `num_gpu_blocks × block_size` (vLLM's own allocation, after profiling). Max concurrent
    sequences at `context_tokens` = blocks ÷ blocks per sequence; without a context, vLLM's own
    `kv_cache_max_concurrency` label is used when present (it is computed at max-model-len).
    """
    blocks = _label_int(labels, "num_gpu_blocks", MAX_PAGE_BLOCKS)
    block_size = _label_int(labels, "block_size", MAX_PAGE_BLOCK_SIZE)
    tokens = blocks * block_size
    if tokens > MAX_PAGE_KV_TOKENS:
        raise ForecastInputError(
            f"vllm:cache_config_info num_gpu_blocks {blocks:,} × block_size {block_size:,} = {tokens:,} KV tokens "
            f"is implausibly large (limit {MAX_PAGE_KV_TOKENS:,})"
        )
    notes: list[str] = []
    mem = _label_number(labels, "kv_cache_memory_bytes")
    if mem is not None and not 0 < mem <= MAX_KV_CACHE_BYTES:
        raise ForecastInputError(
            f"vllm:cache_config_info kv_cache_memory_bytes={labels['kv_cache_memory_bytes']} is not plausible "
            "(0 < bytes ≤ 4 TiB)"
        )
    kv_gib = mem / GIB if mem is not None else float("nan")
    per_token = round(mem / tokens) if mem is not None else 0
    concurrency = _label_number(labels, "kv_cache_max_concurrency")
    if concurrency is not None and concurrency < 0:
        raise ForecastInputError(
            f"vllm:cache_config_info kv_cache_max_concurrency={labels['kv_cache_max_concurrency']} must be ≥ 0"
        )
    if context_tokens is not None:
        _check_context(context_tokens)
        max_seqs = blocks // math.ceil(context_tokens / block_size)
        ctx = context_tokens
    elif concurrency is not None:
        max_seqs = int(concurrency)
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


_CAPACITY_LABELS = ("num_gpu_blocks", "block_size", "kv_cache_memory_bytes", "kv_cache_max_concurrency")
"""The `vllm:cache_config_info` labels the capacity is computed from."""


def parse_cache_config_info(page: str) -> dict[str, str]:
    """Labels of the `vllm:cache_config_info` sample on a `/metrics` page (text format).

    A page can carry several (one per engine of a data-parallel server, or two pages pasted together).
    When they agree on the labels the capacity comes from, any one serves; when they disagree, picking
    the first would silently describe one engine as the whole page, so it is refused.
    """
    from prometheus_client.parser import text_string_to_metric_families

    samples = [
        dict(sample.labels)
        for family in text_string_to_metric_families(page)
        if family.name == "vllm:cache_config_info"
        for sample in family.samples
    ]
    if not samples:
        raise ForecastInputError("page has no vllm:cache_config_info series")
    first = samples[0]
    for other in samples[1:]:
        differ = [f"{k} {first.get(k)} vs {other.get(k)}" for k in _CAPACITY_LABELS if first.get(k) != other.get(k)]
        if differ:
            engines = [x["engine"] for x in samples if "engine" in x]
            which = f" (engines {', '.join(engines)})" if len(engines) == len(samples) else ""
            raise ForecastInputError(
                f"page has {len(samples)} vllm:cache_config_info series{which} that disagree "
                f"({', '.join(differ)}): give the page of one server whose engines agree"
            )
    return first
