"""`llmobs run` with every optional component on: forecast, KEDA scaler (gRPC + metrics-api) and the feedback
API start beside the exporter, read the same live state, and export their families on the same /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmobs.config import config_from_mapping
from llmobs.demo.fleet import create_fleet_app, default_fleet
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc


async def test_all_components_share_live_state(tmp_path: Path) -> None:
    fleet = default_fleet(speedup=20.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    targets = [{"url": t.url, "name": t.name, "labels": t.labels}
               for t in fleet.targets(f"http://127.0.0.1:{fleet_port}")]
    cfg = config_from_mapping({
        "targets": targets,
        "scrape": {"interval_seconds": 0.3},
        "signals": {"window_seconds": 10},
        "server": {"host": "127.0.0.1", "port": 0},
        "forecast": {"enabled": True, "refresh_seconds": 0.5, "step_seconds": 1, "horizon_seconds": 5,
                     "capacity_per_replica": {"llama-3.1-8b-instruct": 2.0}},
        "scaler": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "feedback": {"enabled": True, "host": "127.0.0.1", "port": 0, "allow_unauthenticated": True,
                     "db_path": str(tmp_path / "feedback.db"), "allowed_apps": ["chat"]},
    })
    exporter = await start_exporter(cfg)
    try:
        assert exporter.scaler is not None and exporter.feedback_port
        for _ in range(100):
            if len(exporter.holder.current.signals) == 3:
                break
            await asyncio.sleep(0.1)
        base = f"http://127.0.0.1:{exporter.port}"
        async with httpx.AsyncClient(timeout=10) as client:
            posted = await client.post(f"http://127.0.0.1:{exporter.feedback_port}/v1/feedback", json={
                "request_id": "cmpl-1", "model": "llama-3.1-8b-instruct", "app": "chat", "rating": -1,
                "scale": "thumbs"})
            assert posted.status_code in (200, 201, 202), posted.text
            api = await client.get(f"{base}/api/v1/scaler/metrics",
                                   params={"model": "llama-3.1-8b-instruct", "signal": "queue_depth", "target": "5"})
            assert api.status_code == 200, api.text
            assert api.json()["value"] >= 0
            families = {f.name for f in text_string_to_metric_families((await client.get(f"{base}/metrics")).text)}
        assert {"llmobs_scaler_requests", "llmobs_feedback"} <= families, sorted(families)
        assert any(name.startswith("llmobs_forecast") for name in families)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{exporter.scaler.port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            ref = pb.ScaledObjectRef(name="llama", namespace="ai", scalerMetadata={
                "model": "llama-3.1-8b-instruct", "signal": "queue_depth", "target": "5",
                "scalerAddress": f"127.0.0.1:{exporter.scaler.port}"})
            spec = await stub.GetMetricSpec(ref, timeout=3)
            name = spec.metricSpecs[0].metricName
            metrics = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=name), timeout=3)
        assert [m.metricName for m in metrics.metricValues] == [name]
        waiting = sum(s.requests_waiting for s in exporter.holder.current.for_model("llama-3.1-8b-instruct"))
        assert metrics.metricValues[0].metricValueFloat >= 0 and waiting >= 0
    finally:
        await exporter.stop()
        fleet_server.should_exit = True
        await fleet_task
