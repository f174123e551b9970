"""The cost PromQL that docs/gpu-and-kubernetes.md gives, evaluated by the real promtool on series shaped
like the agent's and the exporter's, must equal what llmobs' own cost function computes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from llmobs.agent import CostConfig, EndpointUsage, cost_per_1k_generated_tokens
from tests.conftest import REPO
from tests.promserver import require_binary

DOC = REPO / "docs" / "gpu-and-kubernetes.md"
H100 = "NVIDIA-H100-80GB-HBM3"


def doc_cost_queries() -> list[str]:
    blocks = re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.S)
    return [b.strip() for b in blocks if "llmobs_gpu_cost_per_hour" in b]


def test_documented_cost_promql_matches_the_cost_function(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    with_agents, one_gpu_each = doc_cost_queries()

    def info(pod: str, gpu: str, job: str) -> str:
        return (f'llmobs_endpoint_info{{model="llama",endpoint="llm/{pod}",namespace="llm",pod="{pod}",node="n1",'
                f'gpu_model="{H100}",gpu_uuid="{gpu}",job="{job}"}}')

    # The agent: 2 GPUs under llm/a, 1 under llm/b. The exporter: one GPU-less row per endpoint.
    series = [info("a", "GPU-1", "agent"), info("a", "GPU-2", "agent"), info("b", "GPU-3", "agent"),
              info("a", "", "exporter"), info("b", "", "exporter")]
    rate = 'llmobs_generation_tokens_rate{model="llama",endpoint="%s",node="n1",gpu_model="%s",job="exporter"}'
    test = {
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                *({"series": s, "values": "1x5"} for s in series),
                {"series": f'llmobs_gpu_cost_per_hour{{gpu_model="{H100}",job="exporter"}}', "values": "3.6x5"},
                {"series": rate % ("llm/a", H100), "values": "400x5"},
                {"series": rate % ("llm/b", H100), "values": "200x5"},
            ],
            "promql_expr_test": [
                {"expr": with_agents, "eval_time": "2m",
                 "exp_samples": [{"labels": f'{{model="llama",gpu_model="{H100}"}}', "value": 0.005}]},
                {"expr": one_gpu_each, "eval_time": "2m",
                 "exp_samples": [{"labels": f'{{model="llama",gpu_model="{H100}"}}', "value": 2 / 600}]},
            ],
        }],
    }
    path = tmp_path / "cost_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # The exported gauge computes the same figure: 2 GPUs on llm/a, 1 on llm/b, $3.6/GPU-h, 600 tok/s.
    cost = cost_per_1k_generated_tokens([EndpointUsage("llama", "llm/a", H100, 2, 400.0),
                                         EndpointUsage("llama", "llm/b", H100, 1, 200.0)],
                                        CostConfig(gpu_hourly_usd={H100: 3.6}))
    assert cost[("llama", H100)] == pytest.approx(0.005)


def test_documented_gpu_to_pod_join(tmp_path: Path) -> None:
    """The query that puts model and pod on a GPU series, on agent-shaped series, by the real promtool."""
    promtool = require_binary("promtool")
    blocks = re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.S)
    (join,) = [b.strip() for b in blocks if "group_left (model, namespace, pod)" in b]
    gpu = f'node="n1",gpu_model="{H100}",job="agent"'
    test = {"evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": f'llmobs_gpu_utilization_ratio{{{gpu},gpu="0",gpu_uuid="GPU-1",gpu_instance=""}}',
             "values": "0.9x5"},
            {"series": f'llmobs_gpu_utilization_ratio{{{gpu},gpu="1",gpu_uuid="GPU-2",gpu_instance=""}}',
             "values": "0.1x5"},  # idle GPU: no pod, drops out of the join
            {"series": f'llmobs_endpoint_info{{model="llama",endpoint="llm/a",namespace="llm",pod="a",{gpu},'
                       f'gpu_uuid="GPU-1"}}', "values": "1x5"},
            {"series": f'llmobs_endpoint_info{{model="llama",endpoint="llm/a",namespace="llm",pod="a",node="n1",'
                       f'gpu_model="{H100}",gpu_uuid="",job="exporter"}}', "values": "1x5"},
        ],
        "promql_expr_test": [{"expr": join, "eval_time": "2m", "exp_samples": [{
            "labels": f'{{{gpu},gpu="0",gpu_uuid="GPU-1",'
                      f'model="llama",namespace="llm",pod="a"}}', "value": 0.9}]}],
    }]}
    path = tmp_path / "join_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
