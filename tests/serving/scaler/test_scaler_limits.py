"""The scaler port is reachable by whoever can reach the pod: what it accepts is bounded.

The probe that motivated this: 400 GetMetricSpec + GetMetrics calls, each with a different 1 MB `model`,
took an exporter from ~120 MB to a 3.8 GB peak and pushed healthy GetMetrics calls to 0.7–2.2 s (KEDA's
deadline is 3 s). Now gRPC refuses oversized requests before llmobs reads them, metadata is bounded by
key count and length (model names as vLLM spells them), and the registry of triggers is capped and never
remembers a model no endpoint serves. The probe test sends exactly that probe (plus one with values just
under the message limit, which only the metadata bounds stop) and checks memory and a healthy call's
latency while it runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import grpc
import pytest

from llmobs.serving.scaler import serve_scaler
from llmobs.serving.scaler.metadata import (
    MAX_KEYS,
    MAX_MODEL_LENGTH,
    MAX_PEM_LENGTH,
    MAX_VALUE_LENGTH,
    MetadataError,
    parse_metadata,
)
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.server import MAX_MESSAGE_BYTES
from llmobs.serving.scaler.triggers import TriggerRegistry
from llmobs.state import StateHolder
from tests.serving.scaler.test_scaler_grpc import ENGINES, publish, ref, scaler_config

HORIZONS = (60.0, 300.0, 900.0)


@pytest.mark.parametrize(("meta", "key", "fragment"), [
    ({f"k{i}": "v" for i in range(MAX_KEYS + 1)} | {"model": "m"}, "scalerMetadata", "keys"),
    ({"model": "m", "x" * 1000: "1"}, "x" * 64 + "…", "key longer than"),
    ({"model": "m", "endpoint": "e" * (MAX_VALUE_LENGTH + 1)}, "endpoint", "at most 1024"),
    ({"model": "m", "caCert": "c" * (MAX_PEM_LENGTH + 1)}, "caCert", "at most 16384"),
    ({"model": "m" * (MAX_MODEL_LENGTH + 1)}, "model", "not a vLLM model name"),
    ({"model": "two words"}, "model", "no whitespace"),
    ({"model": "bad\x00name"}, "model", "printable"),
])
def test_oversized_or_malformed_metadata_is_refused_naming_the_key(meta: dict[str, str], key: str,
                                                                   fragment: str) -> None:
    with pytest.raises(MetadataError) as e:
        parse_metadata(meta)
    assert e.value.key == key and fragment in str(e.value)
    assert len(str(e.value)) < 300  # the error never echoes the oversized input


def test_real_model_names_and_an_inline_pem_are_accepted() -> None:
    for model in ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "/models/llama-3",
                  "llama3:8b-instruct-q4_K_M", "modèle-ü", "m" * MAX_MODEL_LENGTH):
        assert parse_metadata({"model": model}).model == model
    assert parse_metadata({"model": "m", "caCert": "-----BEGIN CERTIFICATE-----\n" + "A" * 4000}).model == "m"


def test_registry_is_bounded_and_unknown_models_do_not_grow_it() -> None:
    known = {"a", "b", "c"}
    registry = TriggerRegistry(HORIZONS, lambda: known, capacity=2)
    for model in ("a", "b", "c"):
        registry.lookup({"model": model, "scalerAddress": "x:9401"})
    assert [t.query.model for t in registry.items()] == ["b", "c"] and registry.evictions == 1
    registry.lookup({"model": "b"})  # KEDA's own keys do not make another trigger; b is now most recent
    assert [t.query.model for t in registry.items()] == ["c", "b"]
    for i in range(100):
        assert registry.lookup({"model": f"made-up-{i}"}).query.model == f"made-up-{i}"  # answered, not kept
    assert len(registry) == 2 and registry.evictions == 1
    with pytest.raises(MetadataError):
        registry.lookup({"model": "a", "signal": "nope"})
    assert len(registry) == 2


PROBE = """
import asyncio, json, sys
import grpc
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb, externalscaler_pb2_grpc as pb_grpc

async def main(port, calls, size):
    codes = {}
    gate = asyncio.Semaphore(64)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                         options=[("grpc.max_send_message_length", 4 << 20)]) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)

        async def one(i):
            async with gate:
                model = f"{i:06d}" + "x" * (size - 6)  # a different model every call
                r = pb.ScaledObjectRef(name="probe", namespace="p", scalerMetadata={"model": model})
                try:
                    if i % 2:
                        await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r), timeout=10)
                    else:
                        await stub.GetMetricSpec(r, timeout=10)
                    code = "OK"
                except grpc.aio.AioRpcError as e:
                    code = e.code().name
                codes[code] = codes.get(code, 0) + 1

        await asyncio.gather(*(one(i) for i in range(calls)))
    print(json.dumps(codes))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
