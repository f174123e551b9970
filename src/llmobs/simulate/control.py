"""What a scaling policy sees at a sync instant, in the same shape whatever produced it.

In request-level mode (`fleet`) every ready replica's `ReplicaLoad` is read off llmobs' own signals, derived
from the vLLM page the replica rendered at its last scrape — never from the simulator's state. In the
long-trace mode (`fluid`) a fitted per-replica model produces the same fields. Policies read only this, so
one policy runs unchanged in both modes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from llmobs.signals.types import ModelEndpointSignals


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """One ready replica as a scaler sees it over the signal window (vLLM's gauges and counter rates).

    `request_rate` is vLLM's finished-request rate (`request_success_total`); `ttft_p90_s` is NaN when the
    window saw no first token."""

    running: float
    waiting: float
    kv_usage: float  # 0–1, vLLM's kv_cache_usage_perc
    request_rate: float
    prompt_tokens_rate: float
    generation_tokens_rate: float
    ttft_p90_s: float = math.nan

    @property
    def concurrency(self) -> float:
        """Requests in the replica (running + waiting): AIBrix's and Knative's per-pod concurrency."""
        return self.running + self.waiting

    @classmethod
    def from_signals(cls, signals: ModelEndpointSignals) -> ReplicaLoad:
        q = signals.ttft.quantiles.get(0.9) if signals.ttft.quantiles else None
        return cls(
            running=signals.requests_running,
            waiting=signals.requests_waiting,
            kv_usage=signals.kv_cache_utilization,
            request_rate=signals.request_rate,
            prompt_tokens_rate=signals.prompt_tokens_rate,
            generation_tokens_rate=signals.generation_tokens_rate,
            ttft_p90_s=math.nan if q is None else float(q),
        )


@dataclass(frozen=True, slots=True)
class ControlView:
    """A sync instant: spec replicas (`ready` + `starting`, what the HPA calls current), each ready replica's
    load as scraped, and the demand counted at the door (the router) over the signal window — arrivals per
    second, requests waiting there for a replica included, as llmobs' door sources read them.

    `signals` holds llmobs' full `ModelEndpointSignals` in request-level mode (empty in the fluid mode)."""

    now: float
    ready: int
    starting: int
    loads: tuple[ReplicaLoad, ...]
    door_rate: float
    door_prompt_tokens_rate: float = 0.0
    signals: tuple[ModelEndpointSignals, ...] = field(default_factory=tuple)

    @property
    def current(self) -> int:
        return self.ready + self.starting


Controller = Callable[[ControlView], int | None]
