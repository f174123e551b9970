"""Which limit binds, on a real vLLM server: three load shapes, each named right by llmobs' pipeline.

One server with small limits (64 KV blocks of 32 tokens = 2,048 tokens, 8 sequences, a 64-token chunked-prefill
budget), started once for the module, then three shapes in sequence, each read through llmobs' real pipeline
(scrape → normalize → tracker → exposition) over a 10 s window that holds only that shape:

* 300-token prompts, 2-token outputs, 6 clients: every engine step is a full prefill chunk → `prefill`, while
  the KV cache stays under 40 %: a 300-token chunk fills the 64-token budget, so one prompt prefills at a time
  and the other clients' requests wait without KV blocks. Six clients, not one or two, so that a request is
  always queued: on 2 busy cores the API server's turnaround between one client's requests left the engine
  idle 60 % of a run with two clients (llmobs then rightly named no bottleneck);
* 15-token prompts, 900-token outputs, 5 clients (under the 8-sequence limit): 5 × 915 tokens do not fit in
  2,048, so vLLM preempts → `kv`;
* 8-token prompts, 64-token outputs, 24 clients: the 8-sequence batch is full and a queue waits, while the KV
  cache (8 × 3 blocks of 64) and the budget have room → `batch`.

The shapes are structural, not timing-lucky: the prefill ratio's step fullness is capped at 1 whenever the
mean tokens per emitting step exceed the budget (here about 150 per 64), the KV shape cannot fit whatever the
speed, and the batch shape has three clients per sequence slot. The module starts its own server (other
limits than conftest's) and runs in its own pytest process (Makefile).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.pipeline import Pipeline
from llmobs.serving.collector import FleetCollector
from llmobs.signals.types import ModelEndpointSignals
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import SchedulerLimits, StaticTargetSource, Target
from llmobs.state import StateHolder
from tests.realvllm.harness import VllmServer, VllmUnavailable, make_model_dir, sustain_load, vllm_python
from tests.realvllm.make_tiny_model import WORDS

pytestmark = pytest.mark.realvllm

MAX_NUM_SEQS = 8
MAX_NUM_BATCHED_TOKENS = 64
SERVER_ARGS = ("--block-size", "32", "--num-gpu-blocks-override", "64", "--max-num-seqs", str(MAX_NUM_SEQS),
               "--max-num-batched-tokens", str(MAX_NUM_BATCHED_TOKENS), "--gpu-memory-utilization", "0.2")
WINDOW_S = 10.0
SCRAPE_EVERY_S = 1.0


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory):
    try:
        vllm_python()
    except VllmUnavailable as e:
        pytest.skip(str(e))  # fails in CI (tests/conftest.py): the real server is required there
    workdir: Path = tmp_path_factory.mktemp("vllm-saturation")
    server = VllmServer(make_model_dir(workdir / "model"), workdir / "vllm.log", SERVER_ARGS)
    server.start()
    yield server
    server.stop()


def words(n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def drive_shape(server: VllmServer, make_request, concurrency: int, duration: float,
                      limits: SchedulerLimits | None = None) -> tuple[list[ModelEndpointSignals], str]:
    """Keep the shape's load for `duration` seconds, scraping through a fresh pipeline (so its window holds
    only this shape) every second; return the signals of each scrape taken while the load ran, and the
    exporter's /metrics text of the last one."""
    limits = limits or SchedulerLimits(MAX_NUM_SEQS, MAX_NUM_BATCHED_TOKENS)
    target = Target(server.metrics_url, "vllm-0", {"node": "test-node"}, scheduler=limits)
    scraper = Scraper(timeout_seconds=10)
    holder = StateHolder()
    pipeline = Pipeline(StaticTargetSource([target]), scraper, holder, window_seconds=WINDOW_S)
    try:
        load = asyncio.create_task(sustain_load(server.base_url, make_request, concurrency, duration))
        started = time.monotonic()
        seen: list[ModelEndpointSignals] = []
        exposition = ""
        while time.monotonic() - started < duration - 1.5:  # every scrape below is taken under load
            await asyncio.sleep(SCRAPE_EVERY_S)
            state = await pipeline.run_cycle()
            assert state.targets[0].up, state.targets[0].last_error
            seen += state.signals
            registry = CollectorRegistry()
            registry.register(FleetCollector(holder))
            exposition = generate_latest(registry).decode()
        truth = await load
        assert truth and all(t.ok for t in truth)
        return seen, exposition
    finally:
        await scraper.aclose()


