"""Wires the stages together for a running process: target source → pipeline → exporter server.

Kept apart from the CLI so tests and the demo start exactly what `llmobs run` starts. Optional
components (forecast, scaler, feedback, OTLP, Kubernetes discovery) are imported where they start, so
`llmobs run` without them needs none of their extras. `serve_asgi` is re-exported from
llmobs.serving.asgi for callers that imported it from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CollectorRegistry

from llmobs._extras import require
from llmobs.agent.central import register_central_collectors
from llmobs.config import ConfigError, LlmobsConfig
from llmobs.pipeline import CardinalityLimits, CycleHook, Pipeline
from llmobs.serving.app import create_app
from llmobs.serving.asgi import serve_asgi
from llmobs.serving.collector import FleetCollector
from llmobs.serving.statuspage import SignalHistory, StatusPage, StatusSources
from llmobs.serving.statuspage.history import ModelExtras
from llmobs.serving.statuspage.scaling import ChainReading, bottleneck_label, scaling_extras
from llmobs.serving.statuspage.view import FeedbackView
from llmobs.sources.scrape import Scraper
from llmobs.sources.sharding import ShardedTargetSource, resolve_shard_index
from llmobs.sources.targets import CombinedTargetSource, StaticTargetSource, TargetSource
from llmobs.state import StateHolder

if TYPE_CHECKING:
    from llmobs.feedback.stats import FeedbackStats
    from llmobs.forecast.service import ForecastService
    from llmobs.serving.otlp import OtlpHandle
    from llmobs.serving.scaler.server import ScalerHandle
    from llmobs.sources.kubernetes.source import KubernetesTargetSource


@dataclass
class Exporter:
    """A running exporter: its state, registry, pipeline, bound HTTP port and optional components."""

    holder: StateHolder
    registry: CollectorRegistry
    pipeline: Pipeline
    port: int
    _server: uvicorn.Server
    _tasks: list[asyncio.Task[None]]
    _stop: asyncio.Event
    scaler: ScalerHandle | None = None
    forecast: ForecastService | None = None
    feedback_task: asyncio.Task[None] | None = None
    feedback_port: int | None = None
    otlp: OtlpHandle | None = None
    _closers: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    async def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        await _stop_components(self.scaler, self.feedback_task, self.forecast, self.otlp)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        await _close_all(self._closers, self.pipeline.scraper)


async def _stop_components(scaler: ScalerHandle | None, feedback_task: asyncio.Task[None] | None,
                           forecast: ForecastService | None, otlp: OtlpHandle | None) -> None:
    """Stop the optional components an exporter started (those given), first of the shutdown's steps."""
    if scaler is not None:
        await scaler.stop()
    if feedback_task is not None:
        feedback_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feedback_task
    if forecast is not None:
        await asyncio.to_thread(forecast.stop)
    if otlp is not None:
        await asyncio.to_thread(otlp.shutdown)


async def _close_all(closers: list[Callable[[], Awaitable[None] | None]], scraper: Scraper) -> None:
    """The shutdown's last steps: discovery and other closers, then the scraper's connections."""
    for close in closers:
        result = close()
        if result is not None:
            await result
    await scraper.aclose()


def build_source(config: LlmobsConfig) -> tuple[TargetSource, KubernetesTargetSource | None]:
    """Static targets, Kubernetes discovery, or both; returns the source and the discovery (to stop it)."""
    static = StaticTargetSource(config.build_targets())
    if config.kubernetes is None or not config.kubernetes.enabled:
        return static, None
    require("kubernetes")
    from llmobs.sources.kubernetes.source import KubernetesTargetSource

    discovered = KubernetesTargetSource(config.kubernetes)
    discovered.start()
    discovered.wait_synced(10)  # so the first scrape cycle is not empty
    source = CombinedTargetSource([static, discovered]) if config.targets else discovered
    return source, discovered


