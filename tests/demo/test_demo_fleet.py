"""The demo fleet as `make run` shows it: a proxy-style door page counting every arrival per model (so the
door panels and the status page have demand to show), and a restarted replica that llmobs sees start."""

from __future__ import annotations

import time

import numpy as np

from llmobs.demo.fleet import ModelDeployment, SimulatedFleet, create_fleet_app
from llmobs.demo.trace import RequestTrace
from llmobs.pipeline import Pipeline
from llmobs.serving.asgi import serve_asgi
from llmobs.sources.door import DoorTarget
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource
from llmobs.state import StateHolder


def _trace(arrivals: list[float]) -> RequestTrace:
    n = len(arrivals)
    return RequestTrace("t", np.array(arrivals), np.full(n, 100), np.full(n, 10))


def _fleet(start: float) -> SimulatedFleet:
    return SimulatedFleet([ModelDeployment("a", _trace([0.5, 1.0, 1.5, 9.0]), replicas=2),
                           ModelDeployment("b", _trace([2.0]), replicas=1)], start=start)


def test_door_page_counts_every_arrival_per_model_as_litellm_writes_it() -> None:
    fleet = _fleet(start=0.0)
    page = fleet.door_page(now=5.0)
    assert ('litellm_proxy_total_requests_metric_total{requested_model="a",route="/v1/chat/completions",'
            'status_code="200"} 3.0') in page
    assert 'requested_model="b"' in page and page.endswith("\n")
    assert 'requested_model="a",route="/v1/chat/completions",status_code="200"} 4.0' in fleet.door_page(now=10.0)


async def test_llmobs_reads_the_demo_door_and_measures_a_restarted_replicas_cold_start() -> None:
    fleet = _fleet(start=time.time() - 5.0)
    server, task, port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{port}"
        targets = fleet.targets(base)
        door = DoorTarget(f"{base}/door/metrics", "litellm", "litellm")
        pipeline = Pipeline(StaticTargetSource(targets), Scraper(), StateHolder(), doors=[door])
        await pipeline.run_cycle()
        state = await pipeline.run_cycle()
        assert {d.model for d in state.doors} == {"a", "b"}
        assert sum(d.requests_total for d in state.doors if d.model == "a") >= 3
        assert state.cold_starts == {}  # the demo's replicas were running before llmobs watched them
        fleet.replica("a-1").restart(time.time())
        state = await pipeline.run_cycle()
        [cold] = [h for h in state.cold_starts["a"].histograms if h.start == "process_start"]
        assert cold.count == 1 and 0 <= cold.sum < 5
        await pipeline.scraper.aclose()
    finally:
        server.should_exit = True
        await task
