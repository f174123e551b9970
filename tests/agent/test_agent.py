"""The node agent and the attribution/cost collectors: rendering, process → pod → model joins, the names
alerts and dashboards query, the agent's HTTP surface with and without a driver, cost, and the CLI."""

from __future__ import annotations

import ctypes.util
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pynvml
import pytest
import typer
from kubernetes import client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from llmobs.agent import (
    AgentConfig,
    CostCollector,
    CostConfig,
    EndpointInfoCollector,
    EndpointUsage,
    GpuCollector,
    agent_endpoint_infos,
    attribute_processes,
    central_endpoint_infos,
    central_usage,
    cost_per_1k_generated_tokens,
    register,
)
from llmobs.agent.server import start_agent
from llmobs.sources.gpu import NvmlReader, load_catalogue
from llmobs.sources.gpu.fake import FakeGpu, FakeNvml
from llmobs.sources.kubernetes import KubernetesConfig, PodIndex, PodRef
from tests.conftest import REPO
from tests.factories import make_signals, make_state, make_target_health
from tests.k8s.apiserver import FakeApiServer, pod

ROOT = REPO
UID_A = "0a2b3c4d-1111-4222-8333-444455556666"
CID = "8f2e4c1b9d7a6e5f4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291807f6e5d"


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(registry).decode()
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def proc_root(tmp_path: Path, pids: dict[int, tuple[str, bytes]]) -> Path:
    """A fake /proc: pid → (cgroup text, NUL-separated cmdline)."""
    for pid, (cgroup, cmdline) in pids.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(cgroup)
        (tmp_path / str(pid) / "cmdline").write_bytes(cmdline)
    return tmp_path


class Pods:
    def __init__(self, refs: dict[str, PodRef]) -> None:
        self.refs = refs

    def lookup(self, uid: str) -> PodRef | None:
        return self.refs.get(uid)


def gpu_registry(fake: FakeNvml, pods: Pods | None = None, root: Path = Path("/nonexistent")) -> CollectorRegistry:
    reader = NvmlReader(lambda: fake)
    reading = reader.collect()
    processes = attribute_processes(reading, pods, root)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector("gpu-node-a", reader.catalogue, lambda: (reading, processes)))
    registry.register(EndpointInfoCollector(lambda: agent_endpoint_infos(processes, "gpu-node-a")))
    return registry


def test_every_gpu_name_alerts_and_dashboards_query_is_exported() -> None:
    queried: set[str] = set()
    for path in [*ROOT.glob("alerts/*.yaml"), *ROOT.glob("dashboards/*.json")]:
        queried |= set(re.findall(r"(?<![\w:])llmobs_gpu_[a-z_]+(?![\w:])", path.read_text()))
    queried -= {"llmobs_gpu_memory_utilization"}  # only ever inside the recording rules' `gpu:…:ratio` names
    assert {"llmobs_gpu_xid_errors_total", "llmobs_gpu_ecc_errors_total", "llmobs_gpu_throttle_reasons",
            "llmobs_gpu_memory_used_bytes", "llmobs_gpu_memory_total_bytes"} <= queried
    fake = FakeNvml([FakeGpu("GPU-a", ecc_uncorrected=1, throttle_mask=pynvml.nvmlClocksEventReasonHwThermalSlowdown)])
    fake.gpus[0].events.append(79)
    reader = NvmlReader(lambda: fake)
    reader.collect()
    reading = reader.collect()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector("gpu-node-a", reader.catalogue, lambda: (reading, ())))
    got = samples(registry)
    names = {n for n, _, _ in got}
    assert queried <= names, queried - names
    # The labels the alert rules and the recording-rule join use.
    for name, labels, _ in got:
        if name.startswith("llmobs_gpu_") and name != "llmobs_gpu_info":
            assert {"node", "gpu_uuid", "gpu_model"} <= set(labels), name
    xid = [(lb["xid"], v) for n, lb, v in got if n == "llmobs_gpu_xid_errors_total"]
    assert xid == [("79", 1.0)]
    assert ("llmobs_gpu_ecc_errors_total", "uncorrected", 1.0) in {(n, lb.get("type"), v) for n, lb, v in got}
    throttled = {lb["reason"] for n, lb, v in got if n == "llmobs_gpu_throttle_reasons" and v == 1}
    assert throttled == {"hw_thermal"}


def test_catalogue_families_are_described_once_each() -> None:
    registry = gpu_registry(FakeNvml([FakeGpu("GPU-a", nvlinks=1)]))
    text = generate_latest(registry).decode()
    for metric in {f.metric for f in load_catalogue().fields}:
        base = metric.removesuffix("_total")
        assert len(re.findall(rf"^# HELP {base}(_total)? ", text, re.M)) == 1, metric