class ForecastAdapter:
    """Lets the scaler read the forecast service through its ForecastProvider protocol.

    The service forecasts one horizon (its `horizon_seconds`); a trigger asking for another horizon gets
    None (UNAVAILABLE, so KEDA's fallback engages) rather than a forecast made for a different time."""

    def __init__(self, service: ForecastService) -> None:
        self.service = service

    def forecast(self, model: str, horizon_s: float) -> tuple[float, float] | None:
        f = self.service.snapshot().get(model)
        if f is None or abs(f.horizon_seconds - horizon_s) > self.service.config.step_seconds / 2:
            return None
        return f.point, f.upper

    def desired_replicas(self, model: str) -> int | None:
        f = self.service.snapshot().get(model)
        return None if f is None else f.desired_replicas


def served_requests_from(holder: StateHolder) -> Callable[[str], float]:
    """Reset-adjusted requests vLLM served per model (feedback coverage's denominator); thread-safe."""

    def served(model: str) -> float:
        return sum(v for s in holder.current.for_model(model) for k, v in s.totals.items()
                   if k.startswith("requests:"))

    return served


def start_deletion_cost(config: LlmobsConfig, holder: StateHolder, registry: CollectorRegistry) -> Callable[[], None]:
    """Start drain-aware scale-in (llmobs.serving.deletion_cost) on its own thread; returns its stop."""
    from llmobs.serving.deletion_cost import DeletionCostCollector, DeletionCostWriter, kubernetes_patcher
    from llmobs.sources.kubernetes.client import make_api_client

    assert config.kubernetes is not None
    writer = DeletionCostWriter(lambda: holder.current, kubernetes_patcher(make_api_client(config.kubernetes)),
                                config.kubernetes.pod_deletion_cost)
    registry.register(DeletionCostCollector(writer))
    writer.start()
    return writer.stop


def build_status_page(holder: StateHolder, forecast: ForecastService | None, scaler: ScalerHandle | None,
                      feedback_stats: list[FeedbackStats] | None, history: SignalHistory | None = None,
                      discovery: KubernetesTargetSource | None = None) -> StatusPage:
    """The status page with every source this process runs: forecast, KEDA answers, feedback (`feedback_stats`
    holds the feedback API's counters once it has made them; None when the API is off), the doors, the
    bottleneck, and the HPAs and pods when discovery watches them."""
    sources = StatusSources(bottleneck_of=bottleneck_label)
    history = history if history is not None else SignalHistory()
    if forecast is not None or scaler is not None:
        from llmobs.serving.statuspage.sources import forecast_extras, trigger_answers
    base: Callable[[str], ModelExtras] = lambda model: ModelExtras()  # noqa: E731
    if forecast is not None:
        sources.forecasts = forecast.snapshot
        base = forecast_extras(forecast.snapshot)
    watch = discovery.autoscalers if discovery is not None else None
    chain = ChainReading(chains=watch.chains if watch is not None else None,
                         pod_counts=discovery.pod_counts if watch is not None and discovery is not None else None)
    history.model_extras = scaling_extras(lambda: holder.current, base, chain)
    if scaler is not None:
        sources.triggers = trigger_answers(scaler.cache, scaler.triggers)
    if feedback_stats is not None:
        made = feedback_stats
        sources.feedback = lambda: feedback_views(made[0]) if made else {}
    return StatusPage(holder, sources, history)


def feedback_views(stats: FeedbackStats) -> dict[str, FeedbackView]:
    """Negative feedback per model over the feedback API's window, split by client TTFT against the SLO."""
    out = {}
    for model, w in stats.window(time.time()).items():
        above, below = w.by_ttft["above_slo"], w.by_ttft["below_slo"]
        out[model] = FeedbackView(w.total, w.negative, (above[0], above[1]), (below[0], below[1]))
    return out


def required_extras(config: LlmobsConfig) -> list[str]:
    """The pip extras the components `config` enables need (the core exporter needs none)."""
    enabled = {
        "kubernetes": config.kubernetes is not None and config.kubernetes.enabled,
        "forecast": config.forecast is not None and config.forecast.enabled,
        "scaler": config.scaler is not None and config.scaler.enabled,
        "otlp": config.otlp is not None and config.otlp.enabled,
    }
    return [feature for feature, on in enabled.items() if on]


