"""Joins GPU processes to pods and models, and builds the `llmobs_endpoint_info` rows of both modes.

Node agent: GPU process PID → /proc/<pid>/cgroup → pod UID → PodIndex (namespace, name, model hint),
model from the pod's label/annotation or the process's vLLM command line; one endpoint-info row per
(pod, GPU) it holds memory on. Central exporter: one row per (model, endpoint) from the scraped state,
with `gpu_uuid` only where the target's labels carry it (static config); the agent's rows carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from llmobs.agent.cost import EndpointUsage
from llmobs.sources.gpu.cgroup import read_cgroup, read_cmdline_model
from llmobs.sources.gpu.types import GpuDevice, GpuReading
from llmobs.sources.kubernetes.pods import endpoint_name
from llmobs.state import FleetState

if TYPE_CHECKING:  # the pod index needs the Kubernetes client; the central exporter does not
    from llmobs.sources.kubernetes.podindex import PodRef


class PodLookup(Protocol):
    def lookup(self, uid: str) -> PodRef | None: ...


@dataclass(frozen=True, slots=True)
class ProcessOnGpu:
    """A GPU process with whatever is known about who owns it ("" where unknown)."""

    device: GpuDevice
    pid: int
    used_bytes: float | None
    namespace: str = ""
    pod: str = ""
    container: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    model: str
    endpoint: str
    namespace: str
    pod: str
    node: str
    gpu_model: str
    gpu_uuid: str


def attribute_processes(reading: GpuReading, pods: PodLookup | None, proc_root: Path = Path("/proc"),
                        cmdline_model: Callable[[int, Path], str] = read_cmdline_model) -> tuple[ProcessOnGpu, ...]:
    """Who holds each GPU process: cgroup → pod (if a pod index is given) and the model it serves."""
    out: list[ProcessOnGpu] = []
    models: dict[int, str] = {}
    for p in reading.processes:
        cg = read_cgroup(p.pid, proc_root)
        ref = pods.lookup(cg.pod_uid) if (pods is not None and cg.pod_uid) else None
        if p.pid not in models:
            models[p.pid] = cmdline_model(p.pid, proc_root)
        model = (ref.model if ref else "") or models[p.pid]
        out.append(ProcessOnGpu(device=p.device, pid=p.pid, used_bytes=p.used_bytes,
                                namespace=ref.namespace if ref else "", pod=ref.name if ref else "",
                                container=cg.container_id[:12], model=model))
    return tuple(out)


def agent_endpoint_infos(processes: tuple[ProcessOnGpu, ...], node: str) -> tuple[EndpointInfo, ...]:
    """One row per (pod, model, GPU): pods the agent could name, serving a model it could name."""
    rows = {EndpointInfo(model=p.model, endpoint=endpoint_name(p.namespace, p.pod), namespace=p.namespace,
                         pod=p.pod, node=node, gpu_model=p.device.model, gpu_uuid=p.device.uuid)
            for p in processes if p.pod and p.model}
    return tuple(sorted(rows, key=lambda r: (r.model, r.endpoint, r.gpu_uuid)))


def central_endpoint_infos(state: FleetState) -> tuple[EndpointInfo, ...]:
    """The exporter's rows: one per scraped (model, endpoint), labels from the target (discovery or config)."""
    labels = {t.endpoint: t.labels for t in state.targets}
    rows: set[EndpointInfo] = set()
    for s in state.signals:
        a = s.attribution
        tl = labels.get(a.endpoint, {})
        rows.add(EndpointInfo(model=a.model, endpoint=a.endpoint, namespace=tl.get("namespace", ""),
                              pod=tl.get("pod", ""), node=a.node or tl.get("node", ""),
                              gpu_model=a.gpu_model or tl.get("gpu_model", ""), gpu_uuid=tl.get("gpu_uuid", "")))
    return tuple(sorted(rows, key=lambda r: (r.model, r.endpoint)))


def central_usage(state: FleetState) -> tuple[EndpointUsage, ...]:
    """Cost inputs from the scraped state: GPUs per endpoint from the target's `gpu_count` label (the pod's
    `nvidia.com/gpu` limit under discovery; default 1)."""
    labels = {t.endpoint: t.labels for t in state.targets}
    out: list[EndpointUsage] = []
    for s in state.signals:
        a = s.attribution
        try:
            gpus = int(labels.get(a.endpoint, {}).get("gpu_count", "1"))
        except ValueError:
            gpus = 1
        out.append(EndpointUsage(model=a.model, endpoint=a.endpoint, gpu_model=a.gpu_model, gpus=gpus,
                                 generation_tokens_rate=s.generation_tokens_rate))
    return tuple(out)
