"""The scaling-chain series as `llmobs run` exposes them, from the stand-in API server's HPAs, ScaledObjects
and pods: HPA desired/current/last scale, ScaledObject conditions, pods Ready or not, and a trigger naming a
model llmobs does not see."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.agent.central import register_central_collectors
from llmobs.sources.kubernetes import KubernetesConfig, KubernetesTargetSource
from llmobs.state import FleetState
from tests.k8s.apiserver import FakeApiServer, hpa, pod, scaled_object


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def wait_for(read: Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]],
             cond: Callable[[dict[tuple[str, tuple[tuple[str, str], ...]], float]], bool]) -> None:
    deadline = time.monotonic() + 5
    while not cond(read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in time: {read()}")
        time.sleep(0.02)


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_chain_series_from_hpas_scaledobjects_and_pods(api: FakeApiServer) -> None:
    model = {"llmobs.io/model": "llama"}
    api.upsert("pods", pod("llama-0", ip="10.0.0.1", labels=model))
    api.upsert("pods", pod("llama-1", ip="10.0.0.2", labels=model, ready=False,
                           ready_since="2026-01-05T10:02:00Z"))
    api.upsert("scaledobjects", scaled_object("llama", fallback="True", failures=3))
    api.upsert("scaledobjects", scaled_object("typo", models=("lama",)))
    api.upsert("horizontalpodautoscalers", hpa("keda-hpa-llama", desired=3, current=2,
                                               last_scale="2026-01-05T10:10:00Z"))
    cfg = KubernetesConfig(enabled=True, api_host=api.url, namespaces=["llm"], watch_autoscalers=True,
                           backoff_initial_seconds=0.02, backoff_max_seconds=0.1)
    src = KubernetesTargetSource(cfg)
    src.start()
    registry = CollectorRegistry(auto_describe=False)
    register_central_collectors(registry, lambda: FleetState(time=0.0), None, src, lambda: ["qwen-scaled-to-zero"])
    try:
        assert src.wait_synced(5)
        so, hpa_key = "llm/llama", "llm/keda-hpa-llama"
        wait_for(lambda: samples(registry),
                 lambda s: s.get(key("llmobs_hpa_desired_replicas", model="llama", scaledobject=so, hpa=hpa_key)) == 3)
        s = samples(registry)
        assert s[key("llmobs_hpa_current_replicas", model="llama", scaledobject=so, hpa=hpa_key)] == 2
        assert s[key("llmobs_hpa_last_scale_timestamp_seconds", model="llama", scaledobject=so,
                     hpa=hpa_key)] == 1767607800.0
        assert s[key("llmobs_replicas", model="llama")] == 2
        assert s[key("llmobs_replicas_ready", model="llama")] == 1
        assert s[key("llmobs_replicas_not_ready_since_timestamp_seconds", model="llama")] == 1767607320.0
        fallback = {st: s[key("llmobs_scaledobject_condition", model="llama", scaledobject=so, condition="Fallback",
                              status=st)] for st in ("True", "False", "Unknown")}
        assert fallback == {"True": 1.0, "False": 0.0, "Unknown": 0.0}
        assert s[key("llmobs_hpa_condition", model="llama", scaledobject=so, hpa=hpa_key, condition="AbleToScale",
                     status="True")] == 1.0
        assert s[key("llmobs_scaledobject_failing_triggers", model="llama", scaledobject=so)] == 1
        unknown = {k[1] for k in s if k[0] == "llmobs_scaledobject_unknown_model"}
        assert unknown == {(("model", "lama"), ("scaledobject", "llm/typo"))}  # llama has pods: known
        # a ScaledObject for a model llmobs has history for (scaled to zero now) is not unknown
        api.upsert("scaledobjects", scaled_object("qwen", models=("qwen-scaled-to-zero",)))
        wait_for(lambda: samples(registry), lambda s: key("llmobs_scaledobject_failing_triggers",
                 model="qwen-scaled-to-zero", scaledobject="llm/qwen") in s)
        assert {k[1] for k in samples(registry) if k[0] == "llmobs_scaledobject_unknown_model"} == unknown
    finally:
        src.stop()


def test_no_chain_series_without_the_autoscaler_watch(api: FakeApiServer) -> None:
    api.upsert("pods", pod("llama-0", ip="10.0.0.1", labels={"llmobs.io/model": "llama"}))
    src = KubernetesTargetSource(KubernetesConfig(enabled=True, api_host=api.url, namespaces=["llm"]))
    src.start()
    registry = CollectorRegistry(auto_describe=False)
    register_central_collectors(registry, lambda: FleetState(time=0.0), None, src)
    try:
        assert src.wait_synced(5)
        names = {k[0] for k in samples(registry)}
        assert not {n for n in names if n.startswith(("llmobs_hpa_", "llmobs_scaledobject_", "llmobs_replicas"))}
        assert api.requests["list horizontalpodautoscalers"] == 0 and api.requests["list scaledobjects"] == 0
    finally:
        src.stop()
