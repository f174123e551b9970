"""Tests of the Helm chart (exporters/helm/llmobs) that run without a cluster or a helm binary.

helm-python-sdk binds Helm v4's Go SDK as a library, so rendering, strict lint and values-schema validation
here are Helm's own. Built-in kinds are checked with kubernetes-validate --strict; the CRD kinds against
their CRDs' schemas, with the validators the kubernetes-models npm packages generate from them (tests/crd/,
see its README; `make crd-validators` installs them). The chart must stay a thin wrapper over generated
artifacts and llmobs' own config, so several tests compare it with those sources: alerts/, dashboards/,
the scaler's signal catalogue and metadata keys, and `llmobs run --check-config`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO

ROOT = REPO
CHART = ROOT / "exporters" / "helm" / "llmobs"
CRD_CHECK = REPO / "tests" / "crd"
CRD_INSTALL = Path(os.environ.get("LLMOBS_CRD_VALIDATORS", Path.home() / ".cache" / "llmobs" / "crd-validators"))
RELEASE, NAMESPACE = "prod", "observability"
KUBE_VERSION = "1.30.0"

CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
             ("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}

# Every optional part switched on: the values a full production install would use.
FULL_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.example.com/llmobs", "tag": "0.1.0"},
    "imagePullSecrets": [{"name": "regcred"}],
    "config": {
        "targets": [{"url": "http://vllm-llama-0.inference:8000/metrics", "name": "llama-0",
                     "labels": {"node": "gpu-a", "gpu_model": "NVIDIA-H100-80GB-HBM3"},
                     "basic_auth": {"username": "llmobs", "password_file": "/etc/llmobs/scrape-auth/password"}}],
        "scrape": {"interval_seconds": 5, "timeout_seconds": 3, "max_concurrency": 32},
        "signals": {"window_seconds": 60, "ttft_slo_seconds": 0.5},
        "kubernetes": {"enabled": True, "namespaces": ["inference"], "label_selector": "app=vllm"},
        "forecast": {"enabled": True, "horizon_seconds": 300},
    },
    "exporter": {"replicas": 1, "extraArgs": ["--verbose"], "nodeSelector": {"kubernetes.io/os": "linux"},
                 "extraVolumes": [{"name": "scrape-auth", "secret": {"secretName": "vllm-scrape-auth"}}],
                 "extraVolumeMounts": [{"name": "scrape-auth", "mountPath": "/etc/llmobs/scrape-auth",
                                        "readOnly": True}]},
    "scaler": {"enabled": True, "tls": {"enabled": True, "secretName": "llmobs-scaler-tls", "mutual": True}},
    "feedback": {"enabled": True, "tokensSecret": "llmobs-feedback-tokens", "allowedApps": ["chat", "search"],
                 "persistence": {"enabled": True, "size": "10Gi"}},
    "networkPolicy": {"kedaNamespace": "keda-system", "feedbackFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}},
         "podSelector": {"matchLabels": {"llmobs.io/feedback-client": "true"}}}]},
    "nodeAgent": {"enabled": True},
    "otlp": {"enabled": True, "endpoint": "https://otel.example.com:4318", "protocol": "http/protobuf",
             "clusterName": "prod-eu", "resourceAttributes": {"deployment.environment.name": "prod"},
             "headersSecret": {"name": "otlp-auth", "key": "headers"}, "caSecretName": "otlp-ca"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "dashboards": {"enabled": True, "annotations": {"grafana_folder": "LLM serving"}, "namespace": "monitoring"},
    "keda": {"scaledObjects": [
        {"model": "meta-llama/Llama-3.1-8B-Instruct", "namespace": "inference",
         "scaleTargetRef": {"name": "vllm-llama-8b"}, "signal": "queue_depth", "target": "4",
         "activationTarget": "1", "minReplicaCount": 0, "maxReplicaCount": 8, "tlsSecretName": "keda-llmobs-client",
         "fallback": {"failureThreshold": 3, "replicas": 2}},
        {"model": "Qwen/Qwen2.5-7B", "namespace": "inference", "scaleTargetRef": {"name": "vllm-qwen",
         "kind": "StatefulSet"}, "signal": "kv_utilization", "target": 0.8, "activationTarget": 0,
         "cooldownPeriod": 0, "metadata": {"aggregate": "max"},
         "tlsSecretName": "keda-llmobs-client"},
        {"model": "Qwen/Qwen2.5-7B", "name": "qwen-forecast", "namespace": "inference",
         "scaleTargetRef": {"name": "vllm-qwen", "kind": "StatefulSet"}, "signal": "forecast_request_rate",
         "target": "10", "metadata": {"horizon": "5m", "bound": "upper"}, "tlsSecretName": "keda-llmobs-client"},
    ]},
}


# The scaler in plaintext: allowed only when asked for explicitly (the default is off; on needs TLS).
INSECURE_SCALER = {"enabled": True, "insecure": True}


def render(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Render the chart as `helm template` would and return every manifest document (NOTES excluded)."""
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render(None)


