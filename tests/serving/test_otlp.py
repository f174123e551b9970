"""OTLP export against real OTLP receivers run in-process on loopback.

The receivers are the protocol's own services built from `opentelemetry-proto`: a gRPC
`MetricsService/Export` server and a Starlette `POST /v1/metrics` endpoint decoding HTTP/protobuf. The
test publishes a hand-built `FleetState` (every field set, so every family carries points), flushes the
SDK's real exporters over the sockets, and compares what arrived with the state and with what the
Prometheus collector renders for the same state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmobs import __version__
from llmobs.demo.fleet import default_fleet
from llmobs.runtime import serve_asgi
from llmobs.serving.collector import FleetCollector
from llmobs.serving.otlp import MAPPING, SKIPPED, Instrument, OtlpConfig, build_resource, start_otlp
from llmobs.serving.otlp_histograms import GENAI_HISTOGRAMS, genai_histograms
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.types import Attribution, CumulativeHistogram, Distribution, ModelEndpointSignals
from llmobs.sources.normalize import normalize
from llmobs.sources.textformat import parse_text
from llmobs.state import FleetState, StateHolder
from tests.conftest import REPO
from tests.factories import EMPTY_DISTRIBUTION, distribution, make_signals, make_state, make_target_health

NOW = 1_800_000_000.0
K8S_ENV = {"K8S_POD_NAME": "llmobs-7d9f-abcde", "K8S_NAMESPACE_NAME": "observability",
           "K8S_NODE_NAME": "cpu-node-1", "K8S_CLUSTER_NAME": "prod-eu"}


def dist(p50: float, p90: float, p99: float, mean: float) -> Distribution:
    return distribution(p50, p90, p99, mean, count=100.0)


def signals(model: str, endpoint: str, node: str, gpu: str, k: float) -> ModelEndpointSignals:
    """Every field set and distinct per endpoint (scaled by k) so a mix-up between series shows."""
    return make_signals(
        model, endpoint, node=node, gpu_model=gpu,
        kv_cache_utilization=0.4 * k, kv_cache_utilization_max=0.45 * k, kv_cache_capacity_tokens=200_000 * k,
        requests_running=8 * k, requests_waiting=3 * k, requests_waiting_by_reason={"capacity": 2 * k, "deferred": k},
        request_rate=2.5 * k, prompt_tokens_rate=1200 * k, generation_tokens_rate=300 * k,
        preemption_rate=0.05 * k, finished_rate_by_reason={"stop": 2 * k, "length": 0.5 * k},
        prefix_cache_hit_ratio=0.3 * k,
        ttft=dist(0.12 * k, 0.3 * k, 0.9 * k, 0.15 * k), itl=dist(0.02 * k, 0.03 * k, 0.05 * k, 0.021 * k),
        e2e_latency=dist(2 * k, 5 * k, 9 * k, 2.5 * k), queue_time=dist(0.01 * k, 0.1 * k, 0.4 * k, 0.03 * k),
        prompt_length=dist(500 * k, 1500 * k, 3000 * k, 700 * k),
        generation_length=dist(120 * k, 400 * k, 900 * k, 180 * k),
        lora_adapters_running=int(k),
        totals={"prompt_tokens": 1e6 * k, "generation_tokens": 2e5 * k, "preemptions": 7 * k,
                "ttft_slo_requests": 900 * k, "ttft_slo_good": 850 * k, "requests:stop": 800 * k,
                "requests:length": 100 * k},
    )


# llama-0's TTFT histogram as llmobs holds it: le-cumulative at vLLM's bounds, counted since NOW - 600.
TTFT_HIST = CumulativeHistogram(bounds=(0.1, 0.5, 1.0, math.inf), cumulative=(3.0, 7.0, 9.0, 10.0), count=10.0,
                                sum=4.25, start_time=NOW - 600)


def fleet_state() -> FleetState:
    quiet = dataclasses.replace(signals("qwen", "qwen-0", "", "", 1.0), ttft=EMPTY_DISTRIBUTION)
    llama0 = dataclasses.replace(signals("llama", "llama-0", "gpu-a", "H100", 1.0), histograms={"ttft": TTFT_HIST})
    return make_state(
        llama0, signals("llama", "llama-1", "gpu-b", "H100", 2.0), quiet,
        time=NOW, window_seconds=60.0, cycle_duration_seconds=0.042,
        targets=(
            make_target_health("llama-0", url="http://a/metrics", last_scrape_time=NOW, errors_by_kind={"timeout": 2},
                               labels={"node": "gpu-a", "gpu_model": "H100"}, skipped_lines={"bad_line": 1},
                               last_success_time=NOW, counter_resets=1),
            make_target_health("llama-1", url="http://b/metrics", last_scrape_time=NOW, scrape_duration_seconds=0.02,
                               labels={"node": "gpu-b", "gpu_model": "H100"},
                               missing_series=("vllm:prefix_cache_hits_total",), last_success_time=NOW),
            make_target_health("qwen-0", url="http://c/metrics", up=False, last_scrape_time=NOW,
                               scrape_duration_seconds=3.0, last_error="timed out", last_error_kind="timeout",
                               consecutive_failures=4, errors_by_kind={"timeout": 4}),
        ),
    )


# --- the receivers -----------------------------------------------------------------------------------------


class Received:
    """Requests a receiver got; `wait()` blocks until one arrives."""

    def __init__(self) -> None:
        self.requests: list[pb.ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self._event = threading.Event()

    def add(self, request: pb.ExportMetricsServiceRequest, headers: dict[str, str]) -> None:
        self.requests.append(request)
        self.headers.append(headers)
        self._event.set()


class MetricsReceiver(pb_grpc.MetricsServiceServicer):
    """The OTLP/gRPC collector service, storing what it is sent."""

    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: pb.ExportMetricsServiceRequest, context: grpc.ServicerContext
               ) -> pb.ExportMetricsServiceResponse:
        self.received.add(request, {k: v for k, v in context.invocation_metadata()})
        return pb.ExportMetricsServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_MetricsServiceServicer_to_server(MetricsReceiver(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", received
    server.stop(grace=None)


@pytest.fixture
async def http_receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()

    async def v1_metrics(request: Request) -> Response:
        if request.headers.get("content-type") != "application/x-protobuf":
            return Response(status_code=415)
        msg = pb.ExportMetricsServiceRequest()
        msg.ParseFromString(await request.body())
        received.add(msg, dict(request.headers))
        return Response(pb.ExportMetricsServiceResponse().SerializeToString(),
                        media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/metrics", v1_metrics, methods=["POST"])])
    server, task, port = await serve_asgi(app, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}", received
    server.should_exit = True
    await task


# --- decoding ----------------------------------------------------------------------------------------------


def _value(kv: KeyValue) -> Any:
    which = kv.value.WhichOneof("value")
    assert which is not None, f"attribute {kv.key} has no value"
    return getattr(kv.value, which)


def points(request: pb.ExportMetricsServiceRequest) -> dict[str, dict[str, Any]]:
    """metric name → {kind, unit, temporality, monotonic, points: {frozenset(attrs): value}}."""
    out: dict[str, dict[str, Any]] = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                entry = out.setdefault(m.name, {"kind": kind, "unit": m.unit, "points": {}})
                if kind == "sum":
                    entry["temporality"] = data.aggregation_temporality
                    entry["monotonic"] = data.is_monotonic
                if kind == "histogram":
                    entry["temporality"] = data.aggregation_temporality
                for dp in data.data_points:
                    attrs = frozenset((kv.key, _value(kv)) for kv in dp.attributes)
                    if kind == "histogram":
                        entry["points"][attrs] = dp
                    else:
                        entry["points"][attrs] = dp.as_double if dp.HasField("as_double") else float(dp.as_int)
    return out


def resource_of(request: pb.ExportMetricsServiceRequest) -> dict[str, Any]:
    return {kv.key: _value(kv) for kv in request.resource_metrics[0].resource.attributes}


def A(**kw: str) -> frozenset[tuple[str, str]]:
    """Attribute set from keyword arguments (dots spelt as double underscores)."""
    return frozenset((k.replace("__", "."), v) for k, v in kw.items())


LLAMA0 = {"gen_ai__request__model": "llama", "llmobs__endpoint": "llama-0", "k8s__node__name": "gpu-a",
          "llmobs__gpu_model": "H100"}


async def export_once(endpoint: str, protocol: str, received: Received, monkeypatch: pytest.MonkeyPatch,
                      **extra: Any) -> pb.ExportMetricsServiceRequest:
    for k, v in K8S_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    holder = StateHolder()
    holder.publish(fleet_state())
    config = OtlpConfig(enabled=True, endpoint=endpoint, protocol=protocol, export_interval_seconds=3600,
                        export_timeout_seconds=5, **extra)
    handle = start_otlp(config, holder)
    try:
        assert await asyncio.to_thread(handle.force_flush, 10.0)
    finally:
        await asyncio.to_thread(handle.shutdown)
    assert received.requests, "the receiver got nothing"
    return received.requests[0]


def check_request(request: pb.ExportMetricsServiceRequest) -> None:
    """The shared assertions for both transports."""
    res = resource_of(request)
    assert res["service.name"] == "llmobs" and res["service.version"] == __version__
    assert {k: res[a] for k, a in [("K8S_POD_NAME", "k8s.pod.name"), ("K8S_NAMESPACE_NAME", "k8s.namespace.name"),
                                   ("K8S_NODE_NAME", "k8s.node.name"), ("K8S_CLUSTER_NAME", "k8s.cluster.name")]} \
        == K8S_ENV
    assert request.resource_metrics[0].scope_metrics[0].scope.name == "llmobs"
    got = points(request)
    state = fleet_state()
    llama0, llama1 = state.signals[0], state.signals[1]

    kv = got["llmobs.kv_cache.utilization"]
    assert kv["kind"] == "gauge" and kv["unit"] == "1"
    assert kv["points"][A(**LLAMA0)] == pytest.approx(llama0.kv_cache_utilization)
    # unknown node/GPU (empty Prometheus label) → attribute absent, not ""
    assert kv["points"][A(gen_ai__request__model="qwen", llmobs__endpoint="qwen-0")] == pytest.approx(0.4)

    ttft = got["llmobs.time_to_first_token"]
    assert ttft["unit"] == "s"
    for q, label in ((0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")):
        assert ttft["points"][A(**LLAMA0, llmobs__quantile=label)] == pytest.approx(llama0.ttft.quantiles[q])
    # a window with no TTFT observation (NaN in Prometheus) sends no point at all
    assert not any(("llmobs.endpoint", "qwen-0") in attrs for attrs in ttft["points"])

    rate = got["llmobs.token.rate"]["points"]
    assert rate[A(**LLAMA0, gen_ai__token__type="input")] == pytest.approx(llama0.prompt_tokens_rate)
    assert rate[A(**LLAMA0, gen_ai__token__type="output")] == pytest.approx(llama0.generation_tokens_rate)

    tokens = got["llmobs.tokens"]
    assert tokens["kind"] == "sum" and tokens["monotonic"] is True
    assert tokens["temporality"] == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    llama1_attrs = {"gen_ai__request__model": "llama", "llmobs__endpoint": "llama-1", "k8s__node__name": "gpu-b",
                    "llmobs__gpu_model": "H100"}
    assert tokens["points"][A(**llama1_attrs, gen_ai__token__type="input")] == llama1.totals["prompt_tokens"]

    finished = got["llmobs.requests"]["points"]
    assert finished[A(**LLAMA0, llmobs__finish_reason="stop")] == llama0.totals["requests:stop"]
    by_reason = got["llmobs.request.finished.rate"]["points"]
    assert by_reason[A(**LLAMA0, llmobs__finish_reason="length")] == pytest.approx(0.5)

    errors = got["llmobs.scrape.errors"]
    assert errors["kind"] == "sum"
    assert errors["points"][A(llmobs__endpoint="qwen-0", error__type="timeout")] == 4
    up = got["llmobs.target.up"]["points"]
    assert up[A(llmobs__endpoint="qwen-0")] == 0 and up[A(llmobs__endpoint="llama-1", k8s__node__name="gpu-b",
                                                          llmobs__gpu_model="H100")] == 1
    assert got["llmobs.signal_window"]["points"][frozenset()] == 60.0

    # the GenAI semantic-convention histogram, in the same request and scope, next to the llmobs.* gauges
    assert len(request.resource_metrics) == 1 and len(request.resource_metrics[0].scope_metrics) == 1
    hist = got["gen_ai.server.time_to_first_token"]
    assert hist["kind"] == "histogram" and hist["unit"] == "s"
    assert hist["temporality"] == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    (attrs, dp), = hist["points"].items()
    assert dict(attrs) == {"gen_ai.provider.name": "vllm", "gen_ai.request.model": "llama",
                           "llmobs.endpoint": "llama-0", "k8s.node.name": "gpu-a", "llmobs.gpu_model": "H100",
                           "server.address": "a", "server.port": 80}
    assert list(dp.explicit_bounds) == [0.1, 0.5, 1.0] and list(dp.bucket_counts) == [3, 4, 2, 1]
    assert (dp.count, dp.sum) == (10, 4.25) and not dp.HasField("min") and not dp.HasField("max")
    assert (dp.start_time_unix_nano, dp.time_unix_nano) == (int((NOW - 600) * 1e9), int(NOW * 1e9))
    # no state carries the other two histograms, so no empty metric is sent for them
    assert "gen_ai.server.request.duration" not in got and "gen_ai.server.time_per_output_token" not in got


def test_every_prometheus_sample_arrives_with_its_value() -> None:
    """Complete and lossless: each non-NaN Prometheus sample is one OTLP point with the same value."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

    holder = StateHolder()
    holder.publish(fleet_state())
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    from llmobs.serving.otlp import register_instruments

    register_instruments(provider, holder)
    data = reader.get_metrics_data()
    assert data is not None
    sent: dict[str, dict[frozenset[tuple[str, Any]], float]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                sent[m.name] = {}
                for dp in m.data.data_points:
                    assert isinstance(dp, NumberDataPoint) and dp.attributes is not None
                    sent[m.name][frozenset(dp.attributes.items())] = dp.value
    expected = 0
    families = list(FleetCollector(holder).collect())
    for family in families:
        if family.name in SKIPPED:
            continue
        inst = MAPPING[family.name]
        values = sorted(s.value for s in family.samples if not math.isnan(s.value))
        constant = set(inst.constant.items())
        got = sorted(v for attrs, v in sent.get(inst.name, {}).items() if constant <= attrs)
        assert got == pytest.approx(values), family.name
        expected += len(values)
    assert sum(len(p) for p in sent.values()) == expected
    provider.shutdown()


def test_mapping_covers_every_prometheus_family() -> None:
    """A new llmobs_* family without an OTLP mapping fails here, not silently in production."""
    holder = StateHolder()
    holder.publish(fleet_state())
    names = {f.name for f in FleetCollector(holder).collect()}
    assert names - set(MAPPING) == set(SKIPPED)
    assert set(MAPPING) <= names
    shared: dict[str, Instrument] = {}
    for prom, inst in MAPPING.items():
        prev = shared.setdefault(inst.name, inst)
        assert (prev.kind, prev.unit) == (inst.kind, inst.unit), f"{prom}: one OTel name, two shapes"
        assert inst.name.startswith("llmobs.") and "_total" not in inst.name and not inst.name.endswith("_seconds")


async def test_grpc_export(grpc_receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, received = grpc_receiver
    request = await export_once(endpoint, "grpc", received, monkeypatch, headers={"x-tenant": "team-a"})
    check_request(request)
    assert received.headers[0]["x-tenant"] == "team-a"


async def test_http_protobuf_export(http_receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, received = http_receiver
    request = await export_once(endpoint, "http/protobuf", received, monkeypatch,
                                headers={"authorization": "Bearer t0k"},
                                resource_attributes={"deployment.environment.name": "prod"})
    check_request(request)
    assert received.headers[0]["authorization"] == "Bearer t0k"
    assert resource_of(request)["deployment.environment.name"] == "prod"


def test_config_validation_and_resource_precedence() -> None:
    with pytest.raises(ValidationError, match="must start with http"):
        OtlpConfig(endpoint="collector:4317")
    with pytest.raises(ValidationError, match="extra"):
        OtlpConfig.model_validate({"endpoit": "http://x:4317"})
    assert OtlpConfig(endpoint="http://c:4318").http_url() == "http://c:4318/v1/metrics"
    assert OtlpConfig(endpoint="http://c:4318/otlp/v1/metrics/").http_url() == "http://c:4318/otlp/v1/metrics"
    res = build_resource(OtlpConfig(service_name="llmobs-eu"), {"OTEL_SERVICE_NAME": "from-env",
                                                                "K8S_POD_UID": "uid-1", "K8S_NODE_NAME": ""})
    assert res.attributes["service.name"] == "from-env" and res.attributes["k8s.pod.uid"] == "uid-1"
    assert "k8s.node.name" not in res.attributes


async def test_headers_from_the_environment(grpc_receiver: tuple[str, Received],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With no `headers` in the config, the SDK's OTEL_EXPORTER_OTLP_METRICS_HEADERS applies: the chart sets
    it from a Secret so tokens never sit in the ConfigMap."""
    endpoint, received = grpc_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-tenant=from-secret")
    await export_once(endpoint, "grpc", received, monkeypatch)
    assert received.headers[0]["x-tenant"] == "from-secret"


def test_docs_list_every_mapping() -> None:
    """docs/otlp.md's mapping table names every Prometheus family with its OTLP metric and unit."""

    doc = (REPO / "docs" / "otlp.md").read_text()
    for prom, inst in MAPPING.items():
        suffix = "_total" if inst.kind == "counter" else ""
        assert f"| `{prom}{suffix}` | `{inst.name}` |" in doc and f"| `{inst.unit}` |" in doc, prom


# --- GenAI semantic-convention histograms from real pages -----------------------------------------------

SEMCONV_SERIES = {"ttft": "vllm:time_to_first_token_seconds", "tpot": "vllm:request_time_per_output_token_seconds",
                  "e2e_latency": "vllm:e2e_request_latency_seconds"}
DEMO_MODEL, DEMO_REPLICA = "llama-3.1-8b-instruct", "llama-3.1-8b-instruct-0"


def page_histogram(page: str, series: str) -> tuple[list[float], list[float], float, float]:
    """(bounds, le-cumulative, count, sum) of one histogram on a page, read straight from its samples."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for sample in parse_text(page).samples:
        if sample.labels.get("model_name") != DEMO_MODEL:
            continue
        if sample.name == f"{series}_bucket":
            le = float(sample.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + sample.value
        elif sample.name == f"{series}_count":
            count += sample.value
        elif sample.name == f"{series}_sum":
            total += sample.value
    bounds = sorted(buckets)
    return bounds, [buckets[b] for b in bounds], count, total


def per_bucket(cumulative: list[float]) -> list[int]:
    return [round(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]


class DemoWindow:
    """One demo-fleet replica scraped by a real tracker; `export()` is what OTLP would carry now."""

    def __init__(self) -> None:
        self.fleet = default_fleet(speedup=20.0)
        self.t0 = time.time()
        self.tracker = ModelEndpointTracker(Attribution(DEMO_MODEL, DEMO_REPLICA, "gpu-node-a"), 60.0)
        self.pages: dict[float, str] = {}
        self.now = self.t0

    def scrape(self, at: float, edit: Any = None) -> str:
        page = self.fleet.page(DEMO_REPLICA, self.t0 + at)
        page = edit(page) if edit else page
        self.now = self.t0 + at
        self.tracker.observe(normalize(parse_text(page).samples, time=self.now).models[DEMO_MODEL], self.now)
        self.pages[at] = page
        return page

    def export(self) -> dict[str, Any]:
        s = self.tracker.signals()
        assert s is not None
        target = make_target_health(DEMO_REPLICA, url="http://vllm-llama-0.inference.svc:8000/metrics",
                                    last_scrape_time=self.now,
                                    labels={"namespace": "inference", "pod": "vllm-llama-0", "node": "gpu-node-a"})
        metrics = genai_histograms(make_state(s, targets=(target,), time=self.now))
        for m in metrics:
            assert m.data.aggregation_temporality.name == "CUMULATIVE" and m.unit == "s"
        return {m.name: m.data.data_points[0] for m in metrics}


def test_semconv_histograms_are_the_pages_buckets_summed_over_the_scraped_window() -> None:
    demo = DemoWindow()
    for at in (30.0, 60.0, 90.0):
        demo.scrape(at)
    got = demo.export()
    assert set(got) == {spec.name for spec in GENAI_HISTOGRAMS.values()}
    for canonical, series in SEMCONV_SERIES.items():
        dp = got[GENAI_HISTOGRAMS[canonical].name]
        bounds, first, count0, sum0 = page_histogram(demo.pages[30.0], series)
        bounds_last, last, count1, sum1 = page_histogram(demo.pages[90.0], series)
        assert bounds == bounds_last and math.isinf(bounds[-1])
        assert list(dp.explicit_bounds) == bounds[:-1], canonical
        assert list(dp.bucket_counts) == per_bucket([b - a for a, b in zip(first, last, strict=True)]), canonical
        assert dp.count == round(count1 - count0) > 0, canonical  # a window that saw requests
        assert dp.sum == pytest.approx(sum1 - sum0), canonical
        assert sum(dp.bucket_counts) == dp.count
        assert dp.start_time_unix_nano == int((demo.t0 + 30.0) * 1e9)
        assert dp.time_unix_nano == int((demo.t0 + 90.0) * 1e9)
        assert dp.attributes == {"gen_ai.provider.name": "vllm", "gen_ai.request.model": DEMO_MODEL,
                                 "llmobs.endpoint": DEMO_REPLICA, "k8s.node.name": "gpu-node-a",
                                 "server.address": "vllm-llama-0.inference.svc", "server.port": 8000,
                                 "k8s.namespace.name": "inference", "k8s.pod.name": "vllm-llama-0"}


def test_a_vllm_restart_keeps_cumulative_counts_rising_and_a_new_layout_starts_a_new_series() -> None:
    demo = DemoWindow()
    demo.scrape(30.0)
    demo.scrape(90.0)
    before = demo.export()
    demo.fleet.replica(DEMO_REPLICA).restart(demo.t0 + 91.0)  # vLLM restarts: its counters start again at 0
    demo.scrape(96.0)  # soon enough that vLLM's new counts are below the old ones, as after any real restart
    after = demo.export()
    for canonical, series in SEMCONV_SERIES.items():
        name = GENAI_HISTOGRAMS[canonical].name
        old, new = before[name], after[name]
        assert new.start_time_unix_nano == old.start_time_unix_nano  # same series: counts must not drop
        assert new.count >= old.count and all(b >= a for a, b in zip(old.bucket_counts, new.bucket_counts,
                                                                      strict=True)), canonical
        # what vLLM counted since its restart is added on top of the window before it
        _, restarted, count_r, _ = page_histogram(demo.pages[96.0], series)
        assert count_r < page_histogram(demo.pages[90.0], series)[2]
        assert new.count == old.count + round(count_r), canonical
        assert list(new.bucket_counts) == [a + b for a, b in zip(old.bucket_counts, per_bucket(restarted),
                                                                  strict=True)]
    ttft_before = after[GENAI_HISTOGRAMS["ttft"].name]

    # vLLM back with other TTFT buckets: that series restarts (new start time, counting from this scrape)
    def drop_a_ttft_bucket(page: str) -> str:
        return re.sub(r'^vllm:time_to_first_token_seconds_bucket\{[^}]*le="0\.005"[^}]*\} .*\n', "", page,
                      flags=re.MULTILINE)

    demo.scrape(120.0, drop_a_ttft_bucket)
    relaid = demo.export()
    ttft = relaid[GENAI_HISTOGRAMS["ttft"].name]
    assert 0.005 in ttft_before.explicit_bounds and 0.005 not in ttft.explicit_bounds
    assert ttft.start_time_unix_nano == int((demo.t0 + 120.0) * 1e9) and ttft.count == 0
    e2e = relaid[GENAI_HISTOGRAMS["e2e_latency"].name]
    assert e2e.start_time_unix_nano == int((demo.t0 + 30.0) * 1e9)
    assert e2e.count >= after[GENAI_HISTOGRAMS["e2e_latency"].name].count
