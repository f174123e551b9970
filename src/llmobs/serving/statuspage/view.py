"""The status page's view-model: small, plain dataclasses built from what this exporter has.

Each panel renders from its own piece of the view; a source the exporter lacks (no forecaster, no scaler, no
feedback API, no GPU agent metrics, a signal another component has not published yet) is None here and
"not available" on the page — never a made-up zero. `StatusSources` is where each optional source plugs in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmobs.serving.statuspage.history import Series, SignalHistory
from llmobs.signals.types import Attribution, ModelEndpointSignals
from llmobs.state import FleetState, TargetHealth

if TYPE_CHECKING:
    from llmobs.forecast.service import ModelForecast


@dataclass(frozen=True, slots=True)
class TriggerAnswer:
    """What one KEDA trigger would be answered now (the scaler answers from the same snapshot)."""

    model: str
    signal: str
    target: float
    value: float | None  # None: the scaler answers an error (no fresh data), KEDA's fallback engages
    active: bool | None
    at: float  # when the snapshot it was answered from was built
    error: str = ""


@dataclass(frozen=True, slots=True)
class FeedbackView:
    """One model's feedback in the feedback API's window: negative ratio overall and by client TTFT vs SLO."""

    total: int
    negative: int
    above_slo: tuple[int, int]  # (total, negative) for requests whose client TTFT was over the SLO
    below_slo: tuple[int, int]


@dataclass(frozen=True, slots=True)
class GpuView:
    """GPU telemetry for one endpoint's node, where the exporter has it (the node agent runs elsewhere)."""

    utilization: float | None = None
    memory_used_ratio: float | None = None
    power_watts: float | None = None


@dataclass
class StatusSources:
    """Optional inputs the page shows when this process has them; each None → 'not available' on the page."""

    forecasts: Callable[[], Mapping[str, ModelForecast]] | None = None
    triggers: Callable[[], Sequence[TriggerAnswer]] | None = None
    feedback: Callable[[], Mapping[str, FeedbackView]] | None = None
    bottleneck_of: Callable[[ModelEndpointSignals], str | None] | None = None
    gpu_of: Callable[[Attribution], GpuView | None] | None = None
    slo_objective: float = 0.99  # the burn rate's denominator: 1 - objective is the error budget


@dataclass(frozen=True, slots=True)
class ModelPanel:
    model: str
    history: Series | None
    cold_start_times: list[float]
    cold_start_p90_seconds: float | None
    forecast: ModelForecast | None
    triggers: list[TriggerAnswer]
    slo_attainment: float | None  # TTFT SLO over the history's span
    burn_rate: float | None
    feedback: FeedbackView | None
    endpoints: int


@dataclass(frozen=True, slots=True)
class EndpointPanel:
    model: str
    endpoint: str
    node: str
    gpu_model: str
    kv: float
    waiting: float
    running: float
    ttft_p90: float | None
    tpot_p90: float | None
    history: Series | None
    bottleneck: str | None
    gpu: GpuView | None


@dataclass(frozen=True, slots=True)
class PageView:
    state_time: float
    built_at: float
    window_seconds: float
    cycle_seconds: float
    targets: list[TargetHealth]  # down first, then by endpoint
    models: list[ModelPanel]
    endpoints: list[EndpointPanel]
    has_forecast: bool
    has_triggers: bool
    has_feedback: bool
    has_bottleneck: bool
    has_gpu: bool
    notes: list[str] = field(default_factory=list)


def _q90(q: Mapping[float, float]) -> float | None:
    v = q.get(0.9)
    return v if v is not None and math.isfinite(v) else None


def rises(times: Sequence[float], counts: Sequence[float]) -> list[float]:
    """The times a replica count went up: where a new replica's cold start ended (it began serving)."""
    out = []
    for i in range(1, len(counts)):
        a, b = counts[i - 1], counts[i]
        if a == a and b == b and b > a:
            out.append(times[i])
    return out


def slo_over(history: Series | None, objective: float) -> tuple[float | None, float | None]:
    """(attainment, burn rate) of the TTFT SLO between the history's first and last point; None when unknown
    or when no request finished in between. Counters are reset-adjusted upstream, so a difference is safe."""
    if history is None:
        return None, None
    good = [v for v in history.values["slo_good"] if v == v]
    total = [v for v in history.values["slo_total"] if v == v]
    if len(good) < 2 or len(total) < 2 or total[-1] - total[0] <= 0:
        return None, None
    attained = min(1.0, max(0.0, (good[-1] - good[0]) / (total[-1] - total[0])))
    budget = 1.0 - objective
    return attained, ((1.0 - attained) / budget if budget > 0 else None)


def build_view(state: FleetState, history: SignalHistory, sources: StatusSources,
               now: float | None = None) -> PageView:
    """Everything the page shows, from the published state, the history and whichever sources exist."""
    forecasts = sources.forecasts() if sources.forecasts is not None else {}
    triggers = list(sources.triggers()) if sources.triggers is not None else []
    feedback = sources.feedback() if sources.feedback is not None else {}
    models = []
    for model in state.models():
        h = history.model(model)
        attained, burn = slo_over(h, sources.slo_objective)
        cold = state.cold_starts.get(model)
        models.append(ModelPanel(
            model=model, history=h,
            cold_start_times=rises(h.times, h.values["current"]) if h is not None else [],
            cold_start_p90_seconds=cold.horizon_seconds if cold is not None else None,
            forecast=forecasts.get(model), triggers=[t for t in triggers if t.model == model],
            slo_attainment=attained, burn_rate=burn, feedback=feedback.get(model),
            endpoints=len(state.for_model(model))))
    endpoints = []
    for s in sorted(state.signals, key=lambda s: (s.attribution.model, s.attribution.endpoint)):
        a = s.attribution
        endpoints.append(EndpointPanel(
            model=a.model, endpoint=a.endpoint, node=a.node, gpu_model=a.gpu_model,
            kv=s.kv_cache_utilization, waiting=s.requests_waiting, running=s.requests_running,
            ttft_p90=_q90(s.ttft.quantiles), tpot_p90=_q90(s.itl.quantiles),
            history=history.endpoint_overview(a.model, a.endpoint),
            bottleneck=sources.bottleneck_of(s) if sources.bottleneck_of is not None else None,
            gpu=sources.gpu_of(a) if sources.gpu_of is not None else None))
    targets = sorted(state.targets, key=lambda t: (t.up, t.endpoint))
    return PageView(
        state_time=state.time, built_at=time.time() if now is None else now,
        window_seconds=state.window_seconds, cycle_seconds=state.cycle_duration_seconds,
        targets=targets, models=models, endpoints=endpoints,
        has_forecast=sources.forecasts is not None, has_triggers=sources.triggers is not None,
        has_feedback=sources.feedback is not None, has_bottleneck=sources.bottleneck_of is not None,
        has_gpu=sources.gpu_of is not None)
