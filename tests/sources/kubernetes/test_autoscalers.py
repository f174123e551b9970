"""The scaling chain mapping (pure) and its HPA / ScaledObject watches over the stand-in API server with the
real `kubernetes` client: objects shaped as the HPA controller and KEDA's operator write their status."""

from __future__ import annotations

import pytest

from llmobs.sources.kubernetes import KubernetesConfig, KubernetesTargetSource, model_chains, pod_counts
from llmobs.sources.kubernetes.autoscalers import Condition, scaledobject_view, trigger_models
from tests.k8s.apiserver import FakeApiServer, hpa, pod, scaled_object, wait_until


def start_source(api: FakeApiServer, **kw: object) -> KubernetesTargetSource:
    cfg = KubernetesConfig(enabled=True, api_host=api.url, watch_autoscalers=True, backoff_initial_seconds=0.02,
                           backoff_max_seconds=0.1, **{"namespaces": ["llm"], **kw})
    src = KubernetesTargetSource(cfg)
    src.start()
    assert src.wait_synced(5)
    return src


# --- pure mapping --------------------------------------------------------------------------------------

def test_only_llmobs_triggers_name_models_in_order_without_duplicates() -> None:
    so = scaled_object("mixed", models=("llama", "qwen", "llama"))
    so["spec"]["triggers"].append({"type": "prometheus", "metadata": {"model": "not-ours", "query": "up"}})
    so["spec"]["triggers"].append({"type": "external-push", "metadata": {"model": " mistral "}})
    so["spec"]["triggers"].append({"type": "external", "metadata": {"signal": "queue_depth"}})  # no model
    assert trigger_models(so) == ("llama", "qwen", "mistral")


def test_hpa_name_from_status_else_kedas_default() -> None:
    assert scaledobject_view(scaled_object("a", hpa_name="custom-hpa")).hpa_name == "custom-hpa"
    assert scaledobject_view(scaled_object("a", hpa_name=None)).hpa_name == "keda-hpa-a"


def test_chain_joins_scaledobject_to_its_hpa_in_the_same_namespace_only() -> None:
    sos = [scaled_object("llama"), scaled_object("llama", namespace="other", models=("qwen",))]
    hpas = [hpa("keda-hpa-llama", desired=3, current=2, last_scale="2026-01-05T10:10:00Z")]
    llama, qwen = model_chains(sos, hpas)
    assert llama.model == "llama" and llama.hpa is not None
    assert (llama.hpa.desired, llama.hpa.current) == (3, 2)
    assert llama.hpa.last_scale == pytest.approx(1767607800.0)
    assert Condition("ScalingActive", "True", "ValidMetricFound") in llama.hpa.conditions
    assert Condition("Fallback", "False", "NoFallbackFound") in llama.scaledobject.conditions
    assert qwen.model == "qwen" and qwen.hpa is None  # its HPA lives in `other`, and does not exist


def test_malformed_status_fields_are_skipped_not_fatal() -> None:
    broken = hpa("keda-hpa-x")
    broken["status"].update(desiredReplicas="3", currentReplicas=True, lastScaleTime="yesterday")
    broken["status"]["conditions"].append({"type": "Weird", "status": "Maybe"})
    so = scaled_object("x", models=("x",))
    (chain,) = model_chains([so], [broken])
    assert chain.hpa is not None
    assert (chain.hpa.desired, chain.hpa.current, chain.hpa.last_scale) == (None, None, None)
    assert all(c.type != "Weird" for c in chain.hpa.conditions)


def test_pod_counts_include_not_ready_pods_and_the_oldest_not_ready_time() -> None:
    label = {"llmobs.io/model": "llama"}
    pods = [pod("a", labels=label), pod("b", labels=label, ready=False, ready_since="2026-01-05T10:03:00Z"),
            pod("c", labels=label, ready=False, ready_since="2026-01-05T10:02:00Z"),
            pod("d", labels=label, phase="Pending", ip="", ready=False, ready_since="2026-01-05T10:04:00Z"),
            pod("unnamed")]
    terminating = pod("e", labels=label)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-05T10:05:00Z"
    counts = pod_counts([*pods, terminating], "llmobs.io/model")
    assert set(counts) == {"llama"}
    llama = counts["llama"]
    assert (llama.total, llama.ready) == (4, 1)
    assert llama.not_ready_since == pytest.approx(1767607320.0)  # c: 10:02:00Z