async def start_exporter(config: LlmobsConfig, source: TargetSource | None = None, *,
                         cycle_hook: CycleHook | None = None, status_history: SignalHistory | None = None) -> Exporter:
    for feature in required_extras(config):  # fail before binding anything, naming the extra
        require(feature)
    holder = StateHolder()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    discovery = None
    if source is None:
        source, discovery = build_source(config)
    if config.sharding is not None and config.sharding.shards > 1:
        shards = config.sharding.shards
        try:
            index = resolve_shard_index(config.sharding.shard_index, shards)
        except ValueError as exc:  # a config problem (env var, hostname), not an unexpected failure
            raise ConfigError(str(exc)) from None
        source = ShardedTargetSource(source, shards, index)
    register_central_collectors(registry, lambda: holder.current, config.cost, discovery,
                                holder.models_with_history)
    scraper = Scraper(
        timeout_seconds=config.scrape.timeout_seconds,
        max_concurrency=config.scrape.max_concurrency,
        max_response_bytes=config.scrape.max_response_bytes,
    )
    pipeline = Pipeline(
        source or StaticTargetSource(config.build_targets()), scraper, holder,
        window_seconds=config.signals.window_seconds, ttft_slo_seconds=config.signals.ttft_slo_seconds,
        tpot_slo_seconds=config.signals.tpot_slo_seconds, e2e_slo_seconds=config.signals.e2e_slo_seconds,
        limits=CardinalityLimits(max_series_per_target=config.scrape.max_series_per_target,
                                 max_label_values=config.scrape.max_label_values,
                                 max_models=config.signals.max_models,
                                 max_models_per_target=config.scrape.max_models_per_target),
        cycle_hook=cycle_hook,
        doors=config.build_doors(),
    )
    stop = asyncio.Event()
    forecast = None
    if config.forecast is not None and config.forecast.enabled:
        from llmobs.forecast.service import ForecastService

        forecast = ForecastService(holder, config.forecast.to_forecast_config(), registry)
        forecast.start()
    scaler = None
    extra_routes = []
    if config.scaler is not None and config.scaler.enabled:
        from llmobs.serving.scaler.server import serve_scaler

        scaler = await serve_scaler(config.scaler, holder, interval_seconds=config.scrape.interval_seconds,
                                    forecast=ForecastAdapter(forecast) if forecast else None, registry=registry)
        extra_routes = scaler.routes()
    feedback_task = None
    feedback_stats: list[FeedbackStats] = []  # the feedback API's counters, once it has made them
    if config.feedback is not None and config.feedback.enabled:
        from llmobs.feedback import serve_feedback

        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def announce_port(host: str, port: int) -> None:
            if not listening.done():
                listening.set_result(port)

        feedback_task = asyncio.create_task(serve_feedback(
            config.feedback, registry, served_requests_from(holder), on_listening=announce_port,
            on_stats=feedback_stats.append))
        done, _ = await asyncio.wait([listening, feedback_task], return_when=asyncio.FIRST_COMPLETED)
        if feedback_task in done:
            feedback_task.result()  # re-raise why the feedback API could not start (e.g. port in use)
    closers: list[Callable[[], Awaitable[None] | None]] = [discovery.stop] if discovery is not None else []
    if config.kubernetes is not None and config.kubernetes.enabled and config.kubernetes.pod_deletion_cost.enabled:
        closers.append(start_deletion_cost(config, holder, registry))
    otlp = None
    if config.otlp is not None and config.otlp.enabled:
        from llmobs.serving.otlp import start_otlp

        otlp = start_otlp(config.otlp, holder)
    status_page = build_status_page(holder, forecast, scaler, feedback_stats if feedback_task else None,
                                    status_history, discovery)
    app = create_app(holder, registry, max_state_age_seconds=max(30.0, 10 * config.scrape.interval_seconds),
                     extra_routes=extra_routes, status_page=status_page)
    try:
        server, server_task, port = await serve_asgi(app, config.server.host, config.server.port)
    except BaseException:  # e.g. the port in use: what already started stops, then the caller hears why
        await _stop_components(scaler, feedback_task, forecast, otlp)
        await _close_all(closers, scraper)
        raise
    loop_task = asyncio.create_task(pipeline.run_forever(config.scrape.interval_seconds, stop))
    return Exporter(holder, registry, pipeline, port, server, [loop_task, server_task], stop, scaler=scaler,
                    forecast=forecast, feedback_task=feedback_task,
                    feedback_port=listening.result() if feedback_task else None, otlp=otlp, _closers=closers)
