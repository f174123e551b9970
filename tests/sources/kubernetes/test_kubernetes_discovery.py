"""Kubernetes discovery with the real `kubernetes` client over HTTP against the stand-in API server
(tests/k8s/apiserver.py): list, watch, bookmarks, 410 Gone → relist, reconnects, paging, deletion, IP
change, readiness, node labels, and 1,000 pods from the watch stream without a relist."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from llmobs.sources.kubernetes import KubernetesConfig, KubernetesTargetSource, PodIndex, pod_target
from llmobs.sources.kubernetes.pods import skip_reason
from tests.k8s.apiserver import FakeApiServer, node, pod, wait_until


def make_source(api: FakeApiServer, **kw: object) -> KubernetesTargetSource:
    cfg = KubernetesConfig(enabled=True, api_host=api.url, backoff_initial_seconds=0.02, backoff_max_seconds=0.1,
                           **{"namespaces": ["llm"], **kw})
    src = KubernetesTargetSource(cfg)
    src.start()
    assert src.wait_synced(5)
    return src


def urls(src: KubernetesTargetSource) -> set[str]:
    return {t.url for t in src.targets()}


def test_initial_list_builds_targets_with_node_labels(api: FakeApiServer) -> None:
    api.upsert("nodes", node("gpu-node-a", product="NVIDIA-H100-80GB-HBM3", memory_mib="81559", zone="eu-west-1a"))
    api.upsert("pods", pod("llama-0", ip="10.0.0.1", labels={"llmobs.io/model": "llama-3-8b"}, gpus=2))
    api.upsert("pods", pod("not-ready", ip="10.0.0.2", ready=False))
    api.upsert("pods", pod("pending", ip="", phase="Pending"))
    api.upsert("pods", pod("no-port", ip="10.0.0.3", ports=[]))
    api.upsert("pods", pod("other-app", ip="10.0.0.4", labels={"app.kubernetes.io/name": "redis"}))
    api.upsert("pods", pod("other-ns", namespace="default", ip="10.0.0.5"))
    src = make_source(api)
    try:
        (t,) = src.targets()
        assert t.url == "http://10.0.0.1:8000/metrics" and t.name == "llm/llama-0"
        assert t.node == "gpu-node-a" and t.gpu_model == "NVIDIA-H100-80GB-HBM3"
        assert t.labels["zone"] == "eu-west-1a" and t.labels["gpu_memory_mib"] == "81559"
        assert t.labels["model"] == "llama-3-8b" and t.labels["gpu_count"] == "2"
        assert t.labels["namespace"] == "llm" and t.labels["pod"] == "llama-0" and t.labels["pod_uid"]
    finally:
        src.stop()


def test_watch_add_ip_change_readiness_and_delete_without_relist(api: FakeApiServer) -> None:
    api.upsert("pods", pod("a", ip="10.0.0.1"))
    src = make_source(api)
    try:
        api.upsert("pods", pod("b", ip="10.0.0.2"))
        wait_until(lambda: urls(src) == {"http://10.0.0.1:8000/metrics", "http://10.0.0.2:8000/metrics"})
        api.upsert("pods", pod("b", ip="10.0.0.9"))  # rescheduled sandbox: same pod, new IP
        wait_until(lambda: urls(src) == {"http://10.0.0.1:8000/metrics", "http://10.0.0.9:8000/metrics"})
        api.upsert("pods", pod("a", ip="10.0.0.1", ready=False))  # failing readiness: stop scraping it
        wait_until(lambda: urls(src) == {"http://10.0.0.9:8000/metrics"})
        api.upsert("pods", pod("a", ip="10.0.0.1"))
        wait_until(lambda: len(urls(src)) == 2)
        api.delete("pods", "llm", "b")
        wait_until(lambda: urls(src) == {"http://10.0.0.1:8000/metrics"})
        api.upsert("pods", pod("a", ip="10.0.0.1", labels={"app.kubernetes.io/name": "other"}))  # leaves selector
        wait_until(lambda: urls(src) == set())
        assert src.stats()["pods/llm"].lists == 1
    finally:
        src.stop()


def test_410_gone_relists_and_catches_up(api: FakeApiServer) -> None:
    api.upsert("pods", pod("a", ip="10.0.0.1"))
    api.upsert("nodes", node("gpu-node-a"))
    src = make_source(api)
    try:
        api.expire()  # etcd compaction: the open watches get ERROR 410 Expired
        api.upsert("pods", pod("c", ip="10.0.0.3"))
        api.delete("pods", "llm", "a")
        wait_until(lambda: urls(src) == {"http://10.0.0.3:8000/metrics"})
        stats = src.stats()
        assert stats["pods/llm"].expired >= 1 and stats["pods/llm"].lists >= 2
        assert stats["nodes"].expired >= 1
        assert stats["pods/llm"].errors == 0  # 410 is the protocol, not an error
    finally:
        src.stop()


def test_bookmark_advances_resource_version_so_reconnect_needs_no_relist(api: FakeApiServer) -> None:
    api.upsert("pods", pod("a", ip="10.0.0.1"))
    src = make_source(api, watch_nodes=False)
    try:
        (w,) = src.pod_watchers
        rv = api.bookmark("pods")
        wait_until(lambda: w.resource_version == str(rv))
        assert w.stats.bookmarks == 1
        api.drop_watches()  # load balancer cut the stream: resume from the bookmark
        api.upsert("pods", pod("b", ip="10.0.0.2"))
        wait_until(lambda: len(urls(src)) == 2)
        assert w.stats.lists == 1 and w.stats.watches >= 2
    finally:
        src.stop()


def test_reconnects_with_backoff_after_server_errors(api: FakeApiServer) -> None:
    api.upsert("pods", pod("a", ip="10.0.0.1"))
    src = make_source(api, watch_nodes=False)
    try:
        (w,) = src.pod_watchers
        wait_until(lambda: api.requests["watch pods"] >= 1)  # the watch is open: the drop below ends it
        api.fail_next(3, status=503)
        api.drop_watches()
        api.upsert("pods", pod("b", ip="10.0.0.2"))
        wait_until(lambda: len(urls(src)) == 2)
        assert w.stats.errors == 3 and "503" in w.last_error and w.stats.lists == 1
    finally:
        src.stop()


def test_paged_list_and_all_namespaces(api: FakeApiServer) -> None:
    for i in range(20):
        api.upsert("pods", pod(f"p{i:02d}", namespace=("llm", "batch")[i % 2], ip=f"10.0.1.{i}"))
    src = make_source(api, namespaces=[], list_page_size=7, watch_nodes=False)
    try:
        assert len(src.targets()) == 20
        assert api.requests["list pods"] == 3 and src.stats()["pods"].lists == 1
        assert {t.labels["namespace"] for t in src.targets()} == {"llm", "batch"}
    finally:
        src.stop()
    assert not any(w.running for w in src.watchers)  # stop() joins even a watch still connecting


def test_thousand_pods_from_the_watch_stream_without_relisting(api: FakeApiServer) -> None:
    src = make_source(api, watch_nodes=False)
    try:
        start = time.monotonic()
        for i in range(1000):
            api.upsert("pods", pod(f"r{i:04d}", ip=f"10.{i // 250}.{i % 250}.7"))
        wait_until(lambda: len(src.targets()) == 1000, timeout=20)
        elapsed = time.monotonic() - start
        (w,) = src.pod_watchers
        assert w.stats.lists == 1 and w.stats.events == 1000
        assert elapsed < 15, f"1,000 pods took {elapsed:.1f}s"
    finally:
        src.stop()


def test_pod_index_resolves_uids_on_one_node(api: FakeApiServer) -> None:
    api.upsert("pods", pod("vllm-0", uid="11111111-2222-3333-4444-555555555555", node="gpu-node-a",
                           annotations={"llmobs.io/model": "m-a"}))
    api.upsert("pods", pod("elsewhere", uid="99999999-2222-3333-4444-555555555555", node="gpu-node-b"))
    static = pod("etcd-static", namespace="kube-system", uid="aaaaaaaa-2222-3333-4444-555555555555",
                 node="gpu-node-a", labels={"app.kubernetes.io/name": "etcd"},
                 annotations={"kubernetes.io/config.mirror": "6f1e9b0c2a3d4e5f60718293a4b5c6d7"})
    api.upsert("pods", static)
    cfg = KubernetesConfig(enabled=True, api_host=api.url)
    index = PodIndex(cfg, "gpu-node-a", client.ApiClient(client.Configuration(host=api.url)))
    index.start()
    try:
        assert index.watcher.wait_synced(5)
        ref = index.lookup("11111111-2222-3333-4444-555555555555")
        assert ref is not None and (ref.namespace, ref.name, ref.model, ref.matches) == ("llm", "vllm-0", "m-a", True)
        assert index.lookup("99999999-2222-3333-4444-555555555555") is None  # another node's pod
        mirror = index.lookup("6f1e9b0c2a3d4e5f60718293a4b5c6d7")
        assert mirror is not None and mirror.name == "etcd-static" and not mirror.matches
        api.upsert("pods", pod("vllm-1", uid="22222222-2222-3333-4444-555555555555", node="gpu-node-a"))
        wait_until(lambda: index.lookup("22222222-2222-3333-4444-555555555555") is not None)
    finally:
        index.stop()


CFG = KubernetesConfig()


@pytest.mark.parametrize(("p", "url"), [
    (pod("a", ip="10.0.0.1", annotations={"llmobs.io/port": "9000"}), "http://10.0.0.1:9000/metrics"),
    (pod("a", ip="10.0.0.1", ports=[{"name": "http", "containerPort": 8000},
                                    {"name": "metrics", "containerPort": 8001}]), "http://10.0.0.1:8001/metrics"),
    (pod("a", ip="10.0.0.1", annotations={"llmobs.io/path": "vllm/metrics"}), "http://10.0.0.1:8000/vllm/metrics"),
    (pod("a", ip="fd00::12"), "http://[fd00::12]:8000/metrics"),
    (pod("a", ip="10.0.0.1", annotations={"llmobs.io/port": "http"}), None),
    (pod("a", ip="10.0.0.1", ports=[{"name": "grpc", "containerPort": 9}]), None),
    ({**pod("a"), "metadata": {**pod("a")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}, None),
])
def test_pod_target_table(p: dict, url: str | None) -> None:
    t = pod_target(p, {}, CFG)
    assert (t.url if t else None) == url


@pytest.mark.parametrize(("p", "reason"), [
    # each of these raised inside targets() (every scrape cycle failed, for every target) or built a URL
    # that no client could parse, or that was another pod's
    (pod("a", ports=[{"name": "http", "containerPort": "abc"}]), "no container port named"),
    (pod("a", ports=[{"name": "http", "containerPort": 99999}]), "no container port named"),
    (pod("a", ports=[{"name": "http", "containerPort": -5}]), "no container port named"),
    (pod("a", ports=[{"name": "http", "containerPort": True}]), "no container port named"),
    (pod("a", annotations={"llmobs.io/port": "+8_0"}), "annotation llmobs.io/port='+8_0' is not a port"),
    (pod("a", annotations={"llmobs.io/port": "99999"}), "is not a port"),
    ({**pod("a"), "status": {**pod("a")["status"], "podIP": 12345}}, "podIP 12345 is not an IP address"),
    (pod("a", ip="evil@10.0.0.1"), "is not an IP address"),
    (pod("a", ip="127.0.0.1:18101/metrics#"), "is not an IP address"),
    (pod("a", ip="10.0.0.1 x"), "is not an IP address"),
])
def test_a_ready_pod_with_an_unusable_port_or_ip_is_skipped_with_its_reason(p: dict, reason: str) -> None:
    assert pod_target(p, {}, CFG) is None
    found = skip_reason(p, CFG)
    assert found is not None and reason in found
    assert skip_reason(pod("a"), CFG) is None and skip_reason(pod("a", ready=False), CFG) is None


def test_one_bad_pod_leaves_the_others_scraped_and_is_logged_once(api: FakeApiServer,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A pod whose port is "abc" made every cycle fail with a traceback, the good pods unscraped too."""
    api.upsert("pods", pod("good", ip="10.0.0.1"))
    api.upsert("pods", pod("bad", ip="10.0.0.2", ports=[{"name": "http", "containerPort": "abc"}]))
    src = make_source(api)
    try:
        with caplog.at_level("WARNING", logger="llmobs.sources.kubernetes.source"):
            assert urls(src) == {"http://10.0.0.1:8000/metrics"}
            api.upsert("pods", pod("other", ip="10.0.0.3"))
            wait_until(lambda: len(urls(src)) == 2)
        said = [r.getMessage() for r in caplog.records if "llm/bad" in r.getMessage()]
        assert said == ["pod llm/bad is ready but not scraped: no container port named metrics or http with a "
                        "port in 1-65535"]
    finally:
        src.stop()


