"""Sharding targets across exporter replicas by hashmod of the URL.

The properties that make sharding safe: for any N, the shards are disjoint and cover every target (no
double counting, no gap); the assignment is a pure function of (URL, N), identical in every process; and
three real exporter replicas scraping the demo fleet export, between them, each endpoint exactly once,
with per-model sums equal to what the simulated replicas actually served. What a replica answers for a
model it does not scrape (the scaler question) is pinned here too; docs/scaling.md explains the choice.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.config import (
    ConfigError,
    LlmobsConfig,
    ScrapeConfig,
    ServerConfig,
    ShardingConfig,
    SignalsConfig,
    config_from_mapping,
)
from llmobs.demo.fleet import ModelDeployment, SimulatedFleet, create_fleet_app
from llmobs.demo.replica import ReplicaSpec
from llmobs.demo.trace import default_traces_dir, load_request_trace
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.serving.scaler.server import ScalerConfig
from llmobs.sources.sharding import ShardedTargetSource, hashmod, resolve_shard_index, shard_of
from llmobs.sources.targets import StaticTargetSource, Target

URLS = [f"http://10.0.{i // 250}.{i % 250}:8000/metrics" for i in range(1_000)]


def shard_sets(urls: list[str], n: int) -> list[set[str]]:
    source = StaticTargetSource([Target(u, u) for u in urls])
    return [{t.url for t in ShardedTargetSource(source, n, i).targets()} for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 16])
def test_shards_are_disjoint_and_cover_every_target(n: int) -> None:
    shards = shard_sets(URLS, n)
    assert set().union(*shards) == set(URLS)
    assert sum(len(s) for s in shards) == len(URLS)
    if n > 1:  # md5 spreads 1,000 URLs evenly enough that no shard is empty or holds most of them
        assert all(len(URLS) / n / 2 < len(s) < len(URLS) / n * 2 for s in shards)


@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=60, unique=True), st.integers(1, 12))
def test_any_urls_any_modulus_partition_exactly(urls: list[str], n: int) -> None:
    shards = shard_sets(urls, n)
    assert set().union(*shards) == set(urls)
    assert sum(len(s) for s in shards) == len(urls)


def test_going_from_3_to_4_shards_moves_only_targets_whose_hash_changes_and_loses_none() -> None:
    """During a resize each replica switches N on its own restart. Any mix of old and new replicas
    still covers a target only if its old and new owners both scrape it; this pins down which targets
    move (those with hash mod 3 != hash mod 4) and that after the switch nothing is lost or doubled."""
    before, after = shard_sets(URLS, 3), shard_sets(URLS, 4)
    moved = {u for u in URLS if next(i for i, s in enumerate(before) if u in s)
             != next(i for i, s in enumerate(after) if u in s)}
    digests = {u: hashmod(u, 12) for u in URLS}  # lcm(3, 4): h mod 3 and h mod 4 are functions of h mod 12
    assert moved == {u for u in URLS if digests[u] % 3 != digests[u] % 4}
    assert set().union(*after) == set(URLS)
    # shards 0..2 keep every target whose residue mod 12 is 0, 1, 2 (h%3 == h%4): a quarter stays put
    assert 0.15 < 1 - len(moved) / len(URLS) < 0.35


def test_hashmod_is_stable_across_processes_and_hash_seeds() -> None:
    """Python's own hash() is salted per process; replicas must agree, so md5 it is."""
    code = "from llmobs.sources.sharding import hashmod; import sys; print([hashmod(u, 7) for u in sys.argv[1:]])"
    mine = str([hashmod(u, 7) for u in URLS[:50]])
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, *URLS[:50]], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        assert out == mine