# --- watches over the stand-in API server ---------------------------------------------------------------

def test_hpa_status_moving_is_seen_through_the_watch(api: FakeApiServer) -> None:
    api.upsert("scaledobjects", scaled_object("llama"))
    api.upsert("horizontalpodautoscalers", hpa("keda-hpa-llama", desired=1, current=1))
    src = start_source(api)
    try:
        watch = src.autoscalers
        assert watch is not None
        wait_until(lambda: [c.hpa.desired for c in watch.chains() if c.hpa] == [1])
        (first,) = watch.chains()
        assert first.hpa is not None and first.hpa.last_scale is None  # never scaled: no lastScaleTime
        api.upsert("horizontalpodautoscalers", hpa("keda-hpa-llama", desired=4, current=1,
                                                   last_scale="2026-01-05T10:10:00Z"))
        wait_until(lambda: [(c.hpa.desired, c.hpa.current) for c in watch.chains() if c.hpa] == [(4, 1)])
        api.upsert("horizontalpodautoscalers", hpa("keda-hpa-llama", desired=4, current=4,
                                                   last_scale="2026-01-05T10:11:00Z"))
        wait_until(lambda: [(c.hpa.current, c.hpa.last_scale) for c in watch.chains() if c.hpa]
                   == [(4, 1767607860.0)])
        api.delete("horizontalpodautoscalers", "llm", "keda-hpa-llama")
        wait_until(lambda: [c.hpa for c in watch.chains()] == [None])
        assert not watch.keda_missing
        assert {"hpas/llm", "scaledobjects/llm", "pods/llm"} <= set(src.stats())
    finally:
        src.stop()


def test_fallback_condition_true_is_seen_through_the_watch(api: FakeApiServer) -> None:
    api.upsert("scaledobjects", scaled_object("llama"))
    src = start_source(api)
    try:
        watch = src.autoscalers
        assert watch is not None

        def fallback() -> list[str]:
            return [c.status for ch in watch.chains() for c in ch.scaledobject.conditions if c.type == "Fallback"]

        wait_until(lambda: fallback() == ["False"])
        api.upsert("scaledobjects", scaled_object("llama", ready="False", active="False", fallback="True", failures=4))
        wait_until(lambda: fallback() == ["True"])
        (chain,) = watch.chains()
        assert Condition("Fallback", "True", "FallbackExists") in chain.scaledobject.conditions
        assert chain.scaledobject.failing_triggers == 1
    finally:
        src.stop()


def test_missing_keda_crd_is_flagged_and_discovery_keeps_working(api: FakeApiServer,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    api.keda_installed = False
    api.upsert("pods", pod("a", ip="10.0.0.1", labels={"llmobs.io/model": "llama"}))
    api.upsert("horizontalpodautoscalers", hpa("plain-hpa"))
    src = start_source(api)
    try:
        watch = src.autoscalers
        assert watch is not None
        wait_until(lambda: watch.keda_missing)
        assert [t.name for t in src.targets()] == ["llm/a"]  # pod discovery unaffected
        assert watch.chains() == []
        assert "KEDA ScaledObjects are not served" in caplog.text
        assert src.stats()["scaledobjects/llm"].errors >= 1
        api.keda_installed = True  # KEDA installed later: picked up by the retry
        api.upsert("scaledobjects", scaled_object("llama"))
        wait_until(lambda: [c.model for c in watch.chains()] == ["llama"])
        assert not watch.keda_missing
    finally:
        src.stop()


def test_cluster_wide_watch_reads_every_namespace(api: FakeApiServer) -> None:
    api.upsert("scaledobjects", scaled_object("llama", namespace="team-a"))
    api.upsert("scaledobjects", scaled_object("qwen", namespace="team-b", models=("qwen",), hpa_name=None))
    api.upsert("horizontalpodautoscalers", hpa("keda-hpa-llama", namespace="team-a", desired=2))
    api.upsert("horizontalpodautoscalers", hpa("keda-hpa-qwen", namespace="team-b", desired=5))
    src = start_source(api, namespaces=[])
    try:
        watch = src.autoscalers
        assert watch is not None
        wait_until(lambda: [(c.model, c.hpa.desired if c.hpa else None) for c in watch.chains()]
                   == [("llama", 2), ("qwen", 5)])
        assert api.requests["list scaledobjects"] == 1 and api.requests["list horizontalpodautoscalers"] == 1
    finally:
        src.stop()
