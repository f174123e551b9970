"""StreamIsActive for a model the scaler does not know yet stays open and silent (IsActive says NOT_FOUND),
and pushes as soon as the model shows up — the scale-from-zero path docs/keda-scaler.md describes: a model
at zero replicas becomes known through a door or its first scraped replica, and ending the stream with
NOT_FOUND would instead leave KEDA to reconnect after its back-off."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from llmobs.serving.scaler import serve_scaler
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.state import StateHolder
from tests.serving.scaler.test_scaler_grpc import channel_to, publish, ref, scaler_config


async def test_stream_for_an_unknown_model_waits_then_pushes_when_it_is_known() -> None:
    holder = StateHolder()
    publish(holder, 0, model="other")
    handle = await serve_scaler(scaler_config("aio", stale_after_intervals=100), holder, interval_seconds=0.1)
    try:
        async with channel_to(handle) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.IsActive(ref({"model": "m"}), timeout=3)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            stream = stub.StreamIsActive(ref({"model": "m"}))
            first = asyncio.ensure_future(stream.read())
            await asyncio.sleep(0.3)
            assert not first.done()  # open, nothing sent, no error
            publish(holder, 5, model="m")
            assert (await asyncio.wait_for(first, 5)).result is True
            stream.cancel()
    finally:
        await handle.stop()
