"""An alert reaches `firing` against real vLLM driven into KV-cache saturation, then resolves.

The chain is the production one: vLLM → llmobs exporter → Debian's Prometheus evaluating the rules that
alerts/ generates, with the shipped threshold. Only durations are shortened (`for`, intervals, the exporter's
signal window) so the test takes seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from pathlib import Path

import pytest

from alerts.config import DEFAULT
from alerts.rules import render
from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.runtime import start_exporter
from llmobs.sources.targets import StaticTargetSource, Target
from tests.promserver import PrometheusServer
from tests.realvllm.harness import sustain_load
from tests.realvllm.make_tiny_model import WORDS

pytestmark = [pytest.mark.realvllm, pytest.mark.prometheus]
ALERT = "LlmobsKVCacheSaturated"


def alert_state(prom: PrometheusServer) -> str:
    states = [a["state"] for a in prom.alerts() if a["labels"].get("alertname") == ALERT]
    return "firing" if "firing" in states else (states[0] if states else "inactive")


async def test_kv_saturation_alert_fires_and_resolves(vllm_server, tmp_path: Path) -> None:
    # Saturated, this server's KV usage churns (32 blocks of 128 tokens, ~5 blocks a request): batches finish
    # together, the queue is admitted, sequences are preempted; the instantaneous value sits above 0.9 most of
    # the time but dips to ~0.2-0.4 every few seconds. The alert reads the peak over the exporter's signal
    # window (10 s here instead of 60 s, as `for` is 5 s instead of 10 m), which stays above the shipped 0.9
    # while saturation lasts.
    config = dataclasses.replace(DEFAULT, kv_cache_saturated_for="5s", rule_interval="1s")
    assert config.kv_cache_saturated_ratio == 0.9
    rule_files = []
    for name, text in render(config).items():
        path = tmp_path / Path(name).name
        path.write_text(text)
        rule_files.append(path)
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.5, timeout_seconds=5),
                       signals=SignalsConfig(window_seconds=10), server=ServerConfig(host="127.0.0.1", port=0))
    exporter = await start_exporter(cfg, StaticTargetSource([Target(vllm_server.metrics_url, "vllm-0")]))
    prom = PrometheusServer(tmp_path / "prom", [f"127.0.0.1:{exporter.port}"], rule_files=rule_files)
    try:
        await asyncio.to_thread(prom.start)
        await asyncio.to_thread(prom.wait_for, "model:llmobs_kv_cache_utilization_max_ratio:max")
        assert alert_state(prom) == "inactive"
        rng = random.Random(5)

        def request() -> tuple[str, int]:
            return " ".join(rng.choice(WORDS) for _ in range(350)), 250

        # The load client gets its own thread and event loop (clients are other processes in production), so
        # the exporter's scrape loop in this one keeps its cadence while vLLM saturates both cores.
        load = asyncio.ensure_future(asyncio.to_thread(
            asyncio.run, sustain_load(vllm_server.base_url, request, concurrency=16, duration=30.0)))
        fired_at = None
        kv_seen: list[float] = []
        while not load.done():
            kv_seen += [x.kv_cache_utilization_max for x in exporter.holder.current.signals]
            if await asyncio.to_thread(alert_state, prom) == "firing":
                fired_at = time.monotonic()
                break
            await asyncio.sleep(0.5)
        if fired_at is None:
            seen = await asyncio.to_thread(
                prom.query, "max_over_time(model:llmobs_kv_cache_utilization_ratio:max[5m])")
            above = await asyncio.to_thread(
                prom.query, "count_over_time((model:llmobs_kv_cache_utilization_max_ratio:max > 0.9)[5m:1s])")
            truth = await load
            ok = sum(t.ok for t in truth)
            pytest.fail(f"alert never fired while vLLM was saturated; max KV in Prometheus {seen}, seconds above "
                        f"0.9: {above}; exporter saw KV peaks {kv_seen}; requests ok {ok}/{len(truth)}")
        truth = await load
        assert all(t.ok for t in truth)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and await asyncio.to_thread(alert_state, prom) != "inactive":
            await asyncio.sleep(1.0)
        assert await asyncio.to_thread(alert_state, prom) == "inactive", "alert did not resolve after the burst"
    finally:
        await asyncio.to_thread(prom.stop)
        await exporter.stop()
