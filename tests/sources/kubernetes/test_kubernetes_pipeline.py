"""Discovery feeding the real exporter: pods found through the stand-in API server are scraped by the real
pipeline, their signals carry the node's GPU labels, and the central collectors render endpoint info,
cost and watch health on the exporter's /metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from llmobs.agent import CostConfig, register_central_collectors
from llmobs.config import config_from_mapping
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.sources.kubernetes import KubernetesConfig, KubernetesTargetSource
from tests.conftest import FIXTURE_PAGE
from tests.k8s.apiserver import FakeApiServer, node, pod


@pytest.fixture
async def vllm_port() -> AsyncIterator[int]:
    """A replica serving the recorded vLLM page (what the pod's IP:port would answer)."""
    page = FIXTURE_PAGE.read_text()

    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(page, media_type="text/plain; version=0.0.4")

    server, task, port = await serve_asgi(Starlette(routes=[Route("/metrics", metrics)]), "127.0.0.1", 0)
    yield port
    server.should_exit = True
    await task


async def test_discovered_pods_are_scraped_with_gpu_attribution(api: FakeApiServer, vllm_port: int) -> None:
    api.upsert("nodes", node("gpu-node-a", product="NVIDIA-H100-80GB-HBM3", zone="eu-west-1a"))
    api.upsert("pods", pod("vllm-a", ip="127.0.0.1", node="gpu-node-a", gpus=2,
                           annotations={"llmobs.io/port": str(vllm_port)}))
    api.upsert("pods", pod("vllm-cold", ip="127.0.0.2", node="gpu-node-a", ready=False))
    kcfg = KubernetesConfig(enabled=True, api_host=api.url, namespaces=["llm"])
    config = config_from_mapping({"scrape": {"interval_seconds": 0.1, "timeout_seconds": 2},
                                  "server": {"host": "127.0.0.1", "port": 0}})
    source = KubernetesTargetSource(kcfg)
    source.start()
    assert source.wait_synced(5)
    exporter = await start_exporter(config, source)
    register_central_collectors(exporter.registry, lambda: exporter.holder.current,
                                CostConfig(gpu_hourly_usd={"NVIDIA-H100-80GB-HBM3": 4.0}), source)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.port}") as http:
            for _ in range(100):
                text = (await http.get("/metrics")).text
                if "llmobs_endpoint_info{" in text:
                    break
                await asyncio.sleep(0.05)
        kv = re.search(r"^llmobs_kv_cache_utilization_ratio\{([^}]*)\}", text, re.M)
        assert kv is not None
        labels = dict(re.findall(r'(\w+)="([^"]*)"', kv.group(1)))
        assert labels == {"model": "tiny", "endpoint": "llm/vllm-a", "node": "gpu-node-a",
                          "gpu_model": "NVIDIA-H100-80GB-HBM3"}
        info = re.search(r"^llmobs_endpoint_info\{([^}]*)\} 1\.0$", text, re.M)
        assert info is not None
        assert dict(re.findall(r'(\w+)="([^"]*)"', info.group(1))) == {
            "model": "tiny", "endpoint": "llm/vllm-a", "namespace": "llm", "pod": "vllm-a", "node": "gpu-node-a",
            "gpu_model": "NVIDIA-H100-80GB-HBM3", "gpu_uuid": ""}
        assert 'llmobs_gpu_cost_per_hour{gpu_model="NVIDIA-H100-80GB-HBM3"} 4.0' in text
        assert 'llmobs_kubernetes_watch_lists_total{watch="pods/llm"} 1.0' in text
        assert "127.0.0.2" not in str([t.url for t in source.targets()])  # not ready: never scraped
        # The pod moves (new sandbox, new IP): the old target goes, the new one is scraped.
        api.upsert("pods", pod("vllm-a", ip="127.0.0.3", node="gpu-node-a",
                               annotations={"llmobs.io/port": str(vllm_port)}))
        for _ in range(100):
            if [t.url for t in source.targets()] == [f"http://127.0.0.3:{vllm_port}/metrics"]:
                break
            await asyncio.sleep(0.05)
        assert [t.url for t in source.targets()] == [f"http://127.0.0.3:{vllm_port}/metrics"]
    finally:
        await exporter.stop()
        source.stop()