def test_a_watch_that_expires_again_right_after_a_relist_backs_off(api: FakeApiServer) -> None:
    """A watch answering 410 to every request relisted at once, forever: 130 lists in 7 s."""
    api.upsert("pods", pod("a", ip="10.0.0.1"))
    src = make_source(api)  # backoff 0.02 s doubling to 0.1 s
    try:
        api.always_gone = True
        api.drop_watches()  # the open watch ends; every one after it gets 410 at once
        time.sleep(1.5)
        lists = src.pod_watchers[0].stats.lists
        assert lists <= 25, lists  # ~1 per 0.1 s backoff (297 without it on this machine)
        assert urls(src) == {"http://10.0.0.1:8000/metrics"}  # the last good view stays
    finally:
        src.stop()


def test_pod_target_carries_creation_and_ready_times_for_cold_starts() -> None:
    """The start and Ready instants of a measured cold start come from the pod as the API server writes them."""
    t = pod_target(pod("a", created="2026-01-05T10:00:00Z", ready_since="2026-01-05T10:02:05Z"), {}, CFG)
    assert t is not None and t.ready_at is not None and t.created_at is not None
    assert t.ready_at - t.created_at == 125.0
    assert t.created_at == 1767607200.0  # UTC, whatever the machine's time zone


@pytest.mark.parametrize("stamp", ["", "yesterday", None, 17])
def test_an_unreadable_pod_time_leaves_the_cold_start_unmeasured_not_the_pod_unscraped(stamp: object) -> None:
    p = pod("a")
    p["metadata"]["creationTimestamp"] = stamp
    t = pod_target(p, {}, CFG)
    assert t is not None and t.created_at is None and t.url == "http://10.0.0.1:8000/metrics"


