"""OTLP metrics export: the exporter's `llmobs_*` families pushed to an OpenTelemetry collector.

Why a translation of the Prometheus collector rather than a second set of getters: the OTLP numbers must be
the Prometheus numbers (dashboards built on either agree), so each export cycle runs `FleetCollector` once
on the current `FleetState` and re-labels its samples through `MAPPING`, a table from Prometheus family to
OTel instrument. A family missing from the table is a test failure (tests/serving/test_otlp.py), so a new
`llmobs_*` series cannot silently stay Prometheus-only. The table is built from the metric catalogue
(llmobs.metrics_catalogue): each row's `otlp` column gives the OTel name and attribute renames, its unit and
help give the instrument's unit and description.

Names follow OTel conventions (dotted, unit in the `unit` field, no `_total`/unit suffixes) and use the GenAI
and Kubernetes semantic-convention *attributes* where they exist (`gen_ai.request.model`,
`gen_ai.token.type`, `k8s.node.name`, `error.type`). The `llmobs.*` latency instruments are window
quantiles (gauges), which no semantic-convention metric describes.

In addition, vLLM's latency histograms go out as the GenAI semantic-convention server *metrics*
(`gen_ai.server.time_to_first_token`, `gen_ai.server.time_per_output_token`,
`gen_ai.server.request.duration`): OTLP cumulative histograms with vLLM's own buckets, counted since llmobs
started each series. llmobs.serving.otlp_histograms builds them and says why they travel through an
exporter wrapper rather than SDK instruments.

`start_otlp(config, holder)` builds a private `MeterProvider` (never the global one: tests and embedding
processes own their providers) with a periodic reader and a gRPC or HTTP/protobuf OTLP exporter, wrapped so
every export also carries the semantic-convention histograms.
"""

from __future__ import annotations

import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from llmobs import __version__
from llmobs.metrics_catalogue import MetricSpec, Otlp, section
from llmobs.serving.collector import FleetCollector
from llmobs.serving.otlp_config import OtlpConfig
from llmobs.serving.otlp_histograms import GenAIHistogramExporter
from llmobs.state import StateHolder

Kind = Literal["gauge", "counter"]

# Prometheus label → OTel attribute, for labels that mean the same thing in every family.
COMMON_ATTRIBUTES: dict[str, str] = {
    "model": "gen_ai.request.model",
    "endpoint": "llmobs.endpoint",
    "node": "k8s.node.name",
    "gpu_model": "llmobs.gpu_model",
    "quantile": "llmobs.quantile",
}


@dataclass(frozen=True, slots=True)
class Instrument:
    """Where one Prometheus family goes: OTel name, unit, kind, label renames and constant attributes."""

    name: str
    unit: str
    kind: Kind
    description: str
    labels: Mapping[str, str] = field(default_factory=dict)  # family-specific label → attribute renames
    constant: Mapping[str, str] = field(default_factory=dict)  # attributes added to every point


def _instrument(spec: MetricSpec, otlp: Otlp) -> Instrument:
    if spec.type == "histogram":  # no catalogue histogram is pushed over OTLP (its rows have no `otlp`)
        raise ValueError(f"{spec.name}: histogram rows are not mapped to OTLP instruments")
    return Instrument(otlp.name, spec.unit, spec.type, otlp.description or spec.help,
                      labels=dict(otlp.labels), constant=dict(otlp.constant))


_EXPORTED = (*section("target"), *section("serving"), *section("exporter"), *section("door"))
"""The catalogue rows FleetCollector renders."""

MAPPING: dict[str, Instrument] = {s.family_name: _instrument(s, s.otlp) for s in _EXPORTED if s.otlp is not None}
"""Prometheus family name → OTel instrument, from the metric catalogue's `otlp` column."""
SKIPPED: frozenset[str] = frozenset(s.family_name for s in _EXPORTED if s.otlp is None)
"""Families not exported as metrics: the build version is the resource's `service.version`; the door series
(`llmobs_door_*`) have no OTLP names yet."""

# Resource attributes read from the environment (set by the Helm chart through the downward API).
K8S_ENV: dict[str, str] = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_POD_UID": "k8s.pod.uid",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
    "K8S_CLUSTER_NAME": "k8s.cluster.name",
    "K8S_DEPLOYMENT_NAME": "k8s.deployment.name",
    "K8S_CONTAINER_NAME": "k8s.container.name",
}


