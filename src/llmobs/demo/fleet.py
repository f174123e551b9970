"""A simulated vLLM fleet served over HTTP: each replica's page at /replicas/<name>/metrics.

Arrivals come from a real trace per model, dispatched round-robin across that model's replicas (as a
Kubernetes Service would), and the trace loops when it ends. Everything advances lazily when a page
is read, so an idle replica costs nothing and a thousand replicas stay cheap.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from llmobs.demo.page import render_replica
from llmobs.demo.replica import ReplicaSpec, SimulatedReplica
from llmobs.demo.trace import RequestTrace, default_traces_dir, load_request_trace
from llmobs.sources.targets import SchedulerLimits, Target

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class ModelDeployment:
    """One model of the demo fleet: its trace, replica count and where the replicas run."""

    model: str
    trace: RequestTrace
    replicas: int
    spec: ReplicaSpec = field(default_factory=ReplicaSpec)
    nodes: tuple[str, ...] = ()
    gpu_model: str = ""
    speedup: float = 1.0


class _ModelStream:
    def __init__(self, deployment: ModelDeployment, start: float, seed: int) -> None:
        self.deployment = deployment
        self.start = start
        self.replicas = [
            SimulatedReplica(deployment.model, deployment.spec, start, seed=seed * 1000 + i)
            for i in range(deployment.replicas)
        ]
        self.cursor = 0
        self.loop_offset = 0.0
        self.next_replica = 0
        self.dispatched = 0  # requests that arrived for this model: what a proxy in front would count

    def dispatch(self, now: float) -> None:
        trace = self.deployment.trace
        horizon = (now - self.start) * self.deployment.speedup
        n = len(trace.arrivals)
        while n:
            t = trace.arrivals[self.cursor] + self.loop_offset
            if t > horizon:
                return
            replica = self.replicas[self.next_replica]
            self.next_replica = (self.next_replica + 1) % len(self.replicas)
            replica.submit(self.start + t / self.deployment.speedup,
                           int(trace.prompt_tokens[self.cursor]), int(trace.output_tokens[self.cursor]))
            self.cursor += 1
            self.dispatched += 1
            if self.cursor == n:
                self.cursor = 0
                self.loop_offset += trace.duration + 1.0


class SimulatedFleet:
    def __init__(self, deployments: list[ModelDeployment], start: float | None = None) -> None:
        start = time.time() if start is None else start
        self.streams = [_ModelStream(d, start, seed=i) for i, d in enumerate(deployments)]
        self._by_name: dict[str, tuple[_ModelStream, SimulatedReplica]] = {}
        self._names: list[str] = []
        for stream in self.streams:
            for i, replica in enumerate(stream.replicas):
                name = f"{stream.deployment.model}-{i}"
                self._by_name[name] = (stream, replica)
                self._names.append(name)

    @property
    def replica_names(self) -> list[str]:
        return list(self._names)

    def replica(self, name: str) -> SimulatedReplica:
        return self._by_name[name][1]

    def page(self, name: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        stream, replica = self._by_name[name]
        stream.dispatch(now)
        replica.advance(now)
        return render_replica(replica)

    def door_page(self, now: float | None = None) -> str:
        """What a LiteLLM proxy in front of the fleet would show: every request that arrived, per model (the
        names LiteLLM's open-source Prometheus callback writes; docs/doors.md)."""
        now = time.time() if now is None else now
        name = "litellm_proxy_total_requests_metric_total"
        lines = [f"# HELP {name} Total number of requests made to the proxy server", f"# TYPE {name} counter"]
        for stream in self.streams:
            stream.dispatch(now)
            model = stream.deployment.model
            lines.append(f'{name}{{requested_model="{model}",route="/v1/chat/completions",status_code="200"}} '
                         f"{float(stream.dispatched)!r}")
        return "\n".join(lines) + "\n"

    def targets(self, base_url: str) -> list[Target]:
        """Scrape targets for this fleet served at base_url, with node and GPU attribution."""
        out = []
        for stream in self.streams:
            d = stream.deployment
            for i, _ in enumerate(stream.replicas):
                labels = {"gpu_model": d.gpu_model} if d.gpu_model else {}
                if d.nodes:
                    labels["node"] = d.nodes[i % len(d.nodes)]
                name = f"{d.model}-{i}"
                # A stable made-up GPU UUID per replica, so GPU panels can join on it as with NVML's.
                labels["gpu_uuid"] = f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, 'llmobs-demo/' + name)}"
                out.append(Target(url=f"{base_url}/replicas/{name}/metrics", name=name, labels=labels,
                                  scheduler=SchedulerLimits(d.spec.max_num_seqs, d.spec.max_num_batched_tokens)))
        return out


def create_fleet_app(fleet: SimulatedFleet) -> Starlette:
    async def metrics(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in fleet._by_name:
            return PlainTextResponse("no such replica\n", status_code=404)
        return Response(fleet.page(name), headers={"Content-Type": CONTENT_TYPE})

    async def restart(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in fleet._by_name:
            return PlainTextResponse("no such replica\n", status_code=404)
        fleet.replica(name).restart(time.time())
        return PlainTextResponse("restarted\n")

    async def door(request: Request) -> Response:
        return Response(fleet.door_page(), headers={"Content-Type": CONTENT_TYPE})

    return Starlette(routes=[
        Route("/door/metrics", door),
        Route("/replicas/{name}/metrics", metrics),
        Route("/replicas/{name}/restart", restart, methods=["POST"]),
    ])


def default_fleet(traces_dir: Path | None = None, speedup: float = 1.0) -> SimulatedFleet:
    """The embedded default of `make run`: two models, three replicas, driven by Azure 2023 traces."""
    traces = traces_dir or default_traces_dir()
    conv = load_request_trace(traces / "AzureLLMInferenceTrace_conv.csv")
    code = load_request_trace(traces / "AzureLLMInferenceTrace_code.csv")
    return SimulatedFleet([
        ModelDeployment("llama-3.1-8b-instruct", conv, replicas=2, nodes=("gpu-node-a", "gpu-node-b"),
                        gpu_model="NVIDIA-H100-80GB-HBM3", speedup=speedup,
                        spec=ReplicaSpec(kv_blocks=1024, max_num_seqs=48)),
        ModelDeployment("qwen2.5-coder-7b", code, replicas=1, nodes=("gpu-node-c",),
                        gpu_model="NVIDIA-L40S", speedup=speedup,
                        spec=ReplicaSpec(kv_blocks=1536, max_num_seqs=48)),
    ])
