"""The signals the scaler serves, as data: one row per `signal` metadata value.

Endpoint signals are read from the live `FleetState` and aggregated over the selected endpoints of a
model; model signals come from the forecast provider. Each row says how values combine across
endpoints by default, which KEDA `metricType` fits it, and the target used when the trigger gives none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llmobs.signals.door import DoorSignals
from llmobs.signals.types import ModelEndpointSignals

AGGREGATES: tuple[str, ...] = ("sum", "mean", "max")


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One servable signal: where its value comes from and how it is meant to be used."""

    name: str
    source: str  # "endpoint" (live signals, aggregated), "forecast" (model-level, from the provider) or "door"
    default_aggregate: str
    default_target: float
    metric_type: str  # the KEDA trigger metricType the value is shaped for
    description: str
    read: Callable[[ModelEndpointSignals], float] | None = None
    read_door: Callable[[DoorSignals], float] | None = None  # a door signal's value at one door


SIGNALS: dict[str, SignalSpec] = {s.name: s for s in (
    SignalSpec("queue_depth", "endpoint", "sum", 4.0, "AverageValue",
               "requests waiting in vLLM's queue (vllm:num_requests_waiting)", lambda s: s.requests_waiting),
    SignalSpec("requests_running", "endpoint", "sum", 32.0, "AverageValue",
               "requests in the running batch (vllm:num_requests_running)", lambda s: s.requests_running),
    SignalSpec("kv_utilization", "endpoint", "mean", 0.8, "Value",
               "KV-cache blocks in use, 0–1 (vllm:kv_cache_usage_perc)", lambda s: s.kv_cache_utilization),
    SignalSpec("request_rate", "endpoint", "sum", 10.0, "AverageValue",
               "finished requests/s over the signal window", lambda s: s.request_rate),
    SignalSpec("prompt_tokens_rate", "endpoint", "sum", 20000.0, "AverageValue",
               "prompt tokens/s over the signal window", lambda s: s.prompt_tokens_rate),
    SignalSpec("generation_tokens_rate", "endpoint", "sum", 2000.0, "AverageValue",
               "generated tokens/s over the signal window", lambda s: s.generation_tokens_rate),
    SignalSpec("saturation", "endpoint", "max", 0.8, "Value",
               "use of the scheduler limit that binds, 0–1 (llmobs_saturation_binding_ratio; NaN, so UNAVAILABLE, "
               "while a ratio is unknown)", lambda s: s.saturation.binding_ratio if s.saturation else math.nan),
    # Door signals: read where requests enter (a router or proxy), so they exist for a model with no replica,
    # whose queue_depth is 0 for want of a page. IsActive on one of them is what takes a model from 0 to 1.
    SignalSpec("door_request_rate", "door", "sum", 10.0, "AverageValue",
               "requests/s arriving at the doors for the model, served or refused (llmobs_door_request_rate)",
               read_door=lambda d: d.request_rate),
    SignalSpec("door_pending", "door", "sum", 4.0, "AverageValue",
               "requests the doors hold for the model without a backend's answer (llmobs_door_pending_requests)",
               read_door=lambda d: d.pending or 0.0),
    SignalSpec("forecast_request_rate", "forecast", "sum", 10.0, "AverageValue",
               "forecast requests/s `horizon` seconds ahead (upper bound unless bound=point)"),
    SignalSpec("desired_replicas", "forecast", "sum", 1.0, "AverageValue",
               "replicas the forecaster asks for (use target 1: the HPA then asks for exactly that many)"),
)}

ENDPOINT_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.source == "endpoint")
DOOR_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.source == "door")