"""


ROUNDS = 3  # a leak grows every round; the allocator's noise does not (one round once added 22 MB)
IN_FLIGHT_BOUND_MB = 64 + 64  # 64 concurrent 1 MB requests in flight, and as much again of allocator slack
ACCUMULATED_MB = 20  # below one round of remembered 63 KB models (25 MB); 2–10 MB measured, once 22


def rss_mb(pids: list[int | str]) -> float:
    """Resident memory of these processes together (llmobs, and the native front end when it runs)."""
    total = 0.0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


@pytest.mark.parametrize("engine", ENGINES)
async def test_probe_of_huge_distinct_models_leaves_memory_and_healthy_latency_flat(engine: str) -> None:
    holder = StateHolder()
    publish(holder, 3)
    handle = await serve_scaler(scaler_config(engine, stale_after_intervals=1e6), holder, interval_seconds=1.0)
    pids: list[int | str] = ["self"]
    if handle.frontend is not None and handle.frontend.pid is not None:
        pids.append(handle.frontend.pid)
    healthy = pb.GetMetricsRequest(scaledObjectRef=ref({"model": "m"}))
    latencies: list[float] = []
    peaks: list[float] = []  # per round
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            assert (await stub.GetMetrics(healthy, timeout=3)).metricValues[0].metricValueFloat == 3.0
            before = rss_mb(pids)
            results = {}
            for _ in range(ROUNDS):
                peak = before
                # 1 MB models (gRPC refuses them: larger than a request may be), then 400 just under the message
                # limit (only the metadata bounds refuse them).
                for size in (1 << 20, MAX_MESSAGE_BYTES - 1024):
                    probe = await asyncio.create_subprocess_exec(
                        sys.executable, "-c", PROBE, str(handle.port), "400", str(size),
                        stdout=asyncio.subprocess.PIPE)
                    out = asyncio.create_task(probe.communicate())
                    while not out.done():  # a healthy trigger keeps being polled while the probe runs
                        t0 = time.perf_counter()
                        await stub.GetMetrics(healthy, timeout=3)
                        latencies.append(time.perf_counter() - t0)
                        peak = max(peak, rss_mb(pids))
                        await asyncio.sleep(0.02)
                    stdout, _ = await out
                    assert probe.returncode == 0
                    results[size] = json.loads(stdout)
                peaks.append(peak)
            t0 = time.perf_counter()
            await stub.GetMetrics(healthy, timeout=3)
            after_probe = time.perf_counter() - t0
    finally:
        await handle.stop()
    growth = peaks[0] - before
    accumulated = min(later - earlier for earlier, later in itertools.pairwise(peaks))
    print(f"\n{engine} probe: {results}; RSS {before:.0f} MB → peak per round "
          f"{', '.join(f'{p:.0f}' for p in peaks)} MB (+{growth:.1f}, then at least {accumulated:+.1f} a round); "
          f"healthy GetMetrics during the probe: n {len(latencies)}, p50 {statistics.median(latencies) * 1e3:.1f} ms, "
          f"max {max(latencies) * 1e3:.1f} ms; after: {after_probe * 1e3:.1f} ms; triggers kept {len(handle.triggers)}")
    assert results[1 << 20] == {"RESOURCE_EXHAUSTED": 400}
    assert results[MAX_MESSAGE_BYTES - 1024] == {"INVALID_ARGUMENT": 400}
    assert len(handle.triggers) == 1  # only the healthy trigger: the probe's models were never remembered
    # The peak during a round holds what is in flight — up to 64 concurrent 1 MB requests being read before
    # they are refused — and the allocator keeps what it once reached, so the first round's growth is a
    # bound, not a leak test (23–84 MB measured for the native front end); remembering the probe's models
    # would add 25 MB (400 × 63 KB) to 400 MB a round, round after round, so the leak test is the smallest
    # growth over the later rounds: one round's allocator noise once added 22 MB in a fresh-clone CI run.
    assert growth < IN_FLIGHT_BOUND_MB, f"RSS grew {growth:.0f} MB under the probe"
    assert accumulated < ACCUMULATED_MB, f"RSS grew {accumulated:.0f} MB or more in each further identical probe"
    assert after_probe < 0.1 and statistics.median(latencies) < 0.1
    assert max(latencies) < 0.5, f"a healthy call took {max(latencies):.2f} s during the probe"
