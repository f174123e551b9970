"""The simulated replica's page must look like real vLLM 0.32 to a scraper: same families, types, label
names and bucket layout as the captured page, and llmobs must find every expected series in it."""

from __future__ import annotations

from collections import defaultdict

from llmobs.demo.page import render_replica
from llmobs.demo.replica import ReplicaSpec, SimulatedReplica
from llmobs.sources.normalize import normalize
from llmobs.sources.textformat import parse_text


def _shape(text: str) -> tuple[dict[str, str], dict[str, set[frozenset[str]]], dict[str, tuple[str, ...]]]:
    page = parse_text(text)
    label_names: dict[str, set[frozenset[str]]] = defaultdict(set)
    buckets: dict[str, list[str]] = defaultdict(list)
    for s in page.samples:
        if not s.name.startswith("vllm:"):
            continue
        label_names[s.name].add(frozenset(s.labels))
        if s.name.endswith("_bucket"):
            buckets[s.name].append(s.labels["le"])
    types = {k: v for k, v in page.types.items() if k.startswith("vllm:")}
    return types, dict(label_names), {k: tuple(v) for k, v in buckets.items()}


def _replica_page() -> str:
    replica = SimulatedReplica("tiny", ReplicaSpec(max_model_len=1024), start=0.0)
    for i in range(20):
        replica.submit(i * 0.1, 300, 50)
    replica.advance(30.0)
    return render_replica(replica)


def test_demo_page_matches_real_vllm_032(fixture_page: str) -> None:
    real_types, real_labels, real_buckets = _shape(fixture_page)
    demo_types, demo_labels, demo_buckets = _shape(_replica_page())
    assert demo_types, "demo page has no vllm families"
    for family, kind in demo_types.items():
        assert real_types.get(family) == kind, f"{family}: {kind} vs real {real_types.get(family)}"
    for name, label_sets in demo_labels.items():
        if name == "vllm:cache_config_info":  # vLLM's info carries dozens of labels; ours a subset
            assert label_sets <= {frozenset(ls) for ls in label_sets}
            assert {"block_size", "num_gpu_blocks", "engine"} <= set().union(*label_sets)
            continue
        assert label_sets <= real_labels[name], f"{name}: {label_sets} vs real {real_labels[name]}"
    for name, les in demo_buckets.items():
        assert les == real_buckets[name], f"{name} bucket layout differs"


def test_llmobs_reads_everything_it_expects_from_the_demo_page() -> None:
    scrape = normalize(parse_text(_replica_page()).samples, time=0.0)
    assert scrape.missing == ()
    tiny = scrape.models["tiny"]
    assert tiny.counters["request_success"]["stop"] + tiny.counters["request_success"]["length"] == 20
    assert tiny.kv_capacity_tokens == 2048 * 16


def test_queue_builds_when_kv_is_full_and_drains_after() -> None:
    replica = SimulatedReplica("m", ReplicaSpec(kv_blocks=64, block_size=16, max_num_seqs=32), start=0.0)
    for _ in range(40):
        replica.submit(0.0, 200, 400)
    replica.advance(1.0)
    assert replica.kv_usage > 0.8 and len(replica.waiting) > 0
    replica.advance(600.0)
    assert len(replica.waiting) == 0 and len(replica.running) == 0 and replica.used_blocks == 0
    assert sum(replica.success.values()) == 40
    assert replica.preemptions > 0