def test_without_nvml_only_nvml_up_zero_is_exported() -> None:
    fake = FakeNvml([FakeGpu("GPU-a")], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    assert samples(gpu_registry(fake)) == [("llmobs_nvml_up", {}, 0.0)]


def test_processes_are_attributed_to_pods_and_models(tmp_path: Path) -> None:
    cgroup = (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_A.replace('-', '_')}.slice/"
              f"cri-containerd-{CID}.scope\n")
    root = proc_root(tmp_path, {
        100: (cgroup, b"vllm\0serve\0meta-llama/Llama-3.1-8B\0--served-model-name\0llama-8b\0"),
        200: ("0::/system.slice/some-host-job.service\n", b"python3\0train.py\0"),
    })
    fake = FakeNvml([FakeGpu("GPU-a", processes=[(100, 30 * 2**30), (200, 2**30)]), FakeGpu("GPU-b")])
    pods = Pods({UID_A: PodRef("llm", "llama-0", UID_A, model="", matches=True)})
    got = samples(gpu_registry(fake, pods, root))
    procs = {lb["pid"]: lb | {"value": v} for n, lb, v in got if n == "llmobs_gpu_process_memory_bytes"}
    assert procs["100"]["namespace"] == "llm" and procs["100"]["pod"] == "llama-0"
    assert procs["100"]["container"] == CID[:12] and procs["100"]["model"] == "llama-8b"
    assert procs["100"]["value"] == 30 * 2**30 and procs["100"]["gpu_uuid"] == "GPU-a"
    assert procs["200"]["pod"] == "" and procs["200"]["model"] == ""
    info = [lb for n, lb, _ in got if n == "llmobs_endpoint_info"]
    assert info == [{"model": "llama-8b", "endpoint": "llm/llama-0", "namespace": "llm", "pod": "llama-0",
                     "node": "gpu-node-a", "gpu_model": "NVIDIA-H100-80GB-HBM3", "gpu_uuid": "GPU-a"}]
    # The join the recording rule `model_gpu:llmobs_gpu_memory_utilization:ratio` makes: (node, gpu_uuid).
    mem = {(lb["node"], lb["gpu_uuid"]) for n, lb, _ in got if n == "llmobs_gpu_memory_used_bytes"}
    assert (info[0]["node"], info[0]["gpu_uuid"]) in mem


def test_pod_model_label_wins_over_command_line(tmp_path: Path) -> None:
    root = proc_root(tmp_path, {7: (f"0::/kubepods/pod{UID_A}/{CID}\n", b"vllm\0serve\0/models/x\0")})
    fake = FakeNvml([FakeGpu("GPU-a", processes=[(7, 2**30)])])
    reading = NvmlReader(lambda: fake).collect()
    (p,) = attribute_processes(reading, Pods({UID_A: PodRef("ns", "p", UID_A, model="from-label")}), root)
    assert p.model == "from-label"


def test_cost_per_1k_generated_tokens() -> None:
    cfg = CostConfig(gpu_hourly_usd={"NVIDIA-H100-80GB-HBM3": 4.0, "NVIDIA L4": 0.8})
    usage = [EndpointUsage("llama", "e1", "NVIDIA-H100-80GB-HBM3", 2, 1000.0),
             EndpointUsage("llama", "e2", "NVIDIA-H100-80GB-HBM3", 2, 1000.0),
             EndpointUsage("llama", "e3", "NVIDIA-L4", 1, 100.0),       # spelled like the node label
             EndpointUsage("qwen", "e4", "NVIDIA-H100-80GB-HBM3", 1, 0.0),  # idle: no per-token cost
             EndpointUsage("qwen", "e5", "unknown-gpu", 1, 10.0)]       # no price: omitted
    cost = cost_per_1k_generated_tokens(usage, cfg)
    # 4 GPUs x $4/h = $16/h over 2,000 tok/s = 7.2M tok/h → $16 / 7,200 per 1k tokens.
    assert cost[("llama", "NVIDIA-H100-80GB-HBM3")] == pytest.approx(16 / 7200)
    assert cost[("llama", "NVIDIA-L4")] == pytest.approx(0.8 / 360)
    assert set(cost) == {("llama", "NVIDIA-H100-80GB-HBM3"), ("llama", "NVIDIA-L4")}
    with pytest.raises(ValueError, match="finite price"):
        CostConfig(gpu_hourly_usd={"x": -1.0})


