"""The joules-per-generated-token PromQL that docs/gpu-and-kubernetes.md gives, evaluated by the real promtool
on the series the agent exports (rendered by its collectors from the in-memory NVML) and the exporter's token
rates: a driver reload (the energy counter starting again) does not bend the figure, and a model whose GPUs
lack the counter gets no figure rather than 0 J."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.agent import EndpointInfo, EndpointInfoCollector, GpuCollector
from llmobs.sources.gpu import NvmlReader
from llmobs.sources.gpu.fake import FakeGpu, FakeNvml
from tests.conftest import REPO
from tests.promserver import require_binary

DOC = REPO / "docs" / "gpu-and-kubernetes.md"
H100 = "NVIDIA-H100-80GB-HBM3"


def documented_energy_query() -> str:
    blocks = re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.S)
    (query,) = [b.strip() for b in blocks if "llmobs_gpu_energy_joules_total" in b]
    return query


def test_documented_energy_per_token_promql(tmp_path: Path) -> None:
    promtool = require_binary("promtool")

    gpus = [FakeGpu(uuid, energy_mj=None if uuid == "GPU-3" else 1) for uuid in ("GPU-1", "GPU-2", "GPU-3", "GPU-4")]
    reader = NvmlReader(lambda: FakeNvml(gpus))
    reading = reader.collect()
    rows = [EndpointInfo(model, f"llm/{pod}", "llm", pod, "n1", H100, uuid)
            for model, pod, uuid in [("llama", "a", "GPU-1"), ("llama", "a", "GPU-2"), ("llama", "b", "GPU-4"),
                                     ("mistral", "c", "GPU-3")]]
    registry = CollectorRegistry()
    registry.register(GpuCollector("n1", reader.catalogue, lambda: (reading, ())))
    registry.register(EndpointInfoCollector(lambda: rows))
    exported = [line.rsplit(" ", 1)[0] for line in generate_latest(registry).decode().splitlines()]

    def agent_series(name: str, uuid: str) -> str:
        (series,) = [x for x in exported if x.startswith(name + "{") and f'gpu_uuid="{uuid}"' in x]
        return series[:-1] + ',job="agent"}'

    def energy(gpu: str) -> str:
        return agent_series("llmobs_gpu_energy_joules_total", gpu)

    assert not any(x.startswith("llmobs_gpu_energy_joules_total{") and "GPU-3" in x for x in exported)

    def rate(model: str, pod: str) -> str:
        return f'llmobs_generation_tokens_rate{{model="{model}",endpoint="llm/{pod}",node="n1",gpu_model="{H100}"}}'

    # llama: llm/a on GPU-1 and GPU-2 (400 tok/s), llm/b on GPU-4 (200 tok/s); every GPU draws 300 W
    # (18,000 J a minute). GPU-2's driver reloads after 2m: its counter restarts and has counted 18,000 J
    # by the next sample. mistral runs on GPU-3, whose NVML has no energy counter: no series at all.
    test = {"evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            *({"series": agent_series("llmobs_endpoint_info", r.gpu_uuid), "values": "1x8"} for r in rows),
            {"series": energy("GPU-1"), "values": "0+18000x8"},
            {"series": energy("GPU-2"), "values": "100000 118000 136000 18000 36000 54000 72000 90000 108000"},
            {"series": energy("GPU-4"), "values": "5000+18000x8"},
            {"series": rate("llama", "a"), "values": "400x8"},
            {"series": rate("llama", "b"), "values": "200x8"},
            {"series": rate("mistral", "c"), "values": "100x8"},
        ],
        "promql_expr_test": [{
            "expr": documented_energy_query(), "eval_time": "6m",
            # 3 GPUs × 300 W ÷ 600 tokens/s; no mistral sample.
            "exp_samples": [{"labels": f'{{model="llama",gpu_model="{H100}"}}', "value": 1.5}],
        }],
    }]}
    path = tmp_path / "energy_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
