"""Wires the stages together for a running process: target source → pipeline → exporter server.

Kept apart from the CLI so tests and the demo start exactly what `llmobs run` starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from llmobs.config import LlmobsConfig
from llmobs.pipeline import Pipeline
from llmobs.serving.app import create_app
from llmobs.serving.collector import FleetCollector
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, TargetSource
from llmobs.state import StateHolder


@dataclass
class Exporter:
    """A running exporter: its state, registry, pipeline and bound HTTP port."""

    holder: StateHolder
    registry: CollectorRegistry
    pipeline: Pipeline
    port: int
    _server: uvicorn.Server
    _tasks: list[asyncio.Task]
    _stop: asyncio.Event

    async def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        await self.pipeline.scraper.aclose()


async def serve_asgi(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, asyncio.Task, int]:
    """Start uvicorn inside the running loop and return once it listens (port 0 picks a free one)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                           access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise the bind error
            raise RuntimeError(f"server on {host}:{port} exited before listening")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, task, bound


async def start_exporter(config: LlmobsConfig, source: TargetSource | None = None) -> Exporter:
    holder = StateHolder()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    scraper = Scraper(
        timeout_seconds=config.scrape.timeout_seconds,
        max_concurrency=config.scrape.max_concurrency,
        max_response_bytes=config.scrape.max_response_bytes,
    )
    pipeline = Pipeline(
        source or StaticTargetSource(config.build_targets()), scraper, holder,
        window_seconds=config.signals.window_seconds, ttft_slo_seconds=config.signals.ttft_slo_seconds,
    )
    stop = asyncio.Event()
    app = create_app(holder, registry, max_state_age_seconds=max(30.0, 10 * config.scrape.interval_seconds))
    server, server_task, port = await serve_asgi(app, config.server.host, config.server.port)
    loop_task = asyncio.create_task(pipeline.run_forever(config.scrape.interval_seconds, stop))
    return Exporter(holder, registry, pipeline, port, server, [loop_task, server_task], stop)
