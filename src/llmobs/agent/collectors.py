"""prometheus_client collectors for GPU, endpoint attribution, cost and watch health.

Each renders an immutable value handed over by a provider callable (the agent loop's last reading, the
exporter's last state), so /metrics never calls NVML or the API server. Every family's name, type, help
and labels are the metric catalogue's (llmobs.metrics_catalogue); the per-GPU fields are whatever the NVML
field catalogue (fields.yaml) reads, so a field added there is exported without touching this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from llmobs.agent.attribution import EndpointInfo, ProcessOnGpu
from llmobs.agent.cost import CostConfig, EndpointUsage, cost_per_1k_generated_tokens
from llmobs.metric_families import Family, family
from llmobs.sources.gpu.types import GpuDevice, GpuReading

if TYPE_CHECKING:  # NVML bindings and the Kubernetes client: needed by the agent, not by `llmobs run`
    from llmobs.sources.gpu.catalogue import Catalogue
    from llmobs.sources.kubernetes.watch import WatchStats


def _gpu_values(node: str, d: GpuDevice) -> list[str]:
    return [node, str(d.index), d.uuid, d.model, d.gpu_instance]


class GpuCollector(Collector):
    """`llmobs_nvml_up`, `llmobs_gpu_up`, every catalogue family, XIDs and per-process memory."""

    def __init__(self, node: str, catalogue: Catalogue,
                 current: Callable[[], tuple[GpuReading, tuple[ProcessOnGpu, ...]]]) -> None:
        self.node = node
        self.catalogue = catalogue
        self.current = current

    def collect(self) -> Iterator[Metric]:
        reading, processes = self.current()
        yield family("llmobs_nvml_up", 1.0 if reading.nvml_up else 0.0)
        if not reading.nvml_up:
            return
        node = self.node
        info = family("llmobs_gpu_info")
        up = family("llmobs_gpu_up")
        for d in reading.devices:
            info.add_metric([*_gpu_values(node, d), d.name, d.parent_uuid, reading.driver_version], 1.0)
        for d, ok in reading.device_up:
            up.add_metric(_gpu_values(node, d), 1.0 if ok else 0.0)
        yield info
        yield up
        families: dict[str, Family] = {}
        for spec in self.catalogue.fields:
            if spec.metric not in families:
                families[spec.metric] = family(spec.metric)
        for s in reading.samples:
            families[s.metric].add_metric([*_gpu_values(node, s.device), *(v for _, v in s.labels)], s.value)
        yield from families.values()
        xid = family("llmobs_gpu_xid_errors_total")
        for x in reading.xids:
            xid.add_metric([*_gpu_values(node, x.device), str(x.xid)], x.count)
        yield xid
        procs = family("llmobs_gpu_process_memory_bytes")
        for p in processes:
            if p.used_bytes is not None:
                procs.add_metric([*_gpu_values(node, p.device), str(p.pid), p.namespace, p.pod, p.container,
                                  p.model], p.used_bytes)
        yield procs
        errors = family("llmobs_nvml_read_errors_total")
        for kind, n in reading.errors:
            errors.add_metric([kind], n)
        yield errors
        unsupported = family("llmobs_nvml_unsupported_queries")
        for uuid, n in reading.unsupported:
            unsupported.add_metric([node, uuid], n)
        yield unsupported
        yield family("llmobs_nvml_collection_duration_seconds", reading.duration_seconds)


class EndpointInfoCollector(Collector):
    """`llmobs_endpoint_info{model,endpoint,namespace,pod,node,gpu_model,gpu_uuid}` = 1: the join key
    between GPU series (node, gpu_uuid) and model signals (model, endpoint)."""

    def __init__(self, rows: Callable[[], Iterable[EndpointInfo]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        info = family("llmobs_endpoint_info")
        for r in self.rows():
            info.add_metric([r.model, r.endpoint, r.namespace, r.pod, r.node, r.gpu_model, r.gpu_uuid], 1.0)
        yield info


class CostCollector(Collector):
    """`llmobs_gpu_cost_per_hour{gpu_model}` (the price table) and
    `llmobs_cost_per_1k_generated_tokens{model,gpu_model}` from the current usage."""

    def __init__(self, cfg: CostConfig, usage: Callable[[], Iterable[EndpointUsage]]) -> None:
        self.cfg = cfg
        self.usage = usage

    def collect(self) -> Iterator[Metric]:
        price = family("llmobs_gpu_cost_per_hour")
        for gpu_model, p in sorted(self.cfg.gpu_hourly_usd.items()):
            price.add_metric([gpu_model], p)
        yield price
        cost = family("llmobs_cost_per_1k_generated_tokens")
        for (model, gpu_model), v in sorted(cost_per_1k_generated_tokens(self.usage(), self.cfg).items()):
            if math.isfinite(v):
                cost.add_metric([model, gpu_model], v)
        yield cost


class WatchStatsCollector(Collector):
    """List/watch health of the Kubernetes caches: relists, expiries (410), errors, events."""

    def __init__(self, stats: Callable[[], Mapping[str, WatchStats]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        names = ("lists", "watches", "events", "bookmarks", "expired", "errors")
        families = {n: family(f"llmobs_kubernetes_watch_{n}_total") for n in names}
        for watch_name, st in sorted(self.stats().items()):
            for n in names:
                families[n].add_metric([watch_name], getattr(st, n))
        yield from families.values()
