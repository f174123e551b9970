"""Configuration of Kubernetes pod discovery (one pydantic model the lead nests under `kubernetes:`)."""

from __future__ import annotations

from pydantic import Field, field_validator

from llmobs._config_model import StrictConfigModel


class DeletionCostConfig(StrictConfigModel):
    """`kubernetes.pod_deletion_cost:` — opt-in writes of the pod-deletion-cost annotation, so that scale-in
    removes the idlest replica (llmobs.serving.deletion_cost)."""

    enabled: bool = Field(False, description="write the annotation (needs RBAC patch on pods)")
    interval_seconds: float = Field(10.0, gt=0, description="time between passes over the pods")
    min_patch_interval_seconds: float = Field(30.0, ge=0, description="at most one write per pod in this time")
    max_patches_per_second: float = Field(5.0, gt=0, description="writes per second over all pods")
    forbidden_backoff_seconds: float = Field(300.0, gt=0, description="pause after a 403 (RBAC missing)")
    error_backoff_seconds: float = Field(30.0, gt=0, description="pause after a 429, 5xx or connection error")


class KubernetesConfig(StrictConfigModel):
    """Which pods are vLLM replicas, how to reach their /metrics, and how to talk to the API server.

    Every knob has the default a stock vLLM Deployment needs: label the pods `app.kubernetes.io/name=vllm`
    (or set `label_selector`), expose a container port named `metrics` or `http` (or annotate the pod
    `llmobs.io/port: "8000"`)."""

    enabled: bool = False
    namespaces: list[str] = Field(default_factory=list, description="[] = all namespaces (needs cluster-wide RBAC)")
    label_selector: str = "app.kubernetes.io/name=vllm"
    port_annotation: str = "llmobs.io/port"
    path_annotation: str = "llmobs.io/path"
    port_names: list[str] = Field(default_factory=lambda: ["metrics", "http"])
    metrics_path: str = "/metrics"
    scheme: str = "http"
    model_label: str = "llmobs.io/model"
    role_label: str = "llmobs.io/role"  # prefill | decode | mixed: the pod's disaggregation role
    watch_nodes: bool = True
    gpu_product_label: str = "nvidia.com/gpu.product"
    gpu_memory_label: str = "nvidia.com/gpu.memory"
    zone_label: str = "topology.kubernetes.io/zone"
    gpu_resource: str = "nvidia.com/gpu"
    # The scaling chain: HPAs and KEDA ScaledObjects (read-only) joined to the models they scale.
    watch_autoscalers: bool = Field(False, description="watch HPAs and KEDA ScaledObjects in `namespaces` "
                                    "(needs get/list/watch on both; the Helm chart grants it)")
    # API access: in-cluster service account when running in a pod, else kubeconfig, else `api_host`.
    kubeconfig: str | None = None
    context: str | None = None
    api_host: str | None = Field(None, description="explicit API server URL (tests, kubectl proxy)")
    watch_timeout_seconds: int = Field(300, ge=1, le=3600)
    list_page_size: int = Field(500, ge=1)
    backoff_initial_seconds: float = Field(0.5, gt=0)
    backoff_max_seconds: float = Field(30.0, gt=0)
    pod_deletion_cost: DeletionCostConfig = Field(default_factory=DeletionCostConfig)

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v not in ("http", "https"):
            raise ValueError("scheme must be http or https")
        return v

    @field_validator("metrics_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("metrics_path must start with /")
        return v
