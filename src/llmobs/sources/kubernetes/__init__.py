"""Kubernetes discovery: vLLM pods as scrape targets, node GPU labels, and pod lookup for the node agent."""

from llmobs.sources.kubernetes.client import make_api_client
from llmobs.sources.kubernetes.config import KubernetesConfig
from llmobs.sources.kubernetes.podindex import PodIndex, PodRef
from llmobs.sources.kubernetes.pods import endpoint_name, pod_ready, pod_target
from llmobs.sources.kubernetes.source import KubernetesTargetSource
from llmobs.sources.kubernetes.watch import ResourceWatcher, WatchStats

__all__ = ["KubernetesConfig", "KubernetesTargetSource", "PodIndex", "PodRef", "ResourceWatcher", "WatchStats",
           "endpoint_name", "make_api_client", "pod_ready", "pod_target"]
