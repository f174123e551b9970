"""The ExternalScaler gRPC handlers (grpc.aio): look the trigger up, read the cache, answer. No I/O here.

How KEDA calls this (and why each rule below): GetMetricSpec at every polling interval and HPA sync for
every trigger, and when it fails KEDA's `fallback` never engages — so it is static (metadata only: no
state, no forecaster). GetMetrics comes with the name from GetMetricSpec (KEDA strips its `s<index>-`
prefix) and the HPA sums every MetricValue returned — so exactly one value, for the requested name.
KEDA reads the float fields when > 0 (milli precision) — so both float and int fields are set and the
float is never NaN/Inf/negative. IsActive alone decides 0↔1 (`value > activationTarget`).

Open streams (StreamIsActive, one per ScaledObject using `external-push`) are coroutines waiting on the
cache, so 16 or 1,000 of them never hold anything a unary call needs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeVar

import grpc

from llmobs.serving.scaler.cache import ScalerError, SignalCache, Snapshot, answer
from llmobs.serving.scaler.metadata import MetadataError, ScalerQuery, strip_index_prefix
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.stats import ScalerStats
from llmobs.serving.scaler.triggers import Trigger, TriggerRegistry

SNAPSHOT_VERSION_KEY = "llmobs-snapshot-version"
INT64_MAX = 2**63 - 1  # the proto's int64 fields: a larger Python int fails the call ("Value out of range")
T = TypeVar("T")


def answered_from(snapshot: Snapshot, context: grpc.aio.ServicerContext) -> Snapshot:
    """Say in the trailers which cache version a value came from: KEDA ignores it; it lets an operator or a
    test match an answer to the exact state behind it."""
    context.set_trailing_metadata(((SNAPSHOT_VERSION_KEY, str(snapshot.version)),))
    return snapshot


class ScalerServicer(pb_grpc.ExternalScalerServicer):
    def __init__(self, cache: SignalCache, stats: ScalerStats, triggers: TriggerRegistry,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.stats = stats
        self.triggers = triggers
        self.clock = clock

    # ------------------------------------------------------------ the answers (pure; ScalerError on failure)
    def _trigger(self, metadata: Mapping[str, str]) -> Trigger:
        try:
            return self.triggers.lookup(metadata)
        except MetadataError as e:
            raise ScalerError("INVALID_ARGUMENT", str(e)) from None

    def _spec(self, metadata: Mapping[str, str]) -> pb.GetMetricSpecResponse:
        t = self._trigger(metadata)
        return pb.GetMetricSpecResponse(metricSpecs=[pb.MetricSpec(
            metricName=t.metric_name, targetSize=min(max(1, round(t.query.target)), INT64_MAX),
            targetSizeFloat=t.query.target)])

    def _metrics(self, request: pb.GetMetricsRequest, snapshot: Snapshot) -> pb.GetMetricsResponse:
        t = self._trigger(request.scaledObjectRef.scalerMetadata)
        asked = strip_index_prefix(request.metricName)
        if asked and asked != t.metric_name:
            shown = request.metricName if len(request.metricName) <= 200 else request.metricName[:200] + "…"
            raise ScalerError("INVALID_ARGUMENT", f"metricName {shown!r} is not this trigger's metric "
                                                  f"({t.metric_name!r}, from GetMetricSpec)")
        v = answer(snapshot, t.query, self.clock())
        return pb.GetMetricsResponse(metricValues=[pb.MetricValue(
            # `answer` already caps v (cache.MAX_VALUE); the min() keeps the int64 field encodable whatever it returns
            metricName=request.metricName or t.metric_name, metricValue=min(round(v), INT64_MAX),
            metricValueFloat=v)])

    def _is_active(self, metadata: Mapping[str, str], snapshot: Snapshot) -> pb.IsActiveResponse:
        q = self._trigger(metadata).query
        return pb.IsActiveResponse(result=answer(snapshot, q, self.clock()) > q.activation_target)

    def _stream_state(self, q: ScalerQuery) -> bool | None:
        """Active or not for the current snapshot; None when there is no trustworthy answer (push nothing)."""
        try:
            v = answer(self.cache.snapshot, q, self.clock())
        except ScalerError:
            return None
        return v > q.activation_target if math.isfinite(v) else None

    async def _unary(self, method: str, context: grpc.aio.ServicerContext, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except ScalerError as e:
            self.stats.count(method, e.code)
            await context.abort(grpc.StatusCode[e.code], e.message)
        self.stats.count(method, "OK")
        return result

    # ------------------------------------------------------------ KEDA's five methods
    async def IsActive(self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext) -> pb.IsActiveResponse:
        snapshot = answered_from(self.cache.snapshot, context)
        return await self._unary("IsActive", context, lambda: self._is_active(request.scalerMetadata, snapshot))

    async def GetMetricSpec(self, request: pb.ScaledObjectRef,
                            context: grpc.aio.ServicerContext) -> pb.GetMetricSpecResponse:
        return await self._unary("GetMetricSpec", context, lambda: self._spec(request.scalerMetadata))

    async def GetMetrics(self, request: pb.GetMetricsRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetMetricsResponse:
        snapshot = answered_from(self.cache.snapshot, context)
        return await self._unary("GetMetrics", context, lambda: self._metrics(request, snapshot))

    async def StreamIsActive(self, request: pb.ScaledObjectRef,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.IsActiveResponse]:
        trigger = await self._unary("StreamIsActive", context, lambda: self._trigger(request.scalerMetadata))
        last: bool | None = None
        snapshot = self.cache.snapshot
        while True:
            # Evaluate every published snapshot against the last value sent: a change between two
            # publishes is never lost to a timer, and the first answer goes out as soon as there is one.
            active = self._stream_state(trigger.query)
            if active is not None and active != last:
                yield pb.IsActiveResponse(result=active)
                last = active
            snapshot = await self.cache.wait_newer(snapshot.version)

    async def StreamMetricSpec(self, request: pb.ScaledObjectRef,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GetMetricSpecResponse]:
        yield await self._unary("StreamMetricSpec", context, lambda: self._spec(request.scalerMetadata))
        await asyncio.Event().wait()  # specs are static: send once, keep the stream open until KEDA closes it
