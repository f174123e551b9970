"""The exporter end to end over real HTTP: demo fleet → scrape → signals → /metrics, /healthz,
/api/v1/signals and the status page. This is what `llmobs run` starts."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.demo.fleet import create_fleet_app, default_fleet
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.sources.targets import StaticTargetSource, Target

REQUIRED = [
    "llmobs_target_up", "llmobs_scrape_duration_seconds", "llmobs_kv_cache_utilization_ratio",
    "llmobs_requests_waiting", "llmobs_requests_running", "llmobs_request_rate", "llmobs_prompt_tokens_rate",
    "llmobs_generation_tokens_rate", "llmobs_ttft_seconds", "llmobs_itl_seconds", "llmobs_e2e_latency_seconds",
    "llmobs_queue_time_seconds", "llmobs_prompt_length_tokens", "llmobs_generation_length_tokens",
    "llmobs_prefix_cache_hit_ratio", "llmobs_preemption_rate",
]


@pytest.fixture
async def running():
    fleet = default_fleet(speedup=20.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    targets = [*fleet.targets(f"http://127.0.0.1:{fleet_port}"),
               Target(f"http://127.0.0.1:{fleet_port}/replicas/missing/metrics", "dead-replica")]
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.3, timeout_seconds=2),
                       signals=SignalsConfig(window_seconds=10), server=ServerConfig(host="127.0.0.1", port=0))
    exporter = await start_exporter(cfg, StaticTargetSource(targets))
    for _ in range(100):
        if len(exporter.holder.current.signals) == 3:
            break
        await asyncio.sleep(0.1)
    yield exporter, f"http://127.0.0.1:{exporter.port}", fleet_port
    await exporter.stop()
    fleet_server.should_exit = True
    await fleet_task


async def test_metrics_endpoint_exports_the_contract(running) -> None:
    _, base, _ = running
    async with httpx.AsyncClient() as client:
        await asyncio.sleep(1.0)
        text = (await client.get(f"{base}/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in REQUIRED:
        assert name in families, f"{name} missing from /metrics"
    kv = [s for s in families["llmobs_kv_cache_utilization_ratio"].samples]
    assert {s.labels["model"] for s in kv} == {"llama-3.1-8b-instruct", "qwen2.5-coder-7b"}
    assert {s.labels["node"] for s in kv} == {"gpu-node-a", "gpu-node-b", "gpu-node-c"}
    assert all(set(s.labels) == {"model", "endpoint", "node", "gpu_model"} for s in kv)
    ttft = families["llmobs_ttft_seconds"].samples
    assert {s.labels["quantile"] for s in ttft} == {"0.5", "0.9", "0.99"}
    up = {s.labels["endpoint"]: s.value for s in families["llmobs_target_up"].samples}
    assert up["dead-replica"] == 0 and up["llama-3.1-8b-instruct-0"] == 1
    errors = [s for s in families["llmobs_scrape_errors"].samples if s.name.endswith("_total")]
    assert any(s.labels["endpoint"] == "dead-replica" and s.labels["kind"] == "http_status" for s in errors)
    rates = [s.value for s in families["llmobs_request_rate"].samples]
    assert all(r >= 0 for r in rates) and sum(rates) > 0


async def test_openmetrics_negotiation(running) -> None:
    _, base, _ = running
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


async def test_healthz_signals_json_and_status_page(running) -> None:
    _, base, _ = running
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/healthz")
        snapshot = (await client.get(f"{base}/api/v1/signals")).json()
        page = await client.get(f"{base}/")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert {t["endpoint"] for t in snapshot["targets"]} >= {"dead-replica", "qwen2.5-coder-7b-0"}
    dead = next(t for t in snapshot["targets"] if t["endpoint"] == "dead-replica")
    assert dead["up"] is False and dead["last_error_kind"] == "http_status"
    row = next(s for s in snapshot["signals"] if s["endpoint"] == "llama-3.1-8b-instruct-0")
    assert 0 <= row["kv_cache_utilization"] <= 1 and row["node"] == "gpu-node-a"
    assert set(row["ttft_seconds"]["quantiles"]) == {"0.5", "0.9", "0.99"}
    assert page.status_code == 200 and "llama-3.1-8b-instruct-0" in page.text and "dead-replica" in page.text


async def test_restart_of_a_replica_gives_no_negative_rate(running) -> None:
    exporter, _, fleet_port = running
    async with httpx.AsyncClient() as client:
        await asyncio.sleep(1.0)
        r = await client.post(f"http://127.0.0.1:{fleet_port}/replicas/qwen2.5-coder-7b-0/restart")
        assert r.status_code == 200
        for _ in range(10):
            await asyncio.sleep(0.4)
            for s in exporter.holder.current.signals:
                assert s.request_rate >= 0 and s.prompt_tokens_rate >= 0 and s.generation_tokens_rate >= 0
        resets = {h.endpoint: h.counter_resets for h in exporter.holder.current.targets}
    assert resets["qwen2.5-coder-7b-0"] >= 1


async def test_one_url_listed_twice_is_scraped_once() -> None:
    """A hand-built source listing one replica twice (the config refuses it) fed that replica's pages to one
    tracker twice a cycle, milliseconds apart: 10 requests/s read as thousands. The first listing wins."""
    from llmobs.pipeline import Pipeline
    from llmobs.sources.scrape import Scraper
    from llmobs.state import StateHolder
    from tests.pageserver import PageServer

    served = 0

    def page(_: int) -> str:
        nonlocal served
        served += 1
        return ('vllm:num_requests_running{model_name="m"} 1\n'
                f'vllm:request_success_total{{finished_reason="stop",model_name="m"}} {served * 10}\n')

    async with PageServer({"r": page}) as server:
        url = server.url("r")
        pipeline = Pipeline(StaticTargetSource([Target(url, "alpha"), Target(url, "beta")]), Scraper(),
                            StateHolder(), window_seconds=60)
        for _ in range(3):
            state = await pipeline.run_cycle()
            await asyncio.sleep(0.2)
        await pipeline.scraper.aclose()
    assert served == 3
    assert [t.endpoint for t in state.targets] == ["alpha"]
    [signals] = state.signals
    assert signals.attribution.endpoint == "alpha" and signals.request_rate < 200  # 10 per ~0.2 s cycle
