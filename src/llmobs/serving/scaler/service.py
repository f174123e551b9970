"""The ExternalScaler gRPC handlers: parse metadata, read the cache, answer. Nothing here does I/O.

`ScalerCore` holds the logic shared by the two engines — `AioScalerServicer` (grpc.aio, default: open
streams are coroutines, so 16 or 1,000 StreamIsActive watchers never hold a thread a unary call needs)
and `ThreadScalerServicer` (grpc's thread-pool server, for comparison in the benchmark and where an
event loop is unwanted).

How KEDA calls this (and why each rule below): GetMetricSpec at every polling interval and HPA sync for
every trigger, and when it fails KEDA's `fallback` never engages — so it is static (metadata only: no
state, no forecaster). GetMetrics comes with the name from GetMetricSpec (KEDA strips its `s<index>-`
prefix) and the HPA sums every MetricValue returned — so exactly one value, for the requested name.
KEDA reads the float fields when > 0 (milli precision) — so both float and int fields are set and the
float is never NaN/Inf/negative. IsActive alone decides 0↔1 (`value > activationTarget`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import grpc

from llmobs.serving.scaler import externalscaler_pb2 as pb
from llmobs.serving.scaler import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.cache import ScalerError, SignalCache, Snapshot, answer
from llmobs.serving.scaler.metadata import MetadataError, ScalerQuery, parse_metadata, strip_index_prefix
from llmobs.serving.scaler.stats import ScalerStats

SNAPSHOT_VERSION_KEY = "llmobs-snapshot-version"


def answered_from(snapshot: Snapshot, context: grpc.ServicerContext | grpc.aio.ServicerContext) -> Snapshot:
    """Say in the trailers which cache version a value came from (every engine does, the native front end
    too): KEDA ignores it; it lets an operator or a test match an answer to the exact state behind it."""
    context.set_trailing_metadata(((SNAPSHOT_VERSION_KEY, str(snapshot.version)),))
    return snapshot


class ScalerCore:
    def __init__(self, cache: SignalCache, stats: ScalerStats, horizons: tuple[float, ...],
                 clock: Callable[[], float] = time.time,
                 on_trigger: Callable[[Mapping[str, str]], None] | None = None) -> None:
        self.cache = cache
        self.stats = stats
        self.horizons = horizons
        self.clock = clock
        self.on_trigger = on_trigger  # the native engine registers every parseable trigger for its table

    def query(self, metadata: Mapping[str, str]) -> ScalerQuery:
        try:
            q = parse_metadata(metadata, self.horizons)
        except MetadataError as e:
            raise ScalerError("INVALID_ARGUMENT", str(e)) from None
        if self.on_trigger is not None:
            self.on_trigger(metadata)
        return q

    def spec(self, metadata: Mapping[str, str]) -> pb.GetMetricSpecResponse:
        q = self.query(metadata)
        return pb.GetMetricSpecResponse(metricSpecs=[pb.MetricSpec(
            metricName=q.metric_name, targetSize=max(1, round(q.target)), targetSizeFloat=q.target)])

    def metrics(self, request: pb.GetMetricsRequest, snapshot: Snapshot) -> pb.GetMetricsResponse:
        q = self.query(request.scaledObjectRef.scalerMetadata)
        asked = strip_index_prefix(request.metricName)
        if asked and asked != q.metric_name:
            raise ScalerError("INVALID_ARGUMENT", f"metricName {request.metricName!r} is not this trigger's metric "
                                                  f"({q.metric_name!r}, from GetMetricSpec)")
        v = answer(snapshot, q, self.clock())
        return pb.GetMetricsResponse(metricValues=[pb.MetricValue(
            metricName=request.metricName or q.metric_name, metricValue=round(v), metricValueFloat=v)])

    def is_active(self, metadata: Mapping[str, str], snapshot: Snapshot) -> bool:
        q = self.query(metadata)
        return answer(snapshot, q, self.clock()) > q.activation_target

    def stream_state(self, q: ScalerQuery) -> bool | None:
        """Active or not for the current snapshot; None when there is no trustworthy answer (push nothing)."""
        try:
            v = answer(self.cache.snapshot, q, self.clock())
        except ScalerError:
            return None
        return v > q.activation_target if math.isfinite(v) else None


class AioScalerServicer(pb_grpc.ExternalScalerServicer):
    def __init__(self, core: ScalerCore) -> None:
        self.core = core

    async def _unary(self, method: str, context: grpc.aio.ServicerContext, fn: Callable[[], object]) -> object:
        try:
            result = fn()
        except ScalerError as e:
            self.core.stats.count(method, e.code)
            await context.abort(grpc.StatusCode[e.code], e.message)
        self.core.stats.count(method, "OK")
        return result

    async def IsActive(self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext) -> pb.IsActiveResponse:
        snapshot = answered_from(self.core.cache.snapshot, context)
        return await self._unary("IsActive", context,  # type: ignore[return-value]
                                 lambda: pb.IsActiveResponse(result=self.core.is_active(request.scalerMetadata,
                                                                                        snapshot)))

    async def GetMetricSpec(self, request: pb.ScaledObjectRef,
                            context: grpc.aio.ServicerContext) -> pb.GetMetricSpecResponse:
        return await self._unary("GetMetricSpec", context,  # type: ignore[return-value]
                                 lambda: self.core.spec(request.scalerMetadata))

    async def GetMetrics(self, request: pb.GetMetricsRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetMetricsResponse:
        snapshot = answered_from(self.core.cache.snapshot, context)
        return await self._unary("GetMetrics", context,  # type: ignore[return-value]
                                 lambda: self.core.metrics(request, snapshot))

    async def StreamIsActive(self, request: pb.ScaledObjectRef,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.IsActiveResponse]:
        q = await self._unary("StreamIsActive", context, lambda: self.core.query(request.scalerMetadata))
        assert isinstance(q, ScalerQuery)
        last: bool | None = None
        snapshot = self.core.cache.snapshot
        while True:
            # Evaluate every published snapshot against the last value sent: a change between two
            # publishes is never lost to a timer, and the first answer goes out as soon as there is one.
            active = self.core.stream_state(q)
            if active is not None and active != last:
                yield pb.IsActiveResponse(result=active)
                last = active
            snapshot = await self.core.cache.wait_newer(snapshot.version)

    async def StreamMetricSpec(self, request: pb.ScaledObjectRef,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GetMetricSpecResponse]:
        spec = await self._unary("StreamMetricSpec", context, lambda: self.core.spec(request.scalerMetadata))
        yield spec  # type: ignore[misc]
        await asyncio.Event().wait()  # specs are static: send once, keep the stream open until KEDA closes it


class ThreadScalerServicer(pb_grpc.ExternalScalerServicer):
    """The same handlers for grpc's thread-pool server; a stream holds one pool thread while open."""

    def __init__(self, core: ScalerCore, stop: Callable[[], bool] = lambda: False) -> None:
        self.core = core
        self.stop = stop

    def _unary(self, method: str, context: grpc.ServicerContext, fn: Callable[[], object]) -> object:
        try:
            result = fn()
        except ScalerError as e:
            self.core.stats.count(method, e.code)
            context.abort(grpc.StatusCode[e.code], e.message)
        self.core.stats.count(method, "OK")
        return result

    def IsActive(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext) -> pb.IsActiveResponse:
        snapshot = answered_from(self.core.cache.snapshot, context)
        return self._unary("IsActive", context,  # type: ignore[return-value]
                           lambda: pb.IsActiveResponse(result=self.core.is_active(request.scalerMetadata, snapshot)))

    def GetMetricSpec(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext) -> pb.GetMetricSpecResponse:
        return self._unary("GetMetricSpec", context,  # type: ignore[return-value]
                           lambda: self.core.spec(request.scalerMetadata))

    def GetMetrics(self, request: pb.GetMetricsRequest, context: grpc.ServicerContext) -> pb.GetMetricsResponse:
        snapshot = answered_from(self.core.cache.snapshot, context)
        return self._unary("GetMetrics", context,  # type: ignore[return-value]
                           lambda: self.core.metrics(request, snapshot))

    def StreamIsActive(self, request: pb.ScaledObjectRef,
                       context: grpc.ServicerContext) -> Iterator[pb.IsActiveResponse]:
        q = self._unary("StreamIsActive", context, lambda: self.core.query(request.scalerMetadata))
        assert isinstance(q, ScalerQuery)
        last: bool | None = None
        snapshot = self.core.cache.snapshot
        while context.is_active() and not self.stop():
            active = self.core.stream_state(q)
            if active is not None and active != last:
                yield pb.IsActiveResponse(result=active)
                last = active
            snapshot = self.core.cache.wait_newer_blocking(snapshot.version, timeout=1.0)

    def StreamMetricSpec(self, request: pb.ScaledObjectRef,
                         context: grpc.ServicerContext) -> Iterator[pb.GetMetricSpecResponse]:
        yield self._unary("StreamMetricSpec", context,  # type: ignore[misc]
                          lambda: self.core.spec(request.scalerMetadata))
        while context.is_active() and not self.stop():
            time.sleep(1.0)