def describe(name: str, s: ModelEndpointSignals) -> str:
    sat = s.saturation
    assert sat is not None
    ratios = " ".join(f"{r}={v:.2f}" for r, v in sorted(sat.ratios.items()))
    spare = "–" if sat.spare_tokens_per_second is None else f"{sat.spare_tokens_per_second:.0f}"
    return (f"{name}: bottleneck {sat.bottleneck} ({ratios}); KV max {s.kv_cache_utilization_max:.2f}, "
            f"preemptions/s {s.preemption_rate:.2f}, tokens/s {s.prompt_tokens_rate + s.generation_tokens_rate:.0f}, "
            f"spare tokens/s {spare}, window {s.window_seconds:.1f} s")


def final(seen: list[ModelEndpointSignals]) -> ModelEndpointSignals:
    """The last scrape's signals, over a full window of the shape."""
    s = seen[-1]
    assert s.window_seconds >= WINDOW_S - 1.5, s.window_seconds
    assert s.saturation is not None
    return s


async def test_three_load_shapes_are_each_named_by_the_resource_that_binds(small_server: VllmServer) -> None:
    rng = random.Random(5)
    figures = []

    # Long prompts, short outputs: prefill-bound while the KV cache stays below 40 %.
    seen, exposition = await drive_shape(small_server, lambda: (words(300, rng), 2), concurrency=6, duration=16.0)
    s = final(seen)
    figures.append(describe("prefill shape", s))
    assert s.saturation is not None and s.saturation.bottleneck == "prefill", figures[-1]
    assert s.saturation.ratios["prefill"] >= 0.6, figures[-1]
    assert max(x.kv_cache_utilization_max for x in seen) < 0.4, figures[-1]
    assert ('llmobs_bottleneck{endpoint="vllm-0",gpu_model="",model="tiny",node="test-node",resource="prefill"} 1.0'
            in exposition)

    # Short prompts, long outputs on a small KV cache: KV-bound, with preemptions.
    seen, _ = await drive_shape(small_server, lambda: (words(15, rng), 900), concurrency=5, duration=24.0)
    s = final(seen)
    figures.append(describe("kv shape", s))
    assert s.saturation is not None and s.saturation.bottleneck == "kv", figures[-1]
    assert s.preemption_rate > 0, figures[-1]
    assert s.saturation.ratios["kv"] >= 0.7, figures[-1]

    # Many short requests: batch-bound (the sequence limit is full, a queue waits).
    seen, _ = await drive_shape(small_server, lambda: (words(8, rng), 64), concurrency=24, duration=16.0)
    s = final(seen)
    figures.append(describe("batch shape", s))
    assert s.saturation is not None and s.saturation.bottleneck == "batch", figures[-1]
    assert s.saturation.ratios["batch"] >= 0.6 and s.saturation.ratios["kv"] < 0.5, figures[-1]
    assert max(x.requests_waiting for x in seen) >= 4, figures[-1]  # the batch was full: requests queued
    print("\n" + "\n".join(figures))


async def test_without_scheduler_limits_the_bottleneck_is_unknown_not_guessed(small_server: VllmServer) -> None:
    """vLLM does not publish max_num_seqs or max_num_batched_tokens: a target configured without them gets the KV
    ratio, `unknown` as the bottleneck and the reasons, even under a load that plainly fills the batch."""
    rng = random.Random(6)
    seen, exposition = await drive_shape(small_server, lambda: (words(8, rng), 48), concurrency=24, duration=8.0,
                                         limits=SchedulerLimits())
    sat = seen[-1].saturation
    assert sat is not None and sat.bottleneck == "unknown"
    assert set(sat.ratios) == {"kv"}
    assert set(sat.unknown) == {"max_num_seqs_unknown", "max_num_batched_tokens_unknown"}
    assert sat.spare_tokens_per_second is None and "llmobs_saturation_binding_ratio{" not in exposition
    assert 'resource="unknown"} 1.0' in exposition
