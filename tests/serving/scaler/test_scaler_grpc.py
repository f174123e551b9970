"""The scaler over real gRPC, called the way KEDA calls it, against live signals from the demo fleet.

A client generated from KEDA's externalscaler.proto replays KEDA's sequence per polling interval —
GetMetricSpec, then GetMetrics with the spec's name (KEDA strips its `s<index>-` prefix before calling),
then IsActive — each with KEDA's 3 s HPA deadline, and checks the answers against the `FleetState` the
exporter published. Also: error codes, StreamIsActive scale-from-zero timing, streams not starving
unary calls, health, metrics-api JSON and self-metrics on the exporter's HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import AsyncIterator

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.demo.fleet import ModelDeployment, SimulatedFleet, create_fleet_app, default_fleet
from llmobs.demo.replica import ReplicaSpec
from llmobs.demo.trace import RequestTrace
from llmobs.runtime import Exporter, serve_asgi, start_exporter
from llmobs.serving.app import create_app
from llmobs.serving.scaler import ScalerConfig, ScalerHandle, serve_scaler
from llmobs.serving.scaler.frontend import locate_binary
from llmobs.serving.scaler.metadata import strip_index_prefix
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.service import SNAPSHOT_VERSION_KEY
from llmobs.sources.targets import StaticTargetSource
from llmobs.state import FleetState, StateHolder
from tests.factories import make_signals, make_state, scraped_target

KEDA_DEADLINE = 3.0
INTERVAL = 0.3


def ref(meta: dict[str, str], name: str = "vllm", namespace: str = "llm") -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace=namespace,
                              scalerMetadata={"scalerAddress": "llmobs.monitoring:9401", **meta})


# `native` is the opt-in C++ front end: these run against it where it is built (`make native`), else skip.
ENGINES = ["aio", "native"]


def scaler_config(engine: str = "aio", **kwargs: object) -> ScalerConfig:
    if engine == "native" and locate_binary("llmobs-scaler-frontend") is None:
        pytest.skip("the opt-in native front end is not built (make native)")
    return ScalerConfig(host="127.0.0.1", port=0, engine=engine, **kwargs)  # type: ignore[arg-type]


async def keda_poll(stub: pb_grpc.ExternalScalerStub, meta: dict[str, str], index: int = 0
                    ) -> tuple[pb.MetricSpec, pb.GetMetricsResponse, bool, set[int]]:
    """One KEDA polling round for one trigger, as KEDA's external scaler client makes it; also returns the
    cache versions the value answers came from (the llmobs-snapshot-version trailer)."""
    r = ref(meta)
    spec = await stub.GetMetricSpec(r, timeout=KEDA_DEADLINE)
    [metric_spec] = spec.metricSpecs
    hpa_name = f"s{index}-{metric_spec.metricName}"  # what KEDA calls the metric towards the HPA
    metrics_call = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r, metricName=strip_index_prefix(hpa_name)),
                                   timeout=KEDA_DEADLINE)
    metrics = await metrics_call
    active_call = stub.IsActive(r, timeout=KEDA_DEADLINE)
    active = await active_call
    versions = {int(dict(await c.trailing_metadata())[SNAPSHOT_VERSION_KEY]) for c in (metrics_call, active_call)}
    return metric_spec, metrics, active.result, versions


@contextlib.asynccontextmanager
async def channel_to(handle: ScalerHandle) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
        yield channel


async def start_fleet_exporter(fleet: SimulatedFleet, interval: float) -> tuple[Exporter, asyncio.Task, object]:
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=interval, timeout_seconds=2),
                       signals=SignalsConfig(window_seconds=10), server=ServerConfig(host="127.0.0.1", port=0))
    exporter = await start_exporter(cfg, StaticTargetSource(fleet.targets(f"http://127.0.0.1:{fleet_port}")))
    return exporter, fleet_task, fleet_server


@pytest.fixture(params=ENGINES)
async def live(request):
    """Demo fleet → exporter → scaler (each engine), plus the exporter app with the metrics-api routes."""
    config = scaler_config(request.param, stale_after_intervals=50)  # generous: staleness has its own tests
    fleet = default_fleet(speedup=20.0)
    exporter, fleet_task, fleet_server = await start_fleet_exporter(fleet, INTERVAL)
    handle = await serve_scaler(config, exporter.holder, interval_seconds=INTERVAL, registry=exporter.registry)
    app = create_app(exporter.holder, exporter.registry, extra_routes=handle.routes())
    http_server, http_task, http_port = await serve_asgi(app, "127.0.0.1", 0)
    for _ in range(100):
        if len(exporter.holder.current.signals) == 3 and len(handle.cache.snapshot.models) == 2:
            break
        await asyncio.sleep(0.1)
    yield exporter, handle, f"http://127.0.0.1:{http_port}"
    http_server.should_exit = True
    await http_task
    await handle.stop()
    await exporter.stop()
    fleet_server.should_exit = True  # type: ignore[attr-defined]
    await fleet_task


def expected(state: FleetState, model: str, signal: str) -> float:
    rows = state.for_model(model)
    read = {"queue_depth": lambda s: s.requests_waiting, "requests_running": lambda s: s.requests_running,
            "kv_utilization": lambda s: s.kv_cache_utilization, "request_rate": lambda s: s.request_rate}[signal]
    values = [read(s) for s in rows]
    return sum(values) / len(values) if signal == "kv_utilization" else sum(values)


async def test_keda_sequence_against_live_demo_signals(live) -> None:
    exporter, handle, _ = live
    seen_rate = 0.0
    async with channel_to(handle) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        for model in ("llama-3.1-8b-instruct", "qwen2.5-coder-7b"):
            for signal in ("queue_depth", "requests_running", "kv_utilization", "request_rate"):
                meta = {"model": model, "signal": signal, "target": "2", "activationTarget": "0.5"}
                for _ in range(50):  # compare against the exact state the answer was computed from
                    before = handle.cache.snapshot
                    spec, metrics, active, versions = await keda_poll(stub, meta)
                    after = handle.cache.snapshot
                    state = exporter.holder.current
                    if versions == {before.version} == {after.version} and state.time == after.state_time:
                        break
                else:
                    pytest.fail("state changed under every attempt")
                assert spec.metricName.startswith(f"llmobs-{signal.replace('_', '-')}-")
                assert spec.targetSizeFloat == 2.0 and spec.targetSize == 2
                [mv] = metrics.metricValues  # the HPA sums every value: exactly one, the requested one
                assert mv.metricName == spec.metricName
                want = expected(state, model, signal)
                assert mv.metricValueFloat == pytest.approx(want, abs=1e-12)
                assert math.isfinite(mv.metricValueFloat) and mv.metricValueFloat >= 0
                assert mv.metricValue == round(want)
                assert active is (want > 0.5)
                if signal == "request_rate":
                    seen_rate += want
    assert seen_rate > 0  # the demo fleet is live: requests are finishing


async def test_bad_metadata_unknown_model_and_wrong_metric_name(live) -> None:
    _, handle, _ = live
    async with channel_to(handle) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        cases = [({"signal": "queue_depth"}, "'model'"), ({"model": "x", "signal": "gpu"}, "'signal'"),
                 ({"model": "x", "target": "ten"}, "'target'"), ({"model": "x", "activationTarget": "-1"},
                                                                 "'activationTarget'")]
        for meta, key in cases:
            for call in (stub.GetMetricSpec(ref(meta), timeout=KEDA_DEADLINE), stub.IsActive(ref(meta), timeout=3)):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and key in e.value.details()
            stream = stub.StreamIsActive(ref(meta), timeout=KEDA_DEADLINE)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stream.read()
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        unknown = ref({"model": "mistral-7b"})
        assert (await stub.GetMetricSpec(unknown, timeout=3)).metricSpecs[0].metricName  # static: still answers
        for call in (stub.IsActive(unknown, timeout=3),
                     stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=unknown), timeout=3)):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
        good = ref({"model": "qwen2.5-coder-7b"})
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=good, metricName="llmobs-queue-depth-other"),
                                  timeout=3)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "metricName" in e.value.details()
        specs = stub.StreamMetricSpec(good, timeout=KEDA_DEADLINE)
        first = await specs.read()  # sent at once on open, equal to GetMetricSpec (KEDA's rule for this RPC)
        assert first == await stub.GetMetricSpec(good, timeout=3)
        assert first.metricSpecs[0].metricName.startswith("llmobs-queue-depth-qwen2-5-coder-7b-")
        specs.cancel()


async def test_metrics_api_json_health_and_self_metrics(live) -> None:
    exporter, handle, base = live
    async with httpx.AsyncClient() as client:
        for _ in range(50):
            before = handle.cache.snapshot
            r = await client.get(f"{base}/api/v1/scaler/metrics",
                                 params={"model": "llama-3.1-8b-instruct", "signal": "requests_running"})
            if before.version == handle.cache.snapshot.version and exporter.holder.current.time == before.state_time:
                break
        assert r.status_code == 200
        body = r.json()
        assert body["value"] == pytest.approx(expected(exporter.holder.current, "llama-3.1-8b-instruct",
                                                       "requests_running"))
        assert body["metricName"].startswith("llmobs-requests-running-") and isinstance(body["active"], bool)
        bad = await client.get(f"{base}/api/v1/scaler/metrics", params={"model": "x", "signal": "gpu"})
        missing = await client.get(f"{base}/api/v1/scaler/metrics", params={"model": "mistral"})
        assert bad.status_code == 400 and "'signal'" in bad.json()["error"]
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
        # a metrics-api query is remembered as a trigger (the status page shows its answer), a bad one is not
        assert [(t.query.model, t.query.signal) for t in handle.triggers.items()] == [
            ("llama-3.1-8b-instruct", "requests_running")]
        async with channel_to(handle) as channel:
            await keda_poll(pb_grpc.ExternalScalerStub(channel), {"model": "qwen2.5-coder-7b"})
            checker = health_pb2_grpc.HealthStub(channel)
            for service in ("", "externalscaler.ExternalScaler"):
                reply = await checker.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        text = (await client.get(f"{base}/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["method"], s.labels["code"]): s.value for s in families["llmobs_scaler_requests"].samples
                if s.name.endswith("_total")}
    assert requests[("GetMetricSpec", "OK")] >= 1 and requests[("GetMetrics", "OK")] >= 1
    assert requests[("metrics-api", "INVALID_ARGUMENT")] == 1 and requests[("metrics-api", "NOT_FOUND")] == 1
    updated = {s.labels["model"]: s.value for s in families["llmobs_scaler_last_update_timestamp_seconds"].samples}
    assert set(updated) == {"llama-3.1-8b-instruct", "qwen2.5-coder-7b"}
    assert all(time.time() - v < 30 for v in updated.values())
    # The gRPC trigger polled above and the metrics-api's good query are remembered; its unknown model "mistral"
    # and its bad signal are not.
    assert families["llmobs_scaler_triggers"].samples[0].value == 2
    assert families["llmobs_scaler_trigger_evictions"].samples[0].value == 0


def publish(holder: StateHolder, waiting: float, *, model: str = "m", at: float | None = None) -> None:
    t = time.time() if at is None else at
    holder.publish(make_state(make_signals(model, f"{model}-0", requests_waiting=waiting),
                              targets=(scraped_target(f"{model}-0", t),), time=t))


@pytest.mark.parametrize("engine", ENGINES)
async def test_spec_needs_nothing_up_and_a_stuck_pipeline_turns_unavailable(engine: str) -> None:
    holder = StateHolder()  # nothing ever scraped
    handle = await serve_scaler(scaler_config(engine, stale_after_intervals=2), holder, interval_seconds=0.1)
    try:
        async with channel_to(handle) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            checker = health_pb2_grpc.HealthStub(channel)
            meta = ref({"model": "m"})
            assert (await stub.GetMetricSpec(meta, timeout=3)).metricSpecs[0].metricName == "llmobs-queue-depth-m"
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=meta), timeout=3)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            publish(holder, 3)
            await asyncio.sleep(0.1)
            assert (await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=meta), timeout=3)
                    ).metricValues[0].metricValueFloat == 3.0
            await asyncio.sleep(0.4)  # no publish for 2 intervals (0.2 s): the loop is "stuck"
            for call in (stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=meta), timeout=3),
                         stub.IsActive(meta, timeout=3)):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "old" in e.value.details()
            assert (await stub.GetMetricSpec(meta, timeout=3)).metricSpecs  # still static
            reply = await checker.Check(health_pb2.HealthCheckRequest(service="externalscaler.ExternalScaler"))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert (await checker.Check(health_pb2.HealthCheckRequest(service=""))).status == \
                health_pb2.HealthCheckResponse.SERVING
    finally:
        await handle.stop()


@pytest.mark.parametrize("engine", ENGINES)
async def test_stream_pushes_true_within_one_scrape_interval_of_a_queue_appearing(engine: str) -> None:
    """Scale from zero: an idle replica (false), then a queue builds; `true` must arrive within one
    scrape interval of the first published state that shows it."""
    interval = 0.5
    empty = RequestTrace("none", np.array([]), np.array([]), np.array([]))
    fleet = SimulatedFleet([ModelDeployment("scale-me", empty, replicas=1,
                                            spec=ReplicaSpec(kv_blocks=256, max_num_seqs=2))])
    config = scaler_config(engine, stale_after_intervals=50)
    exporter, fleet_task, fleet_server = await start_fleet_exporter(fleet, interval)
    handle = await serve_scaler(config, exporter.holder, interval_seconds=interval)
    try:
        async with channel_to(handle) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            for _ in range(100):
                if exporter.holder.current.signals:
                    break
                await asyncio.sleep(0.05)
            stream = stub.StreamIsActive(ref({"model": "scale-me", "signal": "queue_depth"}))
            first = await asyncio.wait_for(stream.read(), 5)
            assert first.result is False
            now = time.time()
            for _ in range(6):  # 2 run, 4 queue
                fleet.replica("scale-me-0").submit(now, 400, 4000)
            pushed = await asyncio.wait_for(stream.read(), 10)
            received = time.time()
            assert pushed.result is True
            queued = [p.time for p in exporter.holder.history("scale-me") if p.requests_waiting > 0]
            assert queued, "the queue never reached a published state"
            lag = received - queued[0]
            assert 0 <= lag <= interval, f"push arrived {lag:.3f} s after the queue was published"
            # From the queue appearing in vLLM: at most one interval until a scrape sees it, then the push.
            assert received - now <= 2 * interval
            assert (await stub.IsActive(ref({"model": "scale-me"}), timeout=3)).result is True
            fleet.replica("scale-me-0").restart(time.time())  # queue gone → the stream pushes false
            assert (await asyncio.wait_for(stream.read(), 10)).result is False
            stream.cancel()
            print(f"\npush lag after the queue was published: {lag * 1000:.0f} ms (scrape interval {interval} s)")
    finally:
        await handle.stop()
        await exporter.stop()
        fleet_server.should_exit = True  # type: ignore[attr-defined]
        await fleet_task


@pytest.mark.parametrize("engine", ENGINES)
async def test_sixteen_open_streams_do_not_starve_unary_calls(engine: str) -> None:
    holder = StateHolder()
    publish(holder, 0)
    handle = await serve_scaler(scaler_config(engine, stale_after_intervals=100), holder, interval_seconds=0.05)
    stop = asyncio.Event()

    async def flip() -> None:  # streams keep waking and pushing while the unary calls run
        n = 0
        while not stop.is_set():
            n += 1
            publish(holder, 5 if n % 2 else 0)
            await asyncio.sleep(0.05)

    flipper = asyncio.create_task(flip())
    try:
        async with channel_to(handle) as channel:  # one connection, like KEDA's
            stub = pb_grpc.ExternalScalerStub(channel)
            streams = [stub.StreamIsActive(ref({"model": "m"}, name=f"so-{i}")) for i in range(16)]
            for s in streams:
                await asyncio.wait_for(s.read(), 5)
            latencies = []
            r = ref({"model": "m"})
            for i in range(60):
                t0 = time.perf_counter()
                if i % 3 == 0:
                    await stub.GetMetricSpec(r, timeout=1)
                elif i % 3 == 1:
                    await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r), timeout=1)
                else:
                    await stub.IsActive(r, timeout=1)
                latencies.append(time.perf_counter() - t0)
            pushes = [await asyncio.wait_for(s.read(), 5) for s in streams]  # still alive and pushing
            assert len(pushes) == 16
            for s in streams:
                s.cancel()
    finally:
        stop.set()
        await flipper
        await handle.stop(grace=0.2)
    latencies.sort()
    p50, p90 = statistics.median(latencies), latencies[int(0.9 * len(latencies))]
    print(f"\n{engine}: unary with 16 open streams: p50 {p50 * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms, "
          f"max {latencies[-1] * 1000:.2f} ms")
    assert p50 < 0.05 and p90 < 0.05