@pytest.fixture(scope="module")
def full_docs() -> list[dict[str, Any]]:
    return render(FULL_VALUES)


@pytest.fixture(scope="module", params=["default", "full"])
def docs(request: pytest.FixtureRequest, default_docs: list[dict[str, Any]],
         full_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return default_docs if request.param == "default" else full_docs


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def rendered_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(docs, "ConfigMap", f"{RELEASE}-llmobs")
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["llmobs.yaml"])
    return loaded


# --- chart files stay copies of the generated artifacts ---------------------------------------------------


def test_chart_copies_of_alerts_and_dashboards_are_in_sync() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_chart
    finally:
        sys.path.pop(0)
    assert sync_chart.drift() == [], "run .venv/bin/python scripts/sync_chart.py"
    assert len(sync_chart.expected()) >= 2 + len(list((ROOT / "dashboards").glob("*.json")))


def test_sync_check_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift check must fail on a stale copy, or the sync test above proves nothing."""
    import shutil
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_chart
    finally:
        sys.path.pop(0)
    files = tmp_path / "files"
    shutil.copytree(CHART / "files", files)
    monkeypatch.setattr(sync_chart, "CHART_FILES", files)
    assert sync_chart.drift() == []
    victim = files / "alerts" / "llmobs-alerts.yaml"
    victim.write_text(victim.read_text().replace("severity: warning", "severity: info", 1))
    (files / "dashboards" / "llmobs-old.json").write_text("{}")
    stale = sync_chart.drift()
    assert any(s.endswith("llmobs-alerts.yaml") for s in stale) and any(s.endswith("llmobs-old.json") for s in stale)
    sync_chart.sync()
    assert sync_chart.drift() == []


# --- Helm's own checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, FULL_VALUES], ids=["default", "full"])
def test_strict_lint_is_clean(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(("values", "message"), [
    ({"exporter": {"port": 70000}}, "at '/exporter/port': maximum"),
    ({"exporter": {"prot": 9400}}, "additional properties 'prot' not allowed"),
    ({"config": {"server": {"port": 1}}}, "at '/config/server'"),
    ({"otlp": {"protocol": "http/json"}}, "at '/otlp/protocol'"),
    ({"keda": {"scaledObjects": [{"model": "m", "scaleTargetRef": {"name": "x"}, "target": "4",
                                  "signal": "queue_lenght"}]}},
     "at '/keda/scaledObjects/0/signal': value must be one of"),
    ({"keda": {"scaledObjects": [{"model": "m", "scaleTargetRef": {"name": "x"}}]}}, "missing property 'target'"),
    ({"keda": {"scaledObjects": [{"model": "m", "scaleTargetRef": {"name": "x"}, "target": "4",
                                  "metadata": {"modle": "y"}}]}}, "additional properties 'modle' not allowed"),
    ({"serviceMonitor": {"interval": "15 seconds"}}, "at '/serviceMonitor/interval'"),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
])
def test_bad_values_fail_with_the_schema_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(values)
    assert message in str(info.value)
    assert "values don't meet the specifications of the schema" in str(info.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"feedback": {"enabled": True}, "networkPolicy": {"feedbackFrom": [{"podSelector": {}}]}},
     "feedback.enabled needs feedback.tokensSecret"),
    ({"scaler": INSECURE_SCALER, "keda": {"scaledObjects": [{"model": "m", "scaleTargetRef": {"name": "x"},
                                                             "target": "1", "signal": "desired_replicas"}]}},
     "keda.scaledObjects[0]: signal desired_replicas needs config.forecast.enabled: true"),
    ({"exporter": {"replicas": 2}, "feedback": {"enabled": True, "tokensSecret": "t"},
      "networkPolicy": {"feedbackFrom": [{"podSelector": {}}]}}, "needs exporter.replicas: 1"),
    ({"scaler": {"tls": {"enabled": True}}}, "scaler.tls.enabled needs scaler.tls.secretName"),
    ({"keda": {"scaledObjects": [{"model": "m", "scaleTargetRef": {"name": "x"}, "target": "1"}]}},
     "needs scaler.enabled"),
    ({"scaler": {"enabled": True}}, "scaler.enabled needs scaler.tls.enabled with scaler.tls.secretName"),
    ({"feedback": {"enabled": True, "tokensSecret": "t", "persistence": {"enabled": False}},
      "networkPolicy": {"feedbackFrom": [{"podSelector": {}}]}}, "set feedback.persistence.allowEmptyDir: true"),
    ({"feedback": {"enabled": True, "tokensSecret": "t"}}, "feedback.enabled needs networkPolicy.feedbackFrom"),
    ({"scaler": {"enabled": True, "tls": {"enabled": True, "secretName": "s"}},
      "keda": {"scaledObjects": [{"model": "m", "scaleTargetRef": {"name": "x"}, "target": "1"}]}},
     "keda.scaledObjects[0]: scaler.tls.enabled needs tlsSecretName"),
    ({"scaler": INSECURE_SCALER,
      "keda": {"scaledObjects": [{"model": "m/A", "scaleTargetRef": {"name": "x"}, "target": "1"},
                                 {"model": "m/a", "scaleTargetRef": {"name": "y"}, "target": "2"}]}},
     "keda.scaledObjects[1]: a second ScaledObject named prod-llmobs-m-a"),
])
def test_inconsistent_values_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError) as info:
        render(values)
    assert message in str(info.value)


# --- manifests are valid Kubernetes objects --------------------------------------------------------------


def crd_errors(manifests: list[dict[str, Any]]) -> list[list[str]]:
    """Each manifest's errors against its CRD's schema (tests/crd/validate.mjs), in order.

    Skips when the validators are not installed, which conftest turns into a failure in CI."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: run `make crd-validators`")
    stamp = CRD_INSTALL / ".llmobs-lock-sha256"
    want = hashlib.sha256((CRD_CHECK / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text().strip() != want:
        pytest.skip(f"CRD validators missing or stale at {CRD_INSTALL}: run `make crd-validators`")
    proc = subprocess.run([node, str(CRD_CHECK / "validate.mjs"), str(CRD_INSTALL)], input=json.dumps(manifests),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [(r["kind"], r["name"]) for r in results] == [(m["kind"], m["metadata"]["name"]) for m in manifests]
    return [r["errors"] for r in results]


def test_every_manifest_validates(docs: list[dict[str, Any]]) -> None:
    """Built-in kinds with kubernetes-validate --strict (unknown fields fail); CRD kinds with their CRDs' schemas
    (unknown fields fail too)."""
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in CRD_KINDS]
    for d in docs:
        if d not in custom:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)
    if custom:
        errors = crd_errors(custom)
        assert {f"{d['kind']}/{d['metadata']['name']}": e for d, e in zip(custom, errors, strict=True) if e} == {}


def test_full_values_render_every_kind(full_docs: list[dict[str, Any]]) -> None:
    kinds = sorted({d["kind"] for d in full_docs})
    assert kinds == sorted(["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Deployment",
                            "NetworkPolicy", "PersistentVolumeClaim", "PrometheusRule", "ScaledObject", "Service",
                            "ServiceAccount", "ServiceMonitor", "TriggerAuthentication"])


def test_default_values_render_only_the_core(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted({d["kind"] for d in default_docs})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "NetworkPolicy", "Service",
                     "ServiceAccount"]


def test_crd_validation_rejects_bad_fields(full_docs: list[dict[str, Any]]) -> None:
    """A bad field in a rendered custom resource fails, with a message naming the field: wrong type, a
    pattern, a missing required field, an unknown (misspelt) field, each kind. Otherwise validating the
    chart against the CRDs proves nothing."""
    def broken(kind: str, edit: Any) -> dict[str, Any]:
        doc = copy.deepcopy(next(d for d in full_docs if d["kind"] == kind))
        edit(doc["spec"])
        return doc

    cases = [
        (broken("ServiceMonitor", lambda s: s["endpoints"][0].update(interval="15 seconds")),
         "/spec/endpoints/0/interval must match pattern"),
        (broken("ServiceMonitor", lambda s: s["endpoints"][0].update(intervall="15s")),
         "/spec/endpoints/0/intervall unknown field 'intervall'"),
        (broken("ServiceMonitor", lambda s: s.pop("selector")), "/spec must have required property 'selector'"),
        (broken("PrometheusRule", lambda s: s["groups"][0]["rules"][0].update(fore="5m")),
         "/spec/groups/0/rules/0/fore unknown field 'fore'"),
        (broken("PrometheusRule", lambda s: s["groups"][0].update(interval=30)),
         "/spec/groups/0/interval must be string"),
        (broken("ScaledObject", lambda s: s.update(minReplicaCount="0")), "/spec/minReplicaCount must be integer"),
        (broken("ScaledObject", lambda s: s["triggers"][0].update(metricTyp="Value")),
         "/spec/triggers/0/metricTyp unknown field 'metricTyp'"),
        (broken("TriggerAuthentication", lambda s: s["secretTargetRef"][0].pop("key")),
         "/spec/secretTargetRef/0 must have required property 'key'"),
    ]
    errors = crd_errors([doc for doc, _ in cases])
    for (_, message), found in zip(cases, errors, strict=True):
        assert any(e.startswith(message) for e in found), (message, found)


# --- least privilege and hardening -----------------------------------------------------------------------


def test_pods_are_hardened(docs: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(docs):
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        mounts_ok = {v["name"] for v in spec["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged", False) is False, name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert c["livenessProbe"] and c["readinessProbe"], name
            writable = {m["mountPath"] for m in c["volumeMounts"] if m["name"] in mounts_ok}
            assert "/tmp" in writable, f"{name}: a read-only root needs a writable /tmp"


def _ingress_by_port(policy: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            out.setdefault(port["port"], []).extend(rule["from"])
    return out


def test_network_policy_admits_each_port_from_its_clients_only(default_docs: list[dict[str, Any]],
                                                               full_docs: list[dict[str, Any]]) -> None:
    prometheus = [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    default = one(default_docs, "NetworkPolicy", f"{RELEASE}-llmobs")
    assert default["spec"]["policyTypes"] == ["Ingress"]
    assert default["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "exporter"
    assert _ingress_by_port(default) == {"http": prometheus}  # scaler and feedback are off by default
    full = _ingress_by_port(one(full_docs, "NetworkPolicy", f"{RELEASE}-llmobs"))
    assert full == {
        "http": prometheus,
        "grpc": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda-system"}}}],
        "feedback": FULL_VALUES["networkPolicy"]["feedbackFrom"],
    }
    agent = one(full_docs, "NetworkPolicy", f"{RELEASE}-llmobs-node-agent")
    assert _ingress_by_port(agent) == {"metrics": prometheus}
    # every named port of a policy exists on the pods it selects
    for policy in (d for d in full_docs if d["kind"] == "NetworkPolicy"):
        component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        (workload,) = [d for d in full_docs if d["kind"] in ("Deployment", "DaemonSet")
                       and d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component]
        names = {p["name"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert set(_ingress_by_port(policy)) <= names
    assert not [d for d in render({"networkPolicy": {"enabled": False}}) if d["kind"] == "NetworkPolicy"]


def test_scaler_is_off_by_default_and_tls_unless_insecure(default_docs: list[dict[str, Any]],
                                                          full_docs: list[dict[str, Any]]) -> None:
    assert "scaler" not in rendered_config(default_docs)
    assert {p["name"] for p in one(default_docs, "Service", f"{RELEASE}-llmobs")["spec"]["ports"]} == {"http"}
    assert rendered_config(full_docs)["scaler"]["tls"]["cert_file"] == "/etc/llmobs/tls/tls.crt"
    assert "tls" not in rendered_config(render({"scaler": INSECURE_SCALER}))["scaler"]


def test_feedback_keeps_acknowledged_events_on_a_volume_by_default() -> None:
    values = {"feedback": {"enabled": True, "tokensSecret": "t"},
              "networkPolicy": {"feedbackFrom": [{"podSelector": {}}]}}
    docs = render(values)
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-llmobs-data"
    one(docs, "PersistentVolumeClaim")
    values["feedback"]["persistence"] = {"enabled": False, "allowEmptyDir": True}  # the explicit opt-out
    volumes = {v["name"]: v for v in one(render(values), "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]


def test_service_account_token_only_for_kubernetes_discovery(default_docs: list[dict[str, Any]]) -> None:
    def automount(docs: list[dict[str, Any]]) -> bool:
        return one(docs, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"]

    assert automount(default_docs) is True  # discovery is on by default: it lists and watches pods
    static = render({"config": {"kubernetes": {"enabled": False},
                                "targets": [{"url": "http://vllm-0.inference:8000/metrics"}]}})
    assert automount(static) is False


def test_rbac_is_read_only_on_pods_and_nodes(docs: list[dict[str, Any]]) -> None:
    """Only get/list/watch, only pods and nodes; each role bound to exactly the account that uses it."""
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    assert roles[f"{RELEASE}-llmobs"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]
    for role in roles.values():
        for rule in role["rules"]:
            assert rule["apiGroups"] == [""] and set(rule["verbs"]) <= {"get", "list", "watch"}
            assert set(rule["resources"]) <= {"pods", "nodes"} and "resourceNames" not in rule
    accounts = {name: spec["serviceAccountName"] for name, spec in pod_specs(docs)}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert sorted(b["roleRef"]["name"] for b in bindings) == sorted(roles)
    for b in bindings:
        (subject,) = b["subjects"]
        assert subject["kind"] == "ServiceAccount" and subject["namespace"] == NAMESPACE
        assert subject["name"] in accounts.values()
    assert accounts[f"{RELEASE}-llmobs"] == one(docs, "ClusterRoleBinding", f"{RELEASE}-llmobs")["subjects"][0]["name"]


def test_patch_on_pods_only_with_drain_aware_scale_in() -> None:
    """The one write llmobs can make (the pod-deletion-cost annotation) is granted only when it is enabled."""
    docs = render({"config": {"kubernetes": {"enabled": True, "pod_deletion_cost": {"enabled": True}}}})
    assert one(docs, "ClusterRole", f"{RELEASE}-llmobs")["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    assert rendered_config(docs)["kubernetes"]["pod_deletion_cost"] == {"enabled": True}
    off = render({"config": {"kubernetes": {"enabled": True, "pod_deletion_cost": {"enabled": False}}}})
    assert all("patch" not in rule["verbs"] for rule in one(off, "ClusterRole", f"{RELEASE}-llmobs")["rules"])


def test_autoscaler_watch_adds_read_only_rbac_on_hpas_and_scaledobjects_only_when_on() -> None:
    on = render({"config": {"kubernetes": {"enabled": True, "watch_autoscalers": True}}})
    assert one(on, "ClusterRole", f"{RELEASE}-llmobs")["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["get", "list", "watch"]}]
    assert rendered_config(on)["kubernetes"]["watch_autoscalers"] is True
    for values in ({"config": {"kubernetes": {"enabled": False, "watch_autoscalers": True}}}, None):
        rules = one(render(values), "ClusterRole", f"{RELEASE}-llmobs")["rules"]
        assert [r["apiGroups"] for r in rules] == [[""]]


def test_node_agent_attribution_and_least_privilege(full_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """With pod attribution: read-only host /proc, pods-only RBAC, a config the agent's loader accepts."""
    from llmobs.agent.config import load_agent_config

    ds = one(full_docs, "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == f"{RELEASE}-llmobs-node-agent"
    assert one(full_docs, "ClusterRole", f"{RELEASE}-llmobs-node-agent")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    assert spec["runtimeClassName"] == "nvidia" and spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "hostPID" not in spec and "hostNetwork" not in spec
    (c,) = spec["containers"]
    assert not any("nvidia.com/gpu" in k for part in c["resources"].values() for k in part)
    assert c["args"] == ["agent", "--config", "/etc/llmobs/agent.yaml"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["host-proc"]["readOnly"] is True
    path = tmp_path / "agent.yaml"
    path.write_text(one(full_docs, "ConfigMap", f"{RELEASE}-llmobs-node-agent")["data"]["agent.yaml"])
    cfg = load_agent_config(path)
    assert cfg.port == c["ports"][0]["containerPort"] and str(cfg.proc_root) == mounts["host-proc"]["mountPath"]
    # the agent indexes the same pods the exporter discovers
    assert cfg.kubernetes.enabled and cfg.kubernetes.label_selector == FULL_VALUES["config"]["kubernetes"][
        "label_selector"]


def test_node_agent_without_attribution_has_no_api_access_or_host_mount() -> None:
    docs = render({"nodeAgent": {"enabled": True, "podAttribution": False}})
    spec = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert not any("hostPath" in v for v in spec["volumes"])
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == [f"{RELEASE}-llmobs"]


def test_node_agent_selector_and_runtime_class_are_values() -> None:
    # Helm merges maps with the defaults: a default key is removed by setting it to null.
    docs = render({"nodeAgent": {"enabled": True, "runtimeClassName": "",
                                 "nodeSelector": {"gpu": "h200", "nvidia.com/gpu.present": None}}})
    spec = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert "runtimeClassName" not in spec and spec["nodeSelector"] == {"gpu": "h200"}


# --- the rendered llmobs config --------------------------------------------------------------------------


def as_mounted(config_text: str, root: Path) -> str:
    """The config as the pod sees it: the paths under the chart's mounts moved under `root`, where the files
    those volumes hold (TLS pair and CA, the tokens Secret, the OTLP CA, the targets' scrape password, the
    node agent's /proc) are written, because --check-config reads them as start-up does."""
    from tests.tls_files import write_self_signed

    etc = root / "etc" / "llmobs"
    write_self_signed(etc / "tls", cert_name="tls.crt", key_name="tls.key")
    (etc / "tls" / "ca.crt").write_bytes((etc / "tls" / "tls.crt").read_bytes())
    write_self_signed(etc / "otlp-ca", cert_name="ca.crt")
    (etc / "feedback-tokens").mkdir(parents=True)
    (etc / "feedback-tokens" / "chat").write_text("token-for-chat\n")
    (etc / "scrape-auth").mkdir(parents=True)
    (etc / "scrape-auth" / "password").write_text("scrape-password\n")
    (root / "host" / "proc").mkdir(parents=True)  # the node agent's hostPath mount of the node's /proc
    return (config_text.replace("/etc/llmobs/", f"{etc}/").replace("/var/lib/llmobs/", f"{root}/var/lib/llmobs/")
            .replace("/host/proc", f"{root}/host/proc"))


def test_rendered_config_passes_llmobs_check_config(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    from llmobs.cli import app

    path = tmp_path / "llmobs.yaml"
    path.write_text(as_mounted(yaml.safe_dump(rendered_config(docs)), tmp_path / "pod"))
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--check-config"])
    assert result.exit_code == 0, result.output
    assert "config OK" in result.output


def test_chart_owned_sections_match_component_models(full_docs: list[dict[str, Any]]) -> None:
    """The sections the chart writes itself validate against the components' own config models."""
    from llmobs.config import ServerConfig
    from llmobs.feedback.config import FeedbackConfig
    from llmobs.serving.otlp import OtlpConfig
    from llmobs.serving.scaler import ScalerConfig

    cfg = rendered_config(full_docs)
    otlp = OtlpConfig.model_validate(cfg["otlp"])
    assert (otlp.protocol, otlp.http_url()) == ("http/protobuf", "https://otel.example.com:4318/v1/metrics")
    ServerConfig.model_validate(cfg["server"])
    scaler = ScalerConfig.model_validate(cfg["scaler"])
    feedback = FeedbackConfig.model_validate(cfg["feedback"])
    assert scaler.tls is not None and scaler.tls.client_ca_file is not None
    assert feedback.allowed_apps == ["chat", "search"]
    # only the model scaled to zero is answered without a scraped replica
    assert scaler.models == ["meta-llama/Llama-3.1-8B-Instruct"]
    assert one(full_docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert cfg["targets"] == FULL_VALUES["config"]["targets"]


def test_ports_probes_and_mounts_agree_with_config(docs: list[dict[str, Any]]) -> None:
    cfg = rendered_config(docs)
    deploy = one(docs, "Deployment")
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == cfg["server"]["port"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    if "scaler" in cfg:
        assert ports["grpc"] == cfg["scaler"]["port"]
    if "feedback" in cfg:
        assert ports["feedback"] == cfg["feedback"]["port"]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert cfg["feedback"]["tokens_file"] in mounts and str(Path(cfg["feedback"]["db_path"]).parent) in mounts
    files = [*(cfg.get("scaler", {}).get("tls") or {}).values(), *([cfg["otlp"]["ca_file"]] if "otlp" in cfg else [])]
    for f in files:
        assert any(f.startswith(m["mountPath"] + "/") for m in c["volumeMounts"]), f
    svc = one(docs, "Service", f"{RELEASE}-llmobs")
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == set(ports)
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_config_checksum_rolls_pods_on_change() -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = one(render(values), "Deployment")["spec"]["template"]["metadata"]
        return str(pod["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"signals": {"window_seconds": 120}}})


# --- PrometheusRule, dashboards ----------------------------------------------------------------------------


def test_prometheusrule_groups_equal_alerts_files(full_docs: list[dict[str, Any]]) -> None:
    rule = one(full_docs, "PrometheusRule")
    expected = []
    for name in ("llmobs-recording-rules.yaml", "llmobs-alerts.yaml"):
        expected += yaml.safe_load((ROOT / "alerts" / name).read_text())["groups"]
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheusrule_parts_can_be_turned_off() -> None:
    rule = one(render({"prometheusRule": {"enabled": True, "alerts": False}}), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((ROOT / "alerts" / "llmobs-recording-rules.yaml").read_text())[
        "groups"]


def test_dashboard_configmaps_carry_the_generated_json(full_docs: list[dict[str, Any]]) -> None:
    maps = [d for d in full_docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard")]
    sources = sorted((ROOT / "dashboards").glob("*.json"))
    assert len(maps) == len(sources)
    by_key = {k: v for m in maps for k, v in m["data"].items()}
    for src in sources:
        assert by_key[src.name] == src.read_text(), src.name
        json.loads(by_key[src.name])
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert m["metadata"]["namespace"] == "monitoring"
        assert m["metadata"]["annotations"] == {"grafana_folder": "LLM serving"}


def test_dashboard_sidecar_label_is_configurable() -> None:
    docs = render({"dashboards": {"label": "grafana.com/dashboard", "labelValue": "llmobs"}})
    maps = [d for d in docs if d["metadata"]["labels"].get("grafana.com/dashboard") == "llmobs"]
    assert len(maps) == len(list((ROOT / "dashboards").glob("*.json")))


# --- KEDA -----------------------------------------------------------------------------------------------


def test_scaledobjects_query_the_llmobs_scaler(full_docs: list[dict[str, Any]]) -> None:
    from llmobs.serving.scaler.metadata import KEDA_KEYS, parse_metadata

    svc = one(full_docs, "Service", f"{RELEASE}-llmobs")
    grpc_port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    objects = [d for d in full_docs if d["kind"] == "ScaledObject"]
    assert len(objects) == len(FULL_VALUES["keda"]["scaledObjects"])
    auths = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in full_docs
             if d["kind"] == "TriggerAuthentication"}
    for so, want in zip(objects, FULL_VALUES["keda"]["scaledObjects"], strict=True):
        assert so["metadata"]["namespace"] == want["namespace"]
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert meta["scalerAddress"] == f"{RELEASE}-llmobs.{NAMESPACE}.svc.cluster.local:{grpc_port}"
        query = parse_metadata({k: v for k, v in meta.items() if k not in KEDA_KEYS})
        assert (query.model, query.signal, query.target) == (want["model"], want["signal"], float(want["target"]))
        auth = auths[(so["metadata"]["namespace"], trigger["authenticationRef"]["name"])]
        params = {r["parameter"] for r in auth["spec"]["secretTargetRef"]}
        assert params == {"caCert", "tlsClientCert", "tlsClientKey"}
        assert "enableTLS" not in meta  # caCert from the TriggerAuthentication is what turns TLS on
    assert objects[0]["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 2}
    assert objects[0]["spec"]["minReplicaCount"] == 0, "scale-to-zero must survive `default`"
    assert objects[1]["spec"]["cooldownPeriod"] == 0 and objects[1]["spec"]["minReplicaCount"] == 1
    assert objects[1]["spec"]["triggers"][0]["metadata"]["activationTarget"] == "0"
    assert objects[1]["spec"]["triggers"][0]["metricType"] == "Value"
    names = [so["metadata"]["name"] for so in objects]
    assert len(set(names)) == len(names)


def test_signal_metric_types_and_schema_follow_the_scaler_catalogue() -> None:
    """The chart's signal enum, default metric types and extra metadata keys are copies of scaler data."""
    from llmobs.serving.scaler.catalogue import SIGNALS
    from llmobs.serving.scaler.metadata import KEYS

    with helm.Chart.load(CHART) as chart:
        schema = chart.schema
        helpers = next(t["data"] for t in chart.templates if t["name"].endswith("_helpers.tpl"))
    assert schema is not None
    item = schema["properties"]["keda"]["properties"]["scaledObjects"]["items"]
    assert set(item["properties"]["signal"]["enum"]) == set(SIGNALS)
    extra = set(item["properties"]["metadata"]["properties"])
    assert extra <= KEYS and extra | {"model", "signal", "target", "activationTarget"} == KEYS
    block = helpers.split('define "llmobs.signalMetricTypes"')[1].split("{{- end }}")[0]
    types = yaml.safe_load(block.split("-}}", 1)[1])
    assert types == {name: spec.metric_type for name, spec in SIGNALS.items()}


def test_otlp_resource_env_comes_from_the_pod(full_docs: list[dict[str, Any]]) -> None:
    """Every k8s.* variable the OTLP resource reads is set on the exporter container."""
    from llmobs.serving.otlp import K8S_ENV

    (c,) = one(full_docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert set(K8S_ENV) <= set(env)
    assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["K8S_CLUSTER_NAME"]["value"] == "prod-eu"
    assert env["OTEL_EXPORTER_OTLP_METRICS_HEADERS"]["valueFrom"]["secretKeyRef"] == {"name": "otlp-auth",
                                                                                      "key": "headers"}


def test_every_value_is_documented() -> None:
    """docs/deploy.md's values reference names every setting in values.yaml (pass-through maps count once)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    doc = (ROOT / "docs" / "deploy.md").read_text()
    opaque = {"config", "podSecurityContext", "securityContext"}  # documented as a whole
    missing = []

    def walk(node: Any, path: list[str]) -> None:
        key = ".".join(path)
        nested = isinstance(node, dict) and node and path and path[0] not in opaque and len(path) < 3 \
            and not path[-1].endswith(("resources", "Probe", "Selector", "Attributes", "podAnnotations"))
        if nested:
            for k, v in node.items():
                walk(v, [*path, k])
        elif f"`{key}`" not in doc and not (len(path) == 3 and f"`.{path[-1]}`" in doc):
            missing.append(key)

    for k, v in values.items():
        walk(v, [k])
    assert missing == []


def test_packaged_chart_renders_the_same(tmp_path: Path) -> None:
    """`helm package` output (what a chart repository serves) carries files/ and renders identically."""
    archive = helm.package(CHART, destination=tmp_path)
    with helm.Chart.load(archive) as packaged, helm.Chart.load(CHART) as source:
        assert packaged.render(FULL_VALUES, name=RELEASE, namespace=NAMESPACE) == \
            source.render(FULL_VALUES, name=RELEASE, namespace=NAMESPACE)
        names = {f["name"] for f in packaged.files}
    assert {f"files/alerts/{p.name}" for p in (ROOT / "alerts").glob("llmobs-*.yaml")} <= names
    assert Path(archive).stat().st_size < 200_000


def test_container_commands_are_valid_cli_invocations(full_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """The args the chart gives both containers parse as llmobs commands (flags included) and accept their
    rendered config: the image's entrypoint is `llmobs`, so these are exactly the command lines that run."""
    from llmobs.cli import app

    for workload, key in (("Deployment", "llmobs.yaml"), ("DaemonSet", "agent.yaml")):
        (c,) = one(full_docs, workload)["spec"]["template"]["spec"]["containers"]
        mount = next(m for m in c["volumeMounts"] if m.get("subPath") == key)
        cm = next(d for d in full_docs if d["kind"] == "ConfigMap" and key in d.get("data", {}))
        local = tmp_path / key
        local.write_text(as_mounted(cm["data"][key], tmp_path / "pod" / workload))
        args = [str(local) if a == mount["mountPath"] else a for a in c["args"]]
        assert args != c["args"], f"{workload} does not read its mounted config"
        # Env the kubelet fills from the downward API (fieldRef), as it would in the pod.
        downward = {e["name"]: "test-node" for e in c.get("env", []) if "fieldRef" in e.get("valueFrom", {})}
        result = CliRunner().invoke(app, [*args, "--check-config"], env=downward)
        assert result.exit_code == 0, f"{workload} {c['args']}: {result.output}"
