"""Shared builders for the value types tests feed to the exporter, the scaler, the forecaster and the agent.

`ModelEndpointSignals` has two dozen fields and `TargetHealth` a dozen; a test that spells every one of them
hides the two values it is about. These builders give every field a neutral default (zero rates, empty
distributions, an up target) so a test names only what it checks, as keyword overrides by the field's own
name. `signals_from_page` goes the other way: it runs the real parser, normaliser and tracker on a vLLM page,
for tests that need signals exactly as the pipeline derives them.
"""

from __future__ import annotations

import math
from typing import Any

from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.door import DoorSignals
from llmobs.signals.types import Attribution, Distribution, ModelEndpointSignals
from llmobs.sources.normalize import normalize
from llmobs.sources.textformat import parse_text
from llmobs.state import DoorHealth, FleetState, TargetHealth

EMPTY_DISTRIBUTION = Distribution({0.5: math.nan, 0.9: math.nan, 0.99: math.nan}, math.nan, 0.0)
"""A distribution with no observation in the window: what the tracker reports for a quiet endpoint."""


def distribution(p50: float, p90: float, p99: float, mean: float, count: float = 100.0) -> Distribution:
    """A distribution with the three exported quantiles set."""
    return Distribution({0.5: p50, 0.9: p90, 0.99: p99}, mean, count)


def make_signals(model: str = "m", endpoint: str = "e", *, node: str = "", gpu_model: str = "",
                 **fields: Any) -> ModelEndpointSignals:
    """Signals for `model` on `endpoint`: an idle endpoint unless `fields` (by field name) say otherwise."""
    values: dict[str, Any] = {
        "window_seconds": 60.0, "kv_cache_utilization": 0.0, "kv_cache_utilization_max": 0.0,
        "kv_cache_capacity_tokens": None, "requests_running": 0.0, "requests_waiting": 0.0,
        "requests_waiting_by_reason": {}, "requests_swapped": None, "request_rate": 0.0,
        "prompt_tokens_rate": 0.0, "generation_tokens_rate": 0.0, "preemption_rate": 0.0,
        "finished_rate_by_reason": {}, "prefix_cache_hit_ratio": 0.0,
        "ttft": EMPTY_DISTRIBUTION, "itl": EMPTY_DISTRIBUTION, "e2e_latency": EMPTY_DISTRIBUTION,
        "queue_time": EMPTY_DISTRIBUTION, "prompt_length": EMPTY_DISTRIBUTION,
        "generation_length": EMPTY_DISTRIBUTION, "lora_adapters_running": 0, "lora_adapters_waiting": 0,
    }
    values.update(fields)
    return ModelEndpointSignals(attribution=Attribution(model, endpoint, node, gpu_model), **values)


def make_target_health(endpoint: str = "e", **fields: Any) -> TargetHealth:
    """Health of a target at `http://<endpoint>/metrics` that is up and never failed, unless `fields` say."""
    values: dict[str, Any] = {
        "url": f"http://{endpoint}/metrics", "up": True, "last_scrape_time": None,
        "scrape_duration_seconds": 0.01, "last_error": "", "last_error_kind": "", "consecutive_failures": 0,
    }
    values.update(fields)
    return TargetHealth(endpoint=endpoint, **values)


def scraped_target(endpoint: str, last_success: float | None, **labels: str) -> TargetHealth:
    """A target whose last scrape succeeded at `last_success` (None: it never did), carrying `labels`."""
    return make_target_health(endpoint, up=last_success is not None, last_scrape_time=last_success,
                              last_success_time=last_success, labels=labels)


def make_state(*signals: ModelEndpointSignals, targets: tuple[TargetHealth, ...] = (), time: float = 0.0,
               **fields: Any) -> FleetState:
    """A published fleet view holding `signals` and `targets`, taken at `time`."""
    return FleetState(time=time, signals=signals, targets=targets, **fields)


def signals_from_page(page: str, model: str = "tiny", attribution: Attribution | None = None,
                      interval: float = 5.0, **tracker_options: Any) -> ModelEndpointSignals:
    """Signals the real tracker derives from two scrapes of `page`, `interval` seconds apart.

    The same page twice means every rate is zero but every gauge, total and histogram is the page's own.
    """
    tracker = ModelEndpointTracker(attribution or Attribution(model, "e"), 60.0, **tracker_options)
    scrape = normalize(parse_text(page).samples, 0.0)
    tracker.observe(scrape.models[model], 0.0)
    tracker.observe(scrape.models[model], interval)
    signals = tracker.signals()
    assert signals is not None, "two scrapes of one page must give signals"
    return signals


def make_door_signals(model: str = "m", door: str = "router", kind: str = "vllm-router", **fields: Any) -> DoorSignals:
    """One model's signals at one door: a quiet door (no arrivals, nothing pending) unless `fields` say otherwise."""
    values: dict[str, Any] = {"window_seconds": 60.0, "request_rate": 0.0, "rejected_rate": 0.0, "pending": None,
                              "latency": None, "requests_total": 0.0, "rejected_total": 0.0}
    values.update(fields)
    return DoorSignals(model, door, kind, **values)


def make_door_health(door: str = "router", kind: str = "vllm-router", **fields: Any) -> DoorHealth:
    """A door target that answered its last scrape, unless `fields` say otherwise."""
    values: dict[str, Any] = {"url": f"http://{door}:29000/metrics", "up": True, "last_success_time": 0.0}
    values.update(fields)
    return DoorHealth(door, kind, **values)
