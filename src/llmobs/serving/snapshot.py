"""JSON view of a FleetState for `/api/v1/signals` (NaN and ±Inf become null: JSON has no NaN)."""

from __future__ import annotations

import math
from typing import Any

from llmobs.signals.door import DoorSignals
from llmobs.signals.types import Distribution, ModelEndpointSignals, Saturation
from llmobs.state import FleetState


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return v


def _dist(d: Distribution) -> dict[str, Any]:
    return {"quantiles": {f"{q:g}": _num(v) for q, v in d.quantiles.items()}, "mean": _num(d.mean),
            "count": _num(d.count)}


def signal_to_json(s: ModelEndpointSignals) -> dict[str, Any]:
    a = s.attribution
    return {
        "model": a.model, "endpoint": a.endpoint, "node": a.node, "gpu_model": a.gpu_model,
        "window_seconds": _num(s.window_seconds),
        "kv_cache_utilization": _num(s.kv_cache_utilization),
        "kv_cache_utilization_max": _num(s.kv_cache_utilization_max),
        "kv_cache_headroom": _num(s.kv_cache_headroom),
        "kv_cache_capacity_tokens": _num(s.kv_cache_capacity_tokens),
        "requests_running": _num(s.requests_running),
        "requests_waiting": _num(s.requests_waiting),
        "requests_waiting_by_reason": {k: _num(v) for k, v in s.requests_waiting_by_reason.items()},
        "requests_swapped": _num(s.requests_swapped),
        "request_rate": _num(s.request_rate),
        "prompt_tokens_rate": _num(s.prompt_tokens_rate),
        "generation_tokens_rate": _num(s.generation_tokens_rate),
        "preemption_rate": _num(s.preemption_rate),
        "finished_rate_by_reason": {k: _num(v) for k, v in s.finished_rate_by_reason.items()},
        "prefix_cache_hit_ratio": _num(s.prefix_cache_hit_ratio),
        "ttft_seconds": _dist(s.ttft),
        "itl_seconds": _dist(s.itl),
        "e2e_latency_seconds": _dist(s.e2e_latency),
        "queue_time_seconds": _dist(s.queue_time),
        "prompt_length_tokens": _dist(s.prompt_length),
        "generation_length_tokens": _dist(s.generation_length),
        "lora_adapters_running": s.lora_adapters_running,
        "lora_adapters_waiting": s.lora_adapters_waiting,
        "totals": {k: _num(v) for k, v in s.totals.items()},
        "saturation": _saturation(s.saturation),
    }


def _saturation(sat: Saturation | None) -> dict[str, Any] | None:
    if sat is None:
        return None
    return {"bottleneck": sat.bottleneck, "ratios": {k: _num(v) for k, v in sat.ratios.items()},
            "binding_ratio": _num(sat.binding_ratio), "spare_tokens_per_second": _num(sat.spare_tokens_per_second),
            "unknown": list(sat.unknown)}


def door_to_json(d: DoorSignals) -> dict[str, Any]:
    return {
        "model": d.model, "door": d.door, "door_kind": d.kind, "window_seconds": _num(d.window_seconds),
        "request_rate": _num(d.request_rate), "rejected_rate": _num(d.rejected_rate), "pending": _num(d.pending),
        "latency_seconds": None if d.latency is None else _dist(d.latency),
        "requests_total": _num(d.requests_total), "rejected_total": _num(d.rejected_total),
    }


def state_to_json(state: FleetState) -> dict[str, Any]:
    return {
        "time": state.time,
        "window_seconds": state.window_seconds,
        "cycle_duration_seconds": state.cycle_duration_seconds,
        "targets": [
            {
                "endpoint": h.endpoint, "url": h.url, "up": h.up, "labels": h.labels,
                "scrape_duration_seconds": h.scrape_duration_seconds,
                "last_scrape_time": h.last_scrape_time, "last_success_time": h.last_success_time,
                "last_error": h.last_error, "last_error_kind": h.last_error_kind,
                "consecutive_failures": h.consecutive_failures, "errors_by_kind": h.errors_by_kind,
                "skipped_lines": h.skipped_lines, "missing_series": list(h.missing_series),
                "counter_resets": h.counter_resets,
            }
            for h in state.targets
        ],
        "signals": [signal_to_json(s) for s in state.signals],
        "doors": [door_to_json(d) for d in state.doors],
        "door_targets": [{"door": h.door, "door_kind": h.kind, "url": h.url, "up": h.up,
                          "last_success_time": h.last_success_time, "problems": h.problems}
                         for h in state.door_health],
    }
