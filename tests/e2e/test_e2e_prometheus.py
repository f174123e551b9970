"""Debian's real Prometheus scrapes the exporter (fed by the demo fleet over
HTTP) and PromQL returns llmobs' series with the public labels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.demo.fleet import create_fleet_app, default_fleet
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.sources.targets import StaticTargetSource
from tests.promserver import PrometheusServer

pytestmark = pytest.mark.prometheus


async def test_prometheus_scrapes_llmobs_series(tmp_path: Path) -> None:
    fleet = default_fleet(speedup=10.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.5), signals=SignalsConfig(window_seconds=10),
                       server=ServerConfig(host="127.0.0.1", port=0))
    exporter = await start_exporter(cfg, StaticTargetSource(fleet.targets(f"http://127.0.0.1:{fleet_port}")))
    prom = PrometheusServer(tmp_path / "prom", [f"127.0.0.1:{exporter.port}"])
    try:
        await asyncio.to_thread(prom.start)
        up = await asyncio.to_thread(prom.wait_for, 'up{job="llmobs"} == 1')
        assert len(up) == 1
        kv = await asyncio.to_thread(prom.wait_for, "llmobs_kv_cache_utilization_ratio")
        assert {r["metric"]["model"] for r in kv} == {"llama-3.1-8b-instruct", "qwen2.5-coder-7b"}
        assert {r["metric"]["node"] for r in kv} == {"gpu-node-a", "gpu-node-b", "gpu-node-c"}
        p99 = await asyncio.to_thread(prom.wait_for, 'llmobs_ttft_seconds{quantile="0.99"}')
        assert len(p99) == 3
        # reset-adjusted counters are rate()-able in Prometheus
        rate = await asyncio.to_thread(
            prom.wait_for, "sum by (model) (rate(llmobs_requests_total[5s])) > 0", 30.0)
        assert {r["metric"]["model"] for r in rate} >= {"llama-3.1-8b-instruct"}
    finally:
        await asyncio.to_thread(prom.stop)
        await exporter.stop()
        fleet_server.should_exit = True
        await fleet_task
