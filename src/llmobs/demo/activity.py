"""Simulated clients of the demo: KEDA polling the scaler, and users rating answers.

Without them the demo's autoscaling and feedback panels would stay empty. Both talk to the running
servers over HTTP exactly as the real clients would; the only made-up part is who calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import uuid

import httpx

from llmobs.state import StateHolder


async def poll_like_keda(base_url: str, holder: StateHolder, interval: float, stop: asyncio.Event) -> None:
    """Ask the scaler's metrics-api for every model's queue depth each interval (KEDA's polling loop)."""
    async with httpx.AsyncClient(timeout=3) as client:
        while not stop.is_set():
            for model in holder.current.models():
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"{base_url}/api/v1/scaler/metrics",
                                     params={"model": model, "signal": "queue_depth", "target": "10"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


async def simulate_feedback(feedback_url: str, holder: StateHolder, stop: asyncio.Event, *,
                            events_per_second: float = 3.0, ttft_slo_seconds: float = 1.0, seed: int = 0) -> None:
    """Post thumbs ratings whose negativity follows the latency users currently get.

    A user whose first token came after the SLO is far likelier to rate the answer down, which is the
    relation the feedback-by-TTFT panel is there to show.
    """
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            events = []
            for s in holder.current.signals:
                for _ in range(_poisson(rng, events_per_second / max(len(holder.current.signals), 1))):
                    p90 = s.ttft.quantiles.get(0.9, math.nan)
                    ttft = (p90 if math.isfinite(p90) else 0.2) * rng.uniform(0.3, 1.3)
                    negative = rng.random() < (0.35 if ttft > ttft_slo_seconds else 0.05)
                    events.append({"request_id": f"cmpl-{uuid.UUID(int=rng.getrandbits(128)).hex}",
                                   "model": s.attribution.model, "endpoint": s.attribution.endpoint,
                                   "app": "chat", "scale": "thumbs", "rating": -1 if negative else 1,
                                   "ttft_ms": round(ttft * 1000, 1)})
            if events:
                with contextlib.suppress(httpx.HTTPError):
                    await client.post(f"{feedback_url}/v1/feedback", json={"events": events})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
