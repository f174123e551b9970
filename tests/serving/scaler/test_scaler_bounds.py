"""Numbers KEDA and the HPA cannot carry: a target or a value past what their int64 fields hold.

GetMetricSpec's `targetSize` and GetMetrics' `metricValue` are protobuf int64, and KEDA turns the float fields
into int64 thousandths. A `target: "9.3e18"` used to fail GetMetricSpec as UNKNOWN (an encoder ValueError) —
and a failing GetMetricSpec is the one failure KEDA's fallback never covers — so the operator must get
INVALID_ARGUMENT naming the key and its range; a runaway signal must still answer, clamped, not fail."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from starlette.applications import Starlette

from llmobs.serving.scaler import serve_scaler
from llmobs.serving.scaler.cache import MAX_VALUE, SignalCache, build_snapshot
from llmobs.serving.scaler.metadata import MAX_TARGET, MetadataError, parse_metadata
from llmobs.serving.scaler.metrics_api import PATH, metrics_api_routes
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.state import StateHolder
from tests.serving.scaler.test_scaler_grpc import channel_to, publish, ref, scaler_config

HUGE = ["9.3e18", "1e20", "1e300"]


@pytest.mark.parametrize("raw", HUGE)
@pytest.mark.parametrize("key", ["target", "activationTarget"])
def test_a_target_past_int64_thousandths_is_refused_naming_the_key_and_range(key: str, raw: str) -> None:
    with pytest.raises(MetadataError) as e:
        parse_metadata({"model": "m", key: raw})
    assert e.value.key == key and "out of range" in str(e.value) and f"{MAX_TARGET:g}" in str(e.value)


def test_the_largest_allowed_target_still_parses() -> None:
    assert parse_metadata({"model": "m", "target": "1e15"}).target == MAX_TARGET


@pytest.mark.parametrize("raw", HUGE)
async def test_grpc_spec_calls_answer_invalid_argument_not_unknown(raw: str) -> None:
    holder = StateHolder()
    handle = await serve_scaler(scaler_config("aio"), holder, interval_seconds=0.1)
    try:
        async with channel_to(handle) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            meta = ref({"model": "m", "target": raw})
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.GetMetricSpec(meta, timeout=3)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'target'" in e.value.details()
            stream = stub.StreamMetricSpec(meta, timeout=3)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stream.read()
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of range" in e.value.details()
    finally:
        await handle.stop()


async def test_a_runaway_value_is_clamped_not_a_failed_call() -> None:
    holder = StateHolder()
    publish(holder, 1e19)  # a queue of 1e19: past int64, a broken counter rather than a real queue
    handle = await serve_scaler(scaler_config("aio", stale_after_intervals=100), holder, interval_seconds=0.1)
    try:
        async with channel_to(handle) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            await asyncio.sleep(0.1)
            reply = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref({"model": "m"})), timeout=3)
            [value] = reply.metricValues
            # KEDA reads int64(value × 1000): the clamp keeps that positive and ≥ 9 × any allowed target
            assert value.metricValueFloat == MAX_VALUE and value.metricValue == int(MAX_VALUE)
            assert value.metricValueFloat * 1000 < 2**63 and MAX_VALUE >= 9 * MAX_TARGET
            assert (await stub.IsActive(ref({"model": "m"}), timeout=3)).result is True
    finally:
        await handle.stop()


async def test_metrics_api_refuses_the_same_target_with_400() -> None:
    holder = StateHolder()
    publish(holder, 2)
    cache = SignalCache()
    cache.publish(build_snapshot(holder.current, stale_after=60))
    transport = httpx.ASGITransport(app=Starlette(routes=metrics_api_routes(cache)))
    async with httpx.AsyncClient(transport=transport, base_url="http://scaler") as client:
        bad = await client.get(PATH, params={"model": "m", "target": "1e20"})
        good = await client.get(PATH, params={"model": "m", "target": "4"})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_ARGUMENT"
    assert "'target'" in bad.json()["error"] and "out of range" in bad.json()["error"]
    assert good.status_code == 200 and good.json()["value"] == 2.0
