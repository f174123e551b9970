"""Kubernetes discovery: vLLM pods as scrape targets, node GPU labels, and pod lookup for the node agent.

Names load on first use (llmobs._lazy): `KubernetesConfig` and the pod helpers need no Kubernetes
client, which only the `[kubernetes]` extra installs.
"""

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "make_api_client": "client", "KubernetesConfig": "config", "PodIndex": "podindex", "PodRef": "podindex",
    "endpoint_name": "pods", "pod_ready": "pods", "pod_target": "pods", "KubernetesTargetSource": "source",
    "ResourceWatcher": "watch", "WatchStats": "watch", "AutoscalerWatch": "chainwatch", "ModelChain": "autoscalers",
    "model_chains": "autoscalers", "pod_counts": "autoscalers",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
