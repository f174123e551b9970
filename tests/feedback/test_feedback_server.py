"""`serve_feedback` as `llmobs run` will use it: real socket, injected registry, cancellation, pruning."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from llmobs.feedback import serve_feedback
from tests.feedback.feedback_helpers import CHAT, event, start, stop


async def test_serves_records_and_unregisters_on_cancel(make_config) -> None:
    config = make_config(host="127.0.0.1", port=0)
    registry = CollectorRegistry()
    served = {"llama-8b": 100.0}
    task, base = await start(config, registry, served=lambda m: served[m])
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            resp = await client.post("/v1/feedback", json=event("a", rating=-1, ttft_ms=4000), headers=CHAT)
            assert resp.json() == {"accepted": 1, "duplicates": 0}
            assert (await client.get("/metrics")).status_code == 404  # metrics belong to the exporter here
            assert (await client.get("/openapi.json")).status_code == 200
        labels = {"model": "llama-8b", "app": "chat", "rating": "negative"}
        assert registry.get_sample_value("llmobs_feedback_total", labels) == 1
        assert registry.get_sample_value("llmobs_feedback_negative_ratio", {"model": "llama-8b"}) == 1
        ttft = {"model": "llama-8b", "ttft": "above_slo"}
        assert registry.get_sample_value("llmobs_feedback_negative_ratio_by_ttft", ttft) == 1
        served["llama-8b"] += 50
        assert registry.get_sample_value("llmobs_feedback_coverage_ratio", {"model": "llama-8b"}) is not None
    finally:
        await stop(task)
    assert registry.get_sample_value("llmobs_feedback_total", labels) is None  # collector unregistered
    # The store was closed cleanly: a fresh server on the same file sees the event.
    registry2 = CollectorRegistry()
    task, _ = await start(config, registry2)
    try:
        assert registry2.get_sample_value("llmobs_feedback_total", labels) == 1
    finally:
        await stop(task)


async def test_busy_port_raises_instead_of_exiting(make_config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = make_config(host="127.0.0.1", port=taken.getsockname()[1])
        registry = CollectorRegistry()
        with pytest.raises(OSError):
            await serve_feedback(config, registry, None)
        assert list(registry.collect()) == []


async def test_retention_is_enforced_by_the_running_server(make_config, tmp_path: Path) -> None:
    config = make_config(host="127.0.0.1", port=0, retention_seconds=0.5, prune_interval_seconds=0.2)
    registry = CollectorRegistry()
    task, base = await start(config, registry)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            resp = await client.post("/v1/feedback", json={"events": [event(f"r{i}") for i in range(5)]}, headers=CHAT)
            assert resp.status_code == 200
        for _ in range(50):
            await asyncio.sleep(0.1)
            if registry.get_sample_value("llmobs_feedback_pruned_total", {"reason": "retention"}) == 5:
                break
        assert registry.get_sample_value("llmobs_feedback_pruned_total", {"reason": "retention"}) == 5
        assert registry.get_sample_value("llmobs_feedback_store_events") == 0
        # The durable counter does not go down when events are pruned.
        labels = {"model": "llama-8b", "app": "chat", "rating": "positive"}
        assert registry.get_sample_value("llmobs_feedback_total", labels) == 5
    finally:
        await stop(task)