def build_resource(config: OtlpConfig, environ: Mapping[str, str] | None = None) -> Resource:
    """`service.*` plus `k8s.*` from the environment; OTEL_RESOURCE_ATTRIBUTES/OTEL_SERVICE_NAME still apply."""
    env = os.environ if environ is None else environ
    attrs: dict[str, str] = {"service.name": env.get("OTEL_SERVICE_NAME") or config.service_name,
                             "service.version": __version__}
    attrs.update({attr: env[var] for var, attr in K8S_ENV.items() if env.get(var)})
    attrs.update(config.resource_attributes)
    return Resource.create(attrs)


def _attributes(labels: Mapping[str, str], inst: Instrument) -> dict[str, str]:
    """Prometheus labels → OTel attributes; empty label values (unknown node, GPU) are left out."""
    out = dict(inst.constant)
    for label, value in labels.items():
        if value == "":
            continue
        out[inst.labels.get(label) or COMMON_ATTRIBUTES.get(label) or f"llmobs.{label}"] = value
    return out


class _Translator:
    """Runs FleetCollector once per published state and hands each OTel instrument its points."""

    def __init__(self, holder: StateHolder) -> None:
        self._collector = FleetCollector(holder)
        self._holder = holder
        self._lock = threading.Lock()
        self._state: object = None
        self._points: dict[str, list[Observation]] = {}

    def points(self, otel_name: str) -> list[Observation]:
        state = self._holder.current
        with self._lock:
            if state is not self._state:
                self._points = self._translate()
                self._state = state
            return self._points.get(otel_name, [])

    def _translate(self) -> dict[str, list[Observation]]:
        out: dict[str, list[Observation]] = defaultdict(list)
        for family in self._collector.collect():
            inst = MAPPING.get(family.name)
            if inst is None:
                continue
            for sample in family.samples:
                if sample.name.endswith("_created") or math.isnan(sample.value):
                    continue  # NaN = no observation in the window: OTLP gets no point rather than NaN
                out[inst.name].append(Observation(sample.value, _attributes(sample.labels, inst)))
        return out


@dataclass
class OtlpHandle:
    """A running OTLP export; `shutdown()` flushes the last export and stops the reader thread."""

    provider: MeterProvider
    config: OtlpConfig

    def force_flush(self, timeout_seconds: float = 10.0) -> bool:
        return self.provider.force_flush(timeout_millis=int(timeout_seconds * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _exporter(config: OtlpConfig) -> MetricExporter:
    timeout = config.export_timeout_seconds
    headers = dict(config.headers) or None
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        credentials = None
        if config.ca_file is not None:
            import grpc

            credentials = grpc.ssl_channel_credentials(root_certificates=config.ca_file.read_bytes())
        return GrpcExporter(endpoint=config.endpoint, insecure=config.endpoint.startswith("http://"),
                            credentials=credentials, headers=headers, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return HttpExporter(endpoint=config.http_url(), headers=headers, timeout=timeout,
                        certificate_file=str(config.ca_file) if config.ca_file else None)


def register_instruments(provider: MeterProvider, holder: StateHolder) -> list[str]:
    """Create one observable instrument per OTel name in MAPPING on `provider`; returns the names."""
    meter = provider.get_meter("llmobs", __version__)
    translator = _Translator(holder)
    by_name: dict[str, Instrument] = {}
    for inst in MAPPING.values():
        by_name.setdefault(inst.name, inst)

    def callback(name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        return lambda _options: translator.points(name)

    for name, inst in by_name.items():
        create = meter.create_observable_gauge if inst.kind == "gauge" else meter.create_observable_counter
        create(name, callbacks=[callback(name)], unit=inst.unit, description=inst.description)
    return list(by_name)


def start_otlp(config: OtlpConfig, holder: StateHolder, exporter: MetricExporter | None = None) -> OtlpHandle:
    """Start periodic OTLP export of `holder`'s signals; `exporter` replaces the configured one (tests)."""
    resource = build_resource(config)
    reader = PeriodicExportingMetricReader(
        GenAIHistogramExporter(exporter or _exporter(config), holder, resource),
        export_interval_millis=config.export_interval_seconds * 1000,
        export_timeout_millis=config.export_timeout_seconds * 1000,
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    register_instruments(provider, holder)
    return OtlpHandle(provider, config)
