"""`AutoscalerChainCollector`: the scaling chain per model, rendered from the watch caches at /metrics time.

Joins llmobs' view (the models it scrapes) with the autoscaler's (HPAs, KEDA ScaledObjects, pods) so the
alerts can tell a recommendation the autoscaler acted on from one it ignored. No API call happens here:
the caches are filled by background watches (llmobs.sources.kubernetes.chainwatch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from llmobs.metric_families import family

if TYPE_CHECKING:  # the Kubernetes client is the `[kubernetes]` extra
    from llmobs.sources.kubernetes.autoscalers import Condition
    from llmobs.sources.kubernetes.source import KubernetesTargetSource

STATUSES = ("True", "False", "Unknown")


def _condition_rows(conds: tuple[Condition, ...]) -> Iterator[tuple[str, str, float]]:
    for c in conds:
        for status in STATUSES:
            yield c.type, status, 1.0 if c.status == status else 0.0


class AutoscalerChainCollector(Collector):
    """HPA desired/current/last scale/conditions, ScaledObject conditions and unknown models, pods per model."""

    def __init__(self, discovery: KubernetesTargetSource, known_models: Callable[[], set[str]]) -> None:
        self.discovery = discovery
        self.known_models = known_models

    def collect(self) -> Iterator[Metric]:
        watch = self.discovery.autoscalers
        if watch is None:
            return
        counts = self.discovery.pod_counts()
        replicas, ready, since = (family("llmobs_replicas"), family("llmobs_replicas_ready"),
                                  family("llmobs_replicas_not_ready_since_timestamp_seconds"))
        for model, n in counts.items():
            replicas.add_metric([model], n.total)
            ready.add_metric([model], n.ready)
            if n.not_ready_since is not None:
                since.add_metric([model], n.not_ready_since)
        yield from (replicas, ready, since)
        known = self.known_models() | set(counts)
        desired, current, last = (family("llmobs_hpa_desired_replicas"), family("llmobs_hpa_current_replicas"),
                                  family("llmobs_hpa_last_scale_timestamp_seconds"))
        hpa_cond, so_cond = family("llmobs_hpa_condition"), family("llmobs_scaledobject_condition")
        failing, unknown = family("llmobs_scaledobject_failing_triggers"), family("llmobs_scaledobject_unknown_model")
        for chain in watch.chains():
            so = chain.scaledobject.key
            failing.add_metric([chain.model, so], chain.scaledobject.failing_triggers)
            for cond, status, value in _condition_rows(chain.scaledobject.conditions):
                so_cond.add_metric([chain.model, so, cond, status], value)
            if chain.model not in known:
                unknown.add_metric([chain.model, so], 1.0)
            hpa = chain.hpa
            if hpa is None:
                continue
            key = [chain.model, so, f"{hpa.namespace}/{hpa.name}"]
            if hpa.desired is not None:
                desired.add_metric(key, hpa.desired)
            if hpa.current is not None:
                current.add_metric(key, hpa.current)
            if hpa.last_scale is not None:
                last.add_metric(key, hpa.last_scale)
            for cond, status, value in _condition_rows(hpa.conditions):
                hpa_cond.add_metric([*key, cond, status], value)
        yield from (desired, current, last, hpa_cond, so_cond, failing, unknown)