def test_hashmod_known_values() -> None:
    """Golden values (md5's last 8 bytes, big-endian): what Prometheus' relabel hashmod computes."""
    digest_tail = int.from_bytes(bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e")[8:], "big")
    assert hashmod("", 1000) == digest_tail % 1000
    assert hashmod("a", 10) == int.from_bytes(bytes.fromhex("0cc175b9c0f1b6a831c399e269772661")[8:], "big") % 10


def test_shard_index_from_config_env_or_statefulset_hostname() -> None:
    assert resolve_shard_index(2, 3, environ={}, hostname="x") == 2
    assert resolve_shard_index(None, 3, environ={"LLMOBS_SHARD_INDEX": "1"}, hostname="x") == 1
    assert resolve_shard_index(None, 3, environ={}, hostname="llmobs-2.llmobs.obs.svc") == 2
    with pytest.raises(ValueError, match="ordinal"):
        resolve_shard_index(None, 3, environ={}, hostname="laptop")
    with pytest.raises(ValueError, match=r"not in \[0, 3\)"):
        resolve_shard_index(None, 3, environ={}, hostname="llmobs-3")
    with pytest.raises(ValueError, match="non-negative"):
        resolve_shard_index(None, 3, environ={"LLMOBS_SHARD_INDEX": "-1"}, hostname="llmobs-0")


def test_sharding_config_is_validated() -> None:
    cfg = config_from_mapping({"sharding": {"shards": 3, "shard_index": 1}})
    assert cfg.sharding == ShardingConfig(shards=3, shard_index=1)
    with pytest.raises(ConfigError, match=r"sharding\.shard_index"):
        config_from_mapping({"sharding": {"shards": 3, "shard_index": 3}})
    with pytest.raises(ConfigError, match=r"sharding\.shards"):
        config_from_mapping({"sharding": {"shards": 0}})


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_three_exporter_replicas_split_the_demo_fleet_without_double_counting() -> None:
    traces = default_traces_dir()
    fleet = SimulatedFleet([
        ModelDeployment("llama", load_request_trace(traces / "AzureLLMInferenceTrace_conv.csv"), replicas=7,
                        speedup=30.0, spec=ReplicaSpec(kv_blocks=1024, max_num_seqs=48)),
        ModelDeployment("coder", load_request_trace(traces / "AzureLLMInferenceTrace_code.csv"), replicas=5,
                        speedup=30.0, spec=ReplicaSpec(kv_blocks=1024, max_num_seqs=48)),
        ModelDeployment("solo", load_request_trace(traces / "AzureLLMInferenceTrace_code.csv"), replicas=1,
                        speedup=30.0, spec=ReplicaSpec(kv_blocks=1024, max_num_seqs=48)),
    ])
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    targets = fleet.targets(f"http://127.0.0.1:{fleet_port}")
    exporters = []
    try:
        for i in range(3):
            cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.25, timeout_seconds=2),
                               signals=SignalsConfig(window_seconds=10), server=ServerConfig(host="127.0.0.1", port=0),
                               sharding=ShardingConfig(shards=3, shard_index=i),
                               scaler=ScalerConfig(enabled=True, port=0))
            exporters.append(await start_exporter(cfg, StaticTargetSource(targets)))
        owned = [{t.name for t in e.pipeline.source.targets()} for e in exporters]
        assert set().union(*owned) == {t.name for t in targets}
        assert sum(map(len, owned)) == len(targets)
        def served(model: str) -> float:
            return sum(sum(fleet.replica(n).success.values()) for n in fleet.replica_names
                       if fleet.replica(n).model == model)

        # Ready: every replica has its shard's signals, its scaler has published a snapshot (it refreshes on its
        # own cadence after the pipeline), and every model has served a request (the traces start sparse).
        for _ in range(400):
            if (all(len(e.holder.current.signals) == len(o) for e, o in zip(exporters, owned, strict=True))
                    and all(e.scaler is not None and e.scaler.cache.snapshot.ready for e in exporters)
                    and all(served(m) > 0 for m in ("llama", "coder", "solo"))):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the sharded exporters never became ready")
        # The scaler on a replica that scrapes no endpoint of a model answers NOT_FOUND (HTTP 404 on the
        # metrics-api, gRPC NOT_FOUND) rather than a wrong partial 0; the owner answers. A KEDA trigger
        # must therefore not be load-balanced over shards: docs/scaling.md (use the prometheus trigger).
        solo_owner = shard_of(next(t for t in targets if t.name == "solo-0"), 3)
        async with httpx.AsyncClient() as client:
            for i, e in enumerate(exporters):
                r = await client.get(f"http://127.0.0.1:{e.port}/api/v1/scaler/metrics",
                                     params={"model": "solo", "signal": "requests_running"})
                assert r.status_code == (200 if i == solo_owner else 404), r.text
        for e in exporters:
            await e.stop()  # the simulated replicas advance only when read: their counters now hold still
        # stopped pipelines keep their last state; read it through each replica's registry
        pages = [_families(generate_latest(e.registry).decode()) for e in exporters]
        # every endpoint's health and signals are exported by exactly one replica: its owner
        up_by_endpoint: dict[str, int] = {}
        for i, fams in enumerate(pages):
            for labels, _ in fams["llmobs_target_up"]:
                assert labels["endpoint"] in owned[i]
                up_by_endpoint[labels["endpoint"]] = up_by_endpoint.get(labels["endpoint"], 0) + 1
        assert up_by_endpoint == {t.name: 1 for t in targets}
        # sum(llmobs_requests_total) by model across replicas == what the simulated replicas served
        summed: dict[str, float] = {}
        for fams in pages:
            for labels, value in fams.get("llmobs_requests_total", []):
                summed[labels["model"]] = summed.get(labels["model"], 0.0) + value
        truth: dict[str, float] = {}
        for name in fleet.replica_names:
            replica = fleet.replica(name)
            truth[replica.model] = truth.get(replica.model, 0.0) + sum(replica.success.values())
        assert summed == pytest.approx(truth)
        assert all(v > 0 for v in truth.values())
        # What a replica's own scaler sees for a model: only the endpoints it scrapes. The state it
        # answers from holds exactly its shard's endpoints, never another shard's (docs/scaling.md).
        for e, o in zip(exporters, owned, strict=True):
            assert {s.attribution.endpoint for s in e.holder.current.signals} == o
    finally:
        for e in exporters:
            await e.stop()
        fleet_server.should_exit = True
        await fleet_task


def test_shard_of_uses_the_url_not_the_name() -> None:
    """Names may repeat across namespaces and be renamed; the URL is what is scraped, so it is the key."""
    a, b = Target("http://h:1/metrics", "same"), Target("http://h:2/metrics", "same")
    assert [shard_of(a, 1000), shard_of(b, 1000)] == [hashmod(a.url, 1000), hashmod(b.url, 1000)]
