"""`llmobs agent`: NVML + the pods on this node, served as /metrics on its own port.

The loop collects every `interval_seconds` in a worker thread (NVML and /proc reads block) and swaps
one immutable (reading, processes) pair; /metrics only renders the last pair. Without a driver the
agent still serves: `llmobs_nvml_up 0`, one warning, and the Kubernetes side keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmobs.agent.attribution import PodLookup, ProcessOnGpu, agent_endpoint_infos, attribute_processes
from llmobs.agent.collectors import EndpointInfoCollector, GpuCollector, WatchStatsCollector
from llmobs.agent.config import AgentConfig
from llmobs.serving.asgi import serve_asgi
from llmobs.serving.exposition import metrics_route
from llmobs.sources.gpu.nvml import NvmlLib, load_pynvml
from llmobs.sources.gpu.reader import NvmlReader
from llmobs.sources.gpu.types import GpuReading
from llmobs.sources.kubernetes.client import make_api_client
from llmobs.sources.kubernetes.podindex import PodIndex

log = logging.getLogger(__name__)


@dataclass
class AgentState:
    reading: GpuReading = field(default_factory=lambda: GpuReading(nvml_up=False))
    processes: tuple[ProcessOnGpu, ...] = ()
    collections: int = 0


@dataclass
class RunningAgent:
    config: AgentConfig
    reader: NvmlReader
    registry: CollectorRegistry
    port: int
    state: AgentState
    pod_index: PodIndex | None
    _tasks: list[asyncio.Task[None]]
    _stop: asyncio.Event
    _server: uvicorn.Server

    async def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        if self.pod_index is not None:
            await asyncio.to_thread(self.pod_index.stop)
        await asyncio.to_thread(self.reader.close)


def create_agent_app(registry: CollectorRegistry, state: AgentState) -> Starlette:
    async def healthz(request: Request) -> Response:
        # The agent is healthy while its loop runs, driver or not: a GPU-less node is not a crash loop.
        return JSONResponse({"status": "ok", "nvml_up": state.reading.nvml_up, "collections": state.collections})

    return Starlette(routes=[metrics_route(registry), Route("/healthz", healthz)])


def _collect_once(reader: NvmlReader, pods: PodLookup | None, config: AgentConfig,
                  state: AgentState) -> None:
    reading = reader.collect()
    processes = attribute_processes(reading, pods, config.proc_root)
    state.reading, state.processes = reading, processes  # readers see the old pair or the new, both whole
    state.collections += 1


async def _loop(reader: NvmlReader, pods: PodLookup | None, config: AgentConfig, state: AgentState,
                stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(_collect_once, reader, pods, config, state)
        except Exception:  # the loop must outlive any single bad collection
            log.exception("GPU collection failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=config.interval_seconds)


async def start_agent(config: AgentConfig, *, lib_factory: Callable[[], NvmlLib] = load_pynvml,
                      pod_index: PodIndex | None = None) -> RunningAgent:
    """Start the loop and the HTTP server; `pod_index` defaults to a watch of this node's pods when
    `kubernetes.enabled` (tests pass their own, built against a stand-in API server)."""
    if pod_index is None and config.kubernetes.enabled:
        if not config.node_name:
            raise ValueError("kubernetes.enabled needs node_name (set NODE_NAME from spec.nodeName)")
        pod_index = PodIndex(config.kubernetes, config.node_name, make_api_client(config.kubernetes))
    if pod_index is not None:
        pod_index.start()
    reader = NvmlReader(lib_factory, retry_init_seconds=config.nvml_retry_seconds)
    state = AgentState()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector(config.node_name, reader.catalogue, lambda: (state.reading, state.processes)))
    registry.register(EndpointInfoCollector(lambda: agent_endpoint_infos(state.processes, config.node_name)))
    if pod_index is not None:
        idx = pod_index
        registry.register(WatchStatsCollector(lambda: {idx.watcher.name: idx.watcher.stats}))
    stop = asyncio.Event()
    await asyncio.to_thread(_collect_once, reader, pod_index, config, state)  # serve a real first page
    server, server_task, port = await serve_asgi(create_agent_app(registry, state), config.host, config.port)
    loop_task = asyncio.create_task(_loop(reader, pod_index, config, state, stop))
    log.info("llmobs agent on %s:%d (node %r, nvml_up=%s)", config.host, port, config.node_name,
             state.reading.nvml_up)
    return RunningAgent(config, reader, registry, port, state, pod_index, [loop_task, server_task], stop, server)


async def run_agent(config: AgentConfig) -> None:
    """What `llmobs agent` runs: start, wait for SIGINT/SIGTERM, stop cleanly."""
    agent = await start_agent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await agent.stop()
