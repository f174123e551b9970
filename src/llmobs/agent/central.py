"""The central exporter's share of GPU/Kubernetes attribution, registered with one call.

`llmobs run` (runtime.start_exporter) calls `register_central_collectors` with its registry and state;
everything rendered comes from the state the pipeline already published and from the discovery caches,
so no collector does I/O at /metrics time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from llmobs.agent.attribution import central_endpoint_infos, central_usage
from llmobs.agent.collectors import CostCollector, EndpointInfoCollector, WatchStatsCollector
from llmobs.agent.cost import CostConfig
from llmobs.state import FleetState

if TYPE_CHECKING:  # discovery is passed in when enabled; the Kubernetes client is the `[kubernetes]` extra
    from llmobs.sources.kubernetes.source import KubernetesTargetSource


def register_central_collectors(registry: CollectorRegistry, current: Callable[[], FleetState],
                                cost: CostConfig | None = None,
                                discovery: KubernetesTargetSource | None = None,
                                seen_models: Callable[[], Iterable[str]] | None = None) -> None:
    """`llmobs_endpoint_info` always; cost families when prices are configured; watch health with discovery;
    the scaling chain when discovery watches autoscalers (`seen_models`: every model llmobs has data for,
    including ones now scaled to zero, so their ScaledObjects are not reported as naming unknown models)."""
    registry.register(EndpointInfoCollector(lambda: central_endpoint_infos(current())))
    if cost is not None and cost.gpu_hourly_usd:
        registry.register(CostCollector(cost, lambda: central_usage(current())))
    if discovery is not None:
        registry.register(WatchStatsCollector(discovery.stats))
        from llmobs.agent.chain import AutoscalerChainCollector

        def known() -> set[str]:
            return set(current().models()) | set(seen_models() if seen_models is not None else ())

        registry.register(AutoscalerChainCollector(discovery, known))
