"""Drain-aware scale-in: the pod-deletion-cost each vLLM pod gets from its load, written through the real
`kubernetes` client to the stand-in API server within the rate limits, and what happens when the API server
refuses (403 without RBAC, 404 for a deleted pod, 500)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.config import config_from_mapping
from llmobs.runtime import start_exporter
from llmobs.serving.deletion_cost import (
    ANNOTATION,
    DeletionCostCollector,
    DeletionCostConfig,
    DeletionCostWriter,
    deletion_cost,
    kubernetes_patcher,
)
from llmobs.sources.kubernetes import KubernetesConfig, KubernetesTargetSource
from llmobs.sources.kubernetes.client import make_api_client
from llmobs.state import FleetState
from tests.factories import make_signals, make_state, scraped_target
from tests.k8s.apiserver import FakeApiServer, pod
from tests.pageserver import PageServer


@pytest.mark.parametrize(("loads", "cost"), [
    ([{}], 0),  # idle, cold cache: the first to go
    ([{"kv_cache_utilization": 0.42}], 400),  # idle but warm: kept before a cold one
    ([{"requests_running": 1.0}], 1000),  # any work in flight outweighs any cache
    ([{"requests_running": 3.0, "requests_waiting": 2.0, "kv_cache_utilization": 0.9}], 5900),
    ([{"requests_running": 2.0, "kv_cache_utilization": 0.3}, {"requests_running": 1.0, "kv_cache_utilization": 0.7}],
     3700),  # two models on one pod: work adds up, the cache is the fuller one
    ([{"requests_running": math.nan, "kv_cache_utilization": math.nan}], 0),  # unknown load protects nothing
    ([{"requests_running": -4.0, "kv_cache_utilization": 7.0}], 1000),  # implausible values clamped
    ([{"requests_running": 1e12}], 2**31 - 1),  # int32, as Kubernetes requires
])
def test_cost_orders_pods_by_the_work_a_deletion_would_throw_away(loads: list[dict[str, float]], cost: int) -> None:
    assert deletion_cost([make_signals(f"m{i}", "e", **load) for i, load in enumerate(loads)]) == cost


def fleet(loads: dict[str, dict[str, float]], down: tuple[str, ...] = ()) -> FleetState:
    """Pods llm/<name> (discovered: namespace and pod labels) with the given loads; a static target too."""
    signals = [make_signals("m", f"llm/{name}", **load) for name, load in loads.items()]
    targets = [scraped_target(f"llm/{name}", None if name in down else 1.0, namespace="llm", pod=name)
               for name in loads]
    targets.append(scraped_target("llm/new", 1.0, namespace="llm", pod="new"))  # scraped once: no signals yet
    targets.append(scraped_target("static:8000", 1.0))  # not a pod: never patched
    return make_state(*signals, targets=tuple(targets), time=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    for name in ("busy", "warm", "idle", "gone"):
        server.upsert("pods", pod(name))
    yield server
    server.stop()


def make_writer(api: FakeApiServer, state: list[FleetState], clock: Clock,
                **cfg: float) -> tuple[DeletionCostWriter, object]:
    api_client = make_api_client(KubernetesConfig(enabled=True, api_host=api.url))
    config = DeletionCostConfig(enabled=True, **{"max_patches_per_second": 100.0, **cfg})
    return DeletionCostWriter(lambda: state[0], kubernetes_patcher(api_client), config, clock=clock), api_client


def test_costs_land_on_the_pods_and_the_idlest_is_lowest(api: FakeApiServer) -> None:
    clock = Clock()
    state = [fleet({"busy": {"requests_running": 4.0, "kv_cache_utilization": 0.8},
                    "warm": {"kv_cache_utilization": 0.6}, "idle": {}}, down=("gone",))]
    writer, api_client = make_writer(api, state, clock)
    try:
        assert writer.run_once() == 3
        costs = {name: int(api.annotations("llm", name)[ANNOTATION]) for name in ("busy", "warm", "idle")}
        assert costs == {"busy": 4800, "warm": 600, "idle": 0}
        assert min(costs, key=costs.__getitem__) == "idle"  # what the ReplicaSet deletes first on scale-in
        assert ANNOTATION not in api.annotations("llm", "gone")  # not scraped: left alone
        assert {c for _, _, c, _ in api.patches} == {"application/merge-patch+json"}
        assert api.annotations("llm", "busy") == {ANNOTATION: "4800"}  # other annotations untouched (none here)

        assert writer.run_once() == 0  # nothing changed: no write, no watch event for every pod watcher
        state[0] = fleet({"busy": {}, "warm": {"kv_cache_utilization": 0.6}, "idle": {"requests_running": 2.0}})
        clock.now += 10
        assert writer.run_once() == 0  # changed, but within min_patch_interval_seconds of the last write
        clock.now += 25
        assert writer.run_once() == 2
        assert api.annotations("llm", "idle")[ANNOTATION] == "2000" and api.annotations("llm", "busy")[
            ANNOTATION] == "0"
        assert writer.result_counts() == {"ok": 5}
    finally:
        api_client.close()  # type: ignore[attr-defined]


def test_rate_limit_writes_the_biggest_changes_first(api: FakeApiServer) -> None:
    for i in range(10):
        api.upsert("pods", pod(f"p{i}"))
    clock = Clock()
    state = [fleet({f"p{i}": {"requests_running": float(i)} for i in range(10)})]
    writer, api_client = make_writer(api, state, clock, max_patches_per_second=3.0)
    try:
        assert writer.run_once() == 3
        assert sorted(n for _, n, _, _ in api.patches) == ["p7", "p8", "p9"]
        clock.now += 1.0  # one second refills three writes
        assert writer.run_once() == 3
        assert sorted(n for _, n, _, _ in api.patches[3:]) == ["p4", "p5", "p6"]
    finally:
        api_client.close()  # type: ignore[attr-defined]


def test_forbidden_pauses_every_write_until_the_backoff_ends(api: FakeApiServer,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    state = [fleet({"busy": {"requests_running": 4.0}, "warm": {"kv_cache_utilization": 0.6}, "idle": {}})]
    writer, api_client = make_writer(api, state, clock, forbidden_backoff_seconds=300.0)
    api.refuse_patches(1, 403)
    try:
        with caplog.at_level("WARNING", logger="llmobs.deletion_cost"):
            assert writer.run_once() == 1  # refused: the other two are not tried against a missing RBAC
        assert writer.result_counts() == {"forbidden": 1}
        assert any("Grant `patch` on pods" in r.getMessage() for r in caplog.records)
        clock.now += 299
        assert writer.run_once() == 0 and len(api.patches) == 1
        clock.now += 2
        assert writer.run_once() == 3  # the RBAC was fixed meanwhile
        assert writer.result_counts() == {"forbidden": 1, "ok": 3}
        assert writer.costs() == {("llm", "busy"): 4000, ("llm", "warm"): 600, ("llm", "idle"): 0}
    finally:
        api_client.close()  # type: ignore[attr-defined]


def test_a_deleted_pod_is_counted_and_the_others_still_written(api: FakeApiServer) -> None:
    clock = Clock()
    state = [fleet({"busy": {"requests_running": 4.0}, "gone": {"requests_running": 1.0}, "idle": {}})]
    api.delete("pods", "llm", "gone")  # deleted after the scrape that saw it
    writer, api_client = make_writer(api, state, clock)
    try:
        assert writer.run_once() == 3
        assert writer.result_counts() == {"ok": 2, "not_found": 1}
        assert ("llm", "gone") not in writer.costs()
    finally:
        api_client.close()  # type: ignore[attr-defined]


def test_server_errors_pause_for_the_error_backoff_and_are_exported(api: FakeApiServer) -> None:
    clock = Clock()
    state = [fleet({"busy": {"requests_running": 4.0}, "idle": {}})]
    writer, api_client = make_writer(api, state, clock, error_backoff_seconds=30.0)
    api.refuse_patches(1, 500)
    try:
        assert writer.run_once() == 1
        clock.now += 29
        assert writer.run_once() == 0
        clock.now += 2
        assert writer.run_once() == 2
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DeletionCostCollector(writer))
        text = generate_latest(registry).decode()
        assert 'llmobs_pod_deletion_cost{namespace="llm",pod="busy"} 4000.0' in text
        assert 'llmobs_pod_deletion_cost_patches_total{result="error"} 1.0' in text
        assert 'llmobs_pod_deletion_cost_patches_total{result="ok"} 2.0' in text
    finally:
        api_client.close()  # type: ignore[attr-defined]


def test_an_unreachable_api_server_is_an_error_not_a_crash() -> None:
    api_client = make_api_client(KubernetesConfig(enabled=True, api_host="http://127.0.0.1:9"))
    state = [fleet({"busy": {"requests_running": 1.0}})]
    writer = DeletionCostWriter(lambda: state[0], kubernetes_patcher(api_client, timeout_seconds=1.0),
                                DeletionCostConfig(enabled=True), clock=Clock())
    try:
        assert writer.run_once() == 1 and writer.result_counts() == {"error": 1}
    finally:
        api_client.close()


async def test_llmobs_run_keeps_the_annotation_of_a_discovered_pod(api: FakeApiServer) -> None:
    """End to end: discovery finds the pod, the pipeline scrapes it, the writer annotates it from its load."""
    page = ('vllm:num_requests_running{engine="0",model_name="m"} 3\n'
            'vllm:num_requests_waiting{engine="0",model_name="m"} 1\n'
            'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5\n')
    async with PageServer({"vllm": lambda n: page}) as replica:
        port = int(replica.url("vllm").split(":")[2].split("/")[0])
        api.upsert("pods", pod("served", "serve", ip="127.0.0.1", annotations={"llmobs.io/port": str(port),
                                                                               "llmobs.io/path": "/vllm/metrics"}))
        config = config_from_mapping({
            "scrape": {"interval_seconds": 0.1, "timeout_seconds": 2},
            "server": {"host": "127.0.0.1", "port": 0},
            "kubernetes": {"enabled": True, "api_host": api.url, "namespaces": ["serve"],
                           "pod_deletion_cost": {"enabled": True, "interval_seconds": 0.1}},
        })
        exporter = await start_exporter(config)
        try:
            for _ in range(100):
                if api.annotations("serve", "served").get(ANNOTATION):
                    break
                await asyncio.sleep(0.05)
            assert api.annotations("serve", "served")[ANNOTATION] == "4500"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.port}") as http:
                text = (await http.get("/metrics")).text
            assert re.search(r'^llmobs_pod_deletion_cost\{namespace="serve",pod="served"\} 4500\.0$', text, re.M)
        finally:
            await exporter.stop()


def test_discovery_ignores_its_own_annotation_writes(api: FakeApiServer) -> None:
    """Each write is a MODIFIED pod event: the target must stay the same target (no tracker reset)."""
    source = KubernetesTargetSource(KubernetesConfig(enabled=True, api_host=api.url, namespaces=["llm"]))
    source.start()
    try:
        assert source.wait_synced(5)
        before = {t.url: t for t in source.targets()}
        obj = api.upsert("pods", {**pod("busy"), "metadata": {**pod("busy")["metadata"],
                                                              "annotations": {ANNOTATION: "4000"}}})
        assert obj["metadata"]["annotations"][ANNOTATION] == "4000"
        for _ in range(100):
            if source.stats()["pods/llm"].events >= 5:
                break
            time.sleep(0.02)
        after = {t.url: t for t in source.targets()}
        assert before == after
    finally:
        source.stop()
