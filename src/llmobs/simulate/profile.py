"""How long one vLLM engine step takes: a linear profile whose coefficients are data, with their source.

Why linear in these four terms: a step reads the weights once (fixed), runs the dense layers over every
scheduled token (prompt tokens and one token per decoding sequence) and reads the KV of every context token
the attention looks at. That is the roofline shape of a transformer step; the coefficients come from a
published figure or from `scripts/calibrate_profile.py` fitted on a real run.

Two optional terms (0 in a GPU roofline profile) come from fitting real servers: `prefill_step_s`, what a
step that runs a prompt chunk costs beyond a decode step (on vLLM's CPU backend, input preparation and the
chunk's attention: 0-5 ms in fits on a 2-core host), and `request_overhead_s`, the API server's time on a
request outside the engine (HTTP, tokenizing, the trip to the engine core and the first token's way back),
which a client counts in its TTFT. It is the same for every request, so the simulator adds it to each
request's arrival at its replica: queueing is unchanged, and every TTFT and E2E includes it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from llmobs._yaml import YamlError, load_yaml_text
from llmobs.forecast.capacity import Capacity, estimate_capacity, lookup_gpu
from llmobs.forecast.errors import ForecastInputError
from llmobs.simulate.errors import SimulationInputError

BUNDLED = ("llama-3.1-8b-h100", "vllm-cpu-tiny")
MAX_GPUS_PER_REPLICA = 1024  # 128 nodes of 8: beyond any one vLLM deployment, and GPU-hours multiply by it
_COEFFICIENTS = ("fixed_s", "prefill_token_s", "decode_seq_s", "kv_token_s", "prefill_step_s",
                 "request_overhead_s")


@dataclass(frozen=True, slots=True)
class StepProfile:
    """Step time = fixed_s + prefill_token_s·prefill + decode_seq_s·decoding + kv_token_s·context tokens
    (+ prefill_step_s when the step runs a prompt chunk); each request also spends request_overhead_s in the
    API server."""

    name: str
    fixed_s: float
    prefill_token_s: float
    decode_seq_s: float
    kv_token_s: float = 0.0
    prefill_step_s: float = 0.0
    request_overhead_s: float = 0.0
    gpu: str = ""
    gpus_per_replica: int = 1
    source: str = ""
    model_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in _COEFFICIENTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer) \
                    or not (math.isfinite(value) and 0 <= value < 60):
                shown = repr(value) if isinstance(value, str) else str(value)  # a number without its numpy type
                raise SimulationInputError(f"profile {self.name}: {key} {shown} must be seconds in [0, 60)")
            object.__setattr__(self, key, float(value))  # numpy floats too, as the plain floats the engine binds
        if self.fixed_s + self.prefill_token_s + self.decode_seq_s <= 0:
            raise SimulationInputError(f"profile {self.name}: a step must take time (all coefficients are 0)")
        if isinstance(self.gpus_per_replica, bool) or not isinstance(self.gpus_per_replica, int | np.integer):
            raise SimulationInputError(f"profile {self.name}: gpus_per_replica must be a whole number, not "
                                       f"{self.gpus_per_replica}")
        object.__setattr__(self, "gpus_per_replica", int(self.gpus_per_replica))
        if not 1 <= self.gpus_per_replica <= MAX_GPUS_PER_REPLICA:
            raise SimulationInputError(f"profile {self.name}: gpus_per_replica {self.gpus_per_replica} must be in "
                                       f"[1, {MAX_GPUS_PER_REPLICA}] (GPU-hours are counted per GPU)")

    def step_seconds(self, prefill_tokens: int, decoding: int, context_tokens: int) -> float:
        """Duration of one step with this many prompt tokens, decoding sequences and KV tokens read."""
        seconds = (self.fixed_s + self.prefill_token_s * prefill_tokens + self.decode_seq_s * decoding
                   + self.kv_token_s * context_tokens)
        return seconds + self.prefill_step_s if prefill_tokens > 0 else seconds

    def capacity(self, *, context_tokens: int, gpu_memory_utilization: float = 0.9,
                 block_size: int = 16) -> Capacity:
        """KV blocks of one replica as `llmobs forecast capacity` computes them from the profile's model
        config and GPU (the same arithmetic, not a second estimate)."""
        if not self.model_config or not self.gpu:
            raise SimulationInputError(
                f"profile {self.name}: needs model_config and gpu to size the KV cache (a profile without them, "
                "such as the bundled CPU one the fidelity test fits, describes one server's steps, not a GPU fleet "
                "to simulate)")
        try:
            gpu = lookup_gpu(self.gpu)
            return estimate_capacity(self.model_config, gpu_memory_gib=gpu.memory_gib,
                                     context_tokens=context_tokens, gpu_memory_utilization=gpu_memory_utilization,
                                     tensor_parallel_size=self.gpus_per_replica, block_size=block_size,
                                     gpu_name=gpu.name, usd_per_hour=gpu.usd_per_hour)
        except ForecastInputError as exc:
            raise SimulationInputError(f"profile {self.name}: {exc}") from None


def parse_profile(text: str, where: str = "profile") -> StepProfile:
    """A profile from YAML text; every problem is one `SimulationInputError` naming `where`."""
    try:
        raw = load_yaml_text(text, where)
    except YamlError as exc:
        raise SimulationInputError(str(exc)) from None
    if not isinstance(raw, dict):
        raise SimulationInputError(f"{where}: expected a mapping with {', '.join(_COEFFICIENTS)}")
    missing = [k for k in ("fixed_s", "prefill_token_s", "decode_seq_s") if k not in raw]
    if missing:
        raise SimulationInputError(f"{where}: missing {', '.join(missing)}")
    numbers: dict[str, float] = {}
    for key in _COEFFICIENTS:
        value = raw.get(key, 0.0)
        if isinstance(value, str):  # YAML 1.1 reads `1e-5` (no dot) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SimulationInputError(f"{where}: {key} must be a number of seconds, not {value!r}")
        try:
            numbers[key] = float(value)
        except OverflowError:  # a YAML integer of hundreds of digits
            raise SimulationInputError(f"{where}: {key} (an integer of {len(str(value))} digits) must be seconds in "
                                       "[0, 60)") from None
    model_config = raw.get("model_config") or {}
    if not isinstance(model_config, dict):
        raise SimulationInputError(f"{where}: model_config must be a mapping (config.json fields)")
    gpus = raw.get("gpus_per_replica", 1)
    if isinstance(gpus, bool) or not isinstance(gpus, int):
        raise SimulationInputError(f"{where}: gpus_per_replica must be an integer")
    return StepProfile(name=str(raw.get("name", where)), gpu=str(raw.get("gpu", "")), gpus_per_replica=gpus,
                       source=str(raw.get("source", "")), model_config=model_config, **numbers)


def load_profile(name_or_path: str | Path) -> StepProfile:
    """A bundled profile by name (`BUNDLED`) or a YAML file."""
    if str(name_or_path) in BUNDLED:
        text = resources.files("llmobs.simulate").joinpath(f"profiles/{name_or_path}.yaml").read_text()
        return parse_profile(text, f"profile {name_or_path}")
    path = Path(name_or_path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        known = ", ".join(BUNDLED)
        raise SimulationInputError(f"cannot read profile {path}: {getattr(exc, 'strerror', None) or exc} "
                                   f"(bundled profiles: {known})") from None
    return parse_profile(text, f"profile {path}")