def test_central_rows_and_cost_collector_from_fleet_state() -> None:
    h100 = "NVIDIA-H100-80GB-HBM3"
    state = make_state(
        make_signals("llama", "llm/llama-0", node="n1", gpu_model=h100, generation_tokens_rate=500.0),
        make_signals("llama", "static-0", node="n1", gpu_model=h100, generation_tokens_rate=100.0),
        targets=(make_target_health("llm/llama-0", labels={"namespace": "llm", "pod": "llama-0", "gpu_count": "2"}),
                 make_target_health("static-0", labels={"gpu_uuid": "GPU-static"})), time=1.0)
    infos = central_endpoint_infos(state)
    assert [(i.endpoint, i.namespace, i.pod, i.node, i.gpu_uuid) for i in infos] == [
        ("llm/llama-0", "llm", "llama-0", "n1", ""), ("static-0", "", "", "n1", "GPU-static")]
    assert [(u.endpoint, u.gpus) for u in central_usage(state)] == [("llm/llama-0", 2), ("static-0", 1)]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CostCollector(CostConfig(gpu_hourly_usd={"NVIDIA-H100-80GB-HBM3": 3.6}),
                                    lambda: central_usage(state)))
    got = samples(registry)
    assert ("llmobs_gpu_cost_per_hour", {"gpu_model": "NVIDIA-H100-80GB-HBM3"}, 3.6) in got
    (cost,) = [v for n, _, v in got if n == "llmobs_cost_per_1k_generated_tokens"]
    assert cost == pytest.approx(3 * 3.6 / (600 * 3.6))


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()


async def test_agent_serves_gpu_and_pod_attribution(tmp_path: Path, api: FakeApiServer) -> None:
    api.upsert("pods", pod("llama-0", uid=UID_A, node="gpu-node-a", labels={"llmobs.io/model": "llama"}))
    root = proc_root(tmp_path, {4242: (f"0::/kubepods/besteffort/pod{UID_A}/{CID}\n", b"vllm\0serve\0x\0")})
    fake = FakeNvml([FakeGpu("GPU-a", processes=[(4242, 10 * 2**30)])])
    kcfg = KubernetesConfig(enabled=True, api_host=api.url)
    index = PodIndex(kcfg, "gpu-node-a", client.ApiClient(client.Configuration(host=api.url)))
    cfg = AgentConfig(node_name="gpu-node-a", host="127.0.0.1", port=0, interval_seconds=0.05, proc_root=root,
                      kubernetes=kcfg)
    agent = await start_agent(cfg, lib_factory=lambda: fake, pod_index=index)
    try:
        assert index.watcher.wait_synced(5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.port}") as http:
            for _ in range(100):  # the loop collects again once the pod index has synced
                text = (await http.get("/metrics")).text
                if 'pod="llama-0"' in text:
                    break
                await agent_sleep()
            health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["nvml_up"] is True
        assert "llmobs_nvml_up 1.0" in text
        assert re.search(r'llmobs_gpu_process_memory_bytes\{[^}]*pod="llama-0"[^}]*\} 1\.073741824e\+10', text)
        assert re.search(r'llmobs_endpoint_info\{[^}]*endpoint="llm/llama-0"[^}]*gpu_uuid="GPU-a"[^}]*model="llama"',
                         text)
        assert "llmobs_kubernetes_watch_lists_total" in text
    finally:
        await agent.stop()
    assert not index.watcher.running


async def agent_sleep() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_agent_with_the_real_pynvml_on_this_machine() -> None:
    """No double: on a driverless machine the agent serves `llmobs_nvml_up 0` and stays healthy."""
    driver_present = ctypes.util.find_library("nvidia-ml") is not None
    agent = await start_agent(AgentConfig(node_name="n", host="127.0.0.1", port=0, interval_seconds=0.05))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.port}") as http:
            text = (await http.get("/metrics")).text
            health = await http.get("/healthz")
        assert f"llmobs_nvml_up {1.0 if driver_present else 0.0}" in text
        assert health.status_code == 200 and health.json()["nvml_up"] is driver_present
    finally:
        await agent.stop()


def test_cli_registration(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command, as in cli.py, so `agent` is a sub-command
        """placeholder"""

    good = tmp_path / "agent.yaml"
    good.write_text("node_name: gpu-node-a\nport: 9555\nkubernetes:\n  enabled: true\n  namespaces: [llm]\n")
    r = CliRunner().invoke(app, ["agent", "--config", str(good), "--check-config"])
    assert r.exit_code == 0 and "node gpu-node-a, port 9555, kubernetes on" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("kubernetes:\n  namespace: [llm]\n")
    r = CliRunner().invoke(app, ["agent", "--config", str(bad), "--check-config"])
    assert r.exit_code == 2 and "kubernetes.namespace" in r.output
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text("kubernetes:\n  enabled: true\n")
    r = CliRunner().invoke(app, ["agent", "--config", str(nameless), "--check-config"], env={"NODE_NAME": ""})
    assert r.exit_code == 2 and "NODE_NAME" in r.output
    r = CliRunner().invoke(app, ["agent", "--config", str(nameless), "--check-config"], env={"NODE_NAME": "n7"})
    assert r.exit_code == 0 and "node n7" in r.output