def _with_command(*, command: list[str] | None = None, args: list[str] | None = None) -> dict:
    p = pod("a")
    container = p["spec"]["containers"][0]
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    return p


@pytest.mark.parametrize(("p", "limits"), [
    (_with_command(args=["--model", "m", "--max-num-seqs", "64", "--max-num-batched-tokens=4096"]), (64, 4096)),
    (_with_command(command=["sh", "-c", "vllm serve m --max_num_seqs 32 --port 8000"]), (32, None)),
    (_with_command(args=["--max-num-seqs", "lots", "--max-num-batched-tokens=0"]), (None, None)),  # not guessed
    (_with_command(args=["--max-num-seqs"]), (None, None)),  # a flag without its value
    (pod("a"), (None, None)),  # the image's defaults: unknown
])
def test_pod_target_reads_scheduler_limits_from_the_vllm_command_line(p: dict, limits: tuple) -> None:
    t = pod_target(p, {}, CFG)
    assert t is not None
    assert (t.scheduler.max_num_seqs, t.scheduler.max_num_batched_tokens) == limits


def test_a_pod_role_label_becomes_the_target_role() -> None:
    t = pod_target(pod("a", labels={"llmobs.io/role": "decode"}), {}, CFG)
    assert t is not None and t.labels["role"] == "decode"
    t = pod_target(pod("b"), {}, CFG)
    assert t is not None and "role" not in t.labels
