"""vLLM's latency histograms over OTLP as the OpenTelemetry GenAI semantic-convention server metrics.

The names, units and descriptions are the metric catalogue's (llmobs.metrics_catalogue.OTLP_HISTOGRAMS).
vLLM exposes time to first token, per-request time per output token and end-to-end latency as cumulative
Prometheus histograms. llmobs keeps each one reset-adjusted since the scrape where it first saw the series
(`ModelEndpointSignals.histograms`, a `CumulativeHistogram`), which is exactly an OTLP cumulative
histogram point: vLLM's bucket bounds, per-bucket counts, count and sum, with `start_time_unix_nano` = that
first scrape (a new start only when the bucket layout changes; a vLLM restart adds on, so counts never
decrease under one start time). They are exported under the semantic-convention names (GenAI semconv
v1.37+, checked against v1.41.0):

| canonical (vllm_aliases.yaml) | vLLM series | OTLP histogram |
|---|---|---|
| `ttft` | `vllm:time_to_first_token_seconds` | `gen_ai.server.time_to_first_token` |
| `tpot` | `vllm:request_time_per_output_token_seconds` | `gen_ai.server.time_per_output_token` |
| `e2e_latency` | `vllm:e2e_request_latency_seconds` | `gen_ai.server.request.duration` |

vLLM's inter-token latency histogram (`itl`) is *not* exported as `gen_ai.server.time_per_output_token`: it
observes every token gap, while the convention observes one value per request ((duration - TTFT) /
(output tokens - 1)), which is what `request_time_per_output_token_seconds` records (vLLM 0.10+; older vLLM
gets no point for that metric).

Attributes: `gen_ai.provider.name` = "vllm", `gen_ai.request.model`, `server.address`/`server.port` from the
scrape URL, `llmobs.endpoint`, and `k8s.node.name`, `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`
where discovery knows them. `gen_ai.operation.name` (Required in the convention) is left out: vLLM's
histograms mix chat, text-completion and other requests and llmobs cannot tell them apart.

The OTel SDK's instruments aggregate individual measurements and the Python SDK has no `MetricProducer`
hook, so pre-aggregated points take another route: `GenAIHistogramExporter` wraps the OTLP exporter
(gRPC or HTTP/protobuf) and adds these `Metric`s to the `llmobs` scope of every export the periodic reader
makes. Same interval, same request, same resource as the `llmobs.*` instruments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from llmobs import __version__
from llmobs.metrics_catalogue import OTLP_HISTOGRAMS as GENAI_HISTOGRAMS
from llmobs.signals.types import CumulativeHistogram, ModelEndpointSignals
from llmobs.state import FleetState, StateHolder, TargetHealth

SCOPE = "llmobs"
PROVIDER = "vllm"


# Target labels set by Kubernetes discovery → resource-style attributes on each point.
_TARGET_LABELS = {"namespace": "k8s.namespace.name", "pod": "k8s.pod.name", "pod_uid": "k8s.pod.uid"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def point_attributes(signals: ModelEndpointSignals, target: TargetHealth | None) -> dict[str, Any]:
    """The semantic-convention and llmobs attributes of one model × endpoint (empty values left out)."""
    a = signals.attribution
    attrs: dict[str, Any] = {"gen_ai.provider.name": PROVIDER, "gen_ai.request.model": a.model,
                             "llmobs.endpoint": a.endpoint}
    if a.node:
        attrs["k8s.node.name"] = a.node
    if a.gpu_model:
        attrs["llmobs.gpu_model"] = a.gpu_model
    if target is not None:
        url = urlsplit(target.url)
        if url.hostname:
            attrs["server.address"] = url.hostname
            port = url.port or _DEFAULT_PORTS.get(url.scheme)
            if port:
                attrs["server.port"] = port
        for label, attr in _TARGET_LABELS.items():
            if target.labels.get(label):
                attrs[attr] = target.labels[label]
    return attrs


def bucket_counts(cumulative: Sequence[float]) -> list[int]:
    """`le`-cumulative counts → OTLP per-bucket counts (a non-monotonic scrape is repaired as PromQL does)."""
    out: list[int] = []
    highest = 0
    for c in cumulative:
        value = max(highest, round(c))
        out.append(value - highest)
        highest = value
    return out


def data_point(h: CumulativeHistogram, attrs: Mapping[str, Any], time: float) -> HistogramDataPoint:
    counts = bucket_counts(h.cumulative)
    return HistogramDataPoint(
        attributes=dict(attrs),
        start_time_unix_nano=int(h.start_time * 1e9),
        time_unix_nano=int(time * 1e9),
        count=sum(counts),
        sum=h.sum if math.isfinite(h.sum) else 0.0,
        bucket_counts=counts,
        explicit_bounds=list(h.bounds[:-1]),  # vLLM's last bound is +Inf: OTLP's overflow bucket
        # min and max are unknown from buckets: None leaves the optional proto fields unset
        min=None,  # type: ignore[arg-type]  # the SDK's dataclass types it float, its exporter accepts None
        max=None,  # type: ignore[arg-type]  # (as for min)
    )


def genai_histograms(state: FleetState) -> list[Metric]:
    """One OTLP histogram metric per semantic-convention name with a point for each model × endpoint."""
    targets = {t.endpoint: t for t in state.targets}
    metrics: list[Metric] = []
    for canonical, spec in GENAI_HISTOGRAMS.items():
        points = []
        for s in state.signals:
            h = s.histograms.get(canonical)
            if h is None or len(h.bounds) < 1 or not math.isinf(h.bounds[-1]):
                continue
            points.append(data_point(h, point_attributes(s, targets.get(s.attribution.endpoint)), state.time))
        if points:
            metrics.append(Metric(spec.name, spec.description, spec.unit,
                                  Histogram(points, AggregationTemporality.CUMULATIVE)))
    return metrics


def with_histograms(data: MetricsData, extra: Sequence[Metric], resource: Resource) -> MetricsData:
    """`data` with `extra` added to its `llmobs` scope (created, with the resource, if the export had none)."""
    if not extra:
        return data
    scope = InstrumentationScope(SCOPE, __version__)
    rms = list(data.resource_metrics)
    if not rms:
        return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, list(extra), "")], "")])
    first = rms[0]
    scopes = list(first.scope_metrics)
    at = next((i for i, sm in enumerate(scopes) if sm.scope.name == SCOPE), None)
    if at is None:
        scopes.append(ScopeMetrics(scope, list(extra), ""))
    else:
        sm = scopes[at]
        scopes[at] = ScopeMetrics(sm.scope, [*sm.metrics, *extra], sm.schema_url)
    rms[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
    return MetricsData(rms)


class GenAIHistogramExporter(MetricExporter):
    """Wraps an OTLP metric exporter: each export also carries the current state's GenAI histograms."""

    def __init__(self, inner: MetricExporter, holder: StateHolder, resource: Resource) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self.inner = inner
        self._holder = holder
        self._resource = resource

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        data = with_histograms(metrics_data, genai_histograms(self._holder.current), self._resource)
        return self.inner.export(data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
