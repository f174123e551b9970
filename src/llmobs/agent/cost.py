"""GPU cost: a configured price per GPU-hour by `gpu_model`, and cost per 1k generated tokens per model.

    cost_per_1k{model, gpu_model} = Σ_endpoints (gpus × $/GPU-h) / (Σ_endpoints generated tokens/s × 3.6)

($/h ÷ (tokens/s × 3600 / 1000) = $/h ÷ (tokens/s × 3.6).) Pure functions: the collector feeds them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import Field, field_validator

from llmobs._config_model import StrictConfigModel


def _norm(gpu_model: str) -> str:
    """"NVIDIA H100 80GB HBM3" and "NVIDIA-H100-80GB-HBM3" name the same GPU (NVML vs node label)."""
    return "-".join(gpu_model.split()).lower()


class CostConfig(StrictConfigModel):
    """`gpu_hourly_usd`: price of one GPU-hour by gpu_model (node label or NVML spelling, any case)."""

    gpu_hourly_usd: dict[str, float] = Field(default_factory=dict)

    @field_validator("gpu_hourly_usd")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for k, price in v.items():
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"gpu_hourly_usd[{k!r}] must be a finite price >= 0")
        return v

    def price(self, gpu_model: str) -> float | None:
        table = {_norm(k): p for k, p in self.gpu_hourly_usd.items()}
        return table.get(_norm(gpu_model))


@dataclass(frozen=True, slots=True)
class EndpointUsage:
    """One model served on one endpoint: its GPUs and its generation rate over the signal window."""

    model: str
    endpoint: str
    gpu_model: str
    gpus: int
    generation_tokens_rate: float


def cost_per_1k_generated_tokens(usage: Iterable[EndpointUsage], cfg: CostConfig) -> dict[tuple[str, str], float]:
    """(model, gpu_model) → $ per 1,000 generated tokens. Omitted when the price is unknown or nothing was
    generated in the window (an idle replica has a cost but no per-token cost: show a gap, not ∞)."""
    dollars: dict[tuple[str, str], float] = defaultdict(float)
    tokens: dict[tuple[str, str], float] = defaultdict(float)
    for u in usage:
        price = cfg.price(u.gpu_model)
        if price is None:
            continue
        key = (u.model, u.gpu_model)
        dollars[key] += price * max(u.gpus, 1)
        tokens[key] += u.generation_tokens_rate
    return {k: dollars[k] / (tokens[k] * 3.6) for k in dollars if tokens[k] > 0}


def hourly_prices(cfg: CostConfig) -> Mapping[str, float]:
    return dict(cfg.gpu_hourly_usd)
