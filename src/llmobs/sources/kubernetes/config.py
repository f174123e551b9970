"""Configuration of Kubernetes pod discovery (one pydantic model the lead nests under `kubernetes:`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KubernetesConfig(BaseModel):
    """Which pods are vLLM replicas, how to reach their /metrics, and how to talk to the API server.

    Every knob has the default a stock vLLM Deployment needs: label the pods `app.kubernetes.io/name=vllm`
    (or set `label_selector`), expose a container port named `metrics` or `http` (or annotate the pod
    `llmobs.io/port: "8000"`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    namespaces: list[str] = Field(default_factory=list, description="[] = all namespaces (needs cluster-wide RBAC)")
    label_selector: str = "app.kubernetes.io/name=vllm"
    port_annotation: str = "llmobs.io/port"
    path_annotation: str = "llmobs.io/path"
    port_names: list[str] = Field(default_factory=lambda: ["metrics", "http"])
    metrics_path: str = "/metrics"
    scheme: str = "http"
    model_label: str = "llmobs.io/model"
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
