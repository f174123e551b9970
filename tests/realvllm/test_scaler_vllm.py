"""The KEDA scaler against a real vLLM server: KEDA's call sequence returns what vLLM reports, and a
StreamIsActive watcher gets `true` promptly after a real queue is scraped, and `false` after it drains.

Shares the session's vLLM server (32 KV blocks, 8 sequences): 24 clients sending long requests for 10 s keep
a queue, so many scrapes and polls see it however fast or loaded the machine is."""

from __future__ import annotations

import asyncio
import random
import time

import grpc
import pytest

from llmobs.pipeline import Pipeline
from llmobs.serving.scaler import ScalerConfig, serve_scaler
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.service import SNAPSHOT_VERSION_KEY
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.state import StateHolder
from tests.realvllm.harness import MODEL_NAME, sustain_load
from tests.realvllm.make_tiny_model import WORDS

pytestmark = pytest.mark.realvllm
INTERVAL = 0.5
PUSH_BOUND_S = 3.0


async def consistent_poll(stub: pb_grpc.ExternalScalerStub, handle, holder: StateHolder,  # type: ignore[no-untyped-def]
                          meta: dict[str, str]) -> tuple[float, bool, object]:
    """KEDA's round (GetMetricSpec → GetMetrics → IsActive, 3 s deadlines) plus the state it was answered from
    (the answers' llmobs-snapshot-version trailers name the cache version; the front end may lag a publish)."""
    r = pb.ScaledObjectRef(name="tiny", namespace="llm", scalerMetadata={"scalerAddress": "llmobs:9401", **meta})
    for _ in range(40):
        before = handle.cache.snapshot
        spec = await stub.GetMetricSpec(r, timeout=3)
        name = spec.metricSpecs[0].metricName
        metrics_call = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r, metricName=name), timeout=3)
        [mv] = (await metrics_call).metricValues
        active_call = stub.IsActive(r, timeout=3)
        active = (await active_call).result
        versions = {int(dict(await c.trailing_metadata())[SNAPSHOT_VERSION_KEY]) for c in (metrics_call, active_call)}
        state = holder.current
        if versions == {before.version} == {handle.cache.snapshot.version} and state.time == before.state_time:
            return mv.metricValueFloat, active, state
    raise AssertionError("state changed under every attempt")


def handle_state(handle, meta: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    from llmobs.serving.scaler.cache import ScalerError, answer
    from llmobs.serving.scaler.metadata import parse_metadata

    try:
        return f"value {answer(handle.cache.snapshot, parse_metadata(meta), time.time())}"
    except ScalerError as e:
        return f"{e.code}: {e.message}"


async def test_scaler_follows_a_real_vllm_queue(vllm_server) -> None:
    holder = StateHolder()
    target = Target(vllm_server.metrics_url, "vllm-0", {"node": "test-node"})
    pipeline = Pipeline(StaticTargetSource([target]), Scraper(timeout_seconds=10), holder, window_seconds=30)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(pipeline.run_forever(INTERVAL, stop))
    handle = await serve_scaler(ScalerConfig(host="127.0.0.1", port=0, stale_after_intervals=20), holder,
                                interval_seconds=INTERVAL)
    try:
        for _ in range(200):  # wait for an idle server (earlier tests' load drained) in a published snapshot
            entry = handle.cache.snapshot.models.get(MODEL_NAME)
            if entry and entry.totals[("queue_depth", "sum")] == 0 and entry.totals[("requests_running", "sum")] == 0:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("vLLM never looked idle to the scaler")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            queue = {"model": MODEL_NAME, "signal": "queue_depth", "target": "4"}
            value, active, _ = await consistent_poll(stub, handle, holder, queue)
            assert (value, active) == (0.0, False)
            stream = stub.StreamIsActive(pb.ScaledObjectRef(name="tiny", scalerMetadata=queue))
            assert (await asyncio.wait_for(stream.read(), 10)).result is False
            rng = random.Random(4)

            def request() -> tuple[str, int]:
                return " ".join(rng.choice(WORDS) for _ in range(350)), 250

            # Sustained for a fixed time (a fixed burst drains in ~2 s on a quiet machine, between polls). The
            # load client runs on its own thread and event loop, as KEDA and the clients are other processes
            # in production.
            load = asyncio.ensure_future(asyncio.to_thread(
                asyncio.run, sustain_load(vllm_server.base_url, request, concurrency=24, duration=10.0)))
            try:
                pushed = await asyncio.wait_for(stream.read(), 30)
            except TimeoutError:
                history = holder.history(MODEL_NAME)
                [health] = holder.current.targets
                pytest.fail(f"no push in 30 s: max waiting scraped {max(p.requests_waiting for p in history)}, "
                            f"load done {load.done()}, target up {health.up} ({health.last_error_kind} "
                            f"{health.last_error}), cycles {pipeline.cycles}, "
                            f"snapshot v{handle.cache.snapshot.version}, "
                            f"stream answer now {handle_state(handle, queue)}")
            received = time.time()
            assert pushed.result is True
            queued = [p.time for p in holder.history(MODEL_NAME) if p.requests_waiting > 0]
            lag = received - queued[0]
            # vLLM's CPU engine keeps both cores of the test machine busy during the burst, so this process
            # is descheduled for whole scheduler slices; the bound is looser than the demo-fleet test's
            # (one interval, tests/serving/scaler/test_scaler_grpc.py), which isolates the scaler's own push path.
            assert 0 <= lag <= PUSH_BOUND_S, f"push arrived {lag:.3f} s after the queue was published"
            waiting, active, state = await consistent_poll(stub, handle, holder, queue)
            [s] = state.signals
            assert waiting == s.requests_waiting and active is (waiting > 0)
            kv_meta = {"model": MODEL_NAME, "signal": "kv_utilization"}
            kv_seen = []
            while not load.done():  # KEDA polling through the burst: every answer is the published KV value
                kv, _, state = await consistent_poll(stub, handle, holder, kv_meta)
                assert kv == state.signals[0].kv_cache_utilization and 0 <= kv <= 1
                kv_seen.append(kv)
                await asyncio.sleep(0.2)
            scraped = [(round(p.time - queued[0], 2), p.requests_waiting, p.kv_cache_utilization_max)
                       for p in holder.history(MODEL_NAME)]
            assert max(kv_seen) >= 0.5, f"KV seen by polls during the burst: {kv_seen}; scraped {scraped[-30:]}"
            truth = await load
            assert all(t.ok for t in truth)
            assert (await asyncio.wait_for(stream.read(), 20)).result is False  # queue drained
            value, active, _ = await consistent_poll(stub, handle, holder, queue)
            assert (value, active) == (0.0, False)
            stream.cancel()
            print(f"\nreal vLLM: push lag {lag * 1000:.0f} ms after the queue was published; first poll in the burst: "
                  f"{waiting:g} waiting; max KV {max(kv_seen):.2f} over {len(kv_seen)} polls")
    finally:
        await handle.stop()
        stop.set()
        await loop_task
        await pipeline.scraper.aclose()
