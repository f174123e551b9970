"""List+watch caches of HorizontalPodAutoscalers and KEDA ScaledObjects in the discovery namespaces.

Read-only (get/list/watch) and bounded the way the pod watch is: one watcher per namespace (or one
cluster-wide), raw JSON kept, readers take snapshots. Where KEDA is not installed the ScaledObject list
answers 404; the watcher then retries with backoff (so a later KEDA install is picked up) and
`keda_missing` says so, instead of the exporter failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client

from llmobs.sources.kubernetes.autoscalers import ModelChain, model_chains
from llmobs.sources.kubernetes.config import KubernetesConfig
from llmobs.sources.kubernetes.watch import ResourceWatcher, WatchStats

log = logging.getLogger(__name__)

KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL = "keda.sh", "v1alpha1", "scaledobjects"


class AutoscalerWatch:
    """HPAs (autoscaling/v2) and ScaledObjects (keda.sh/v1alpha1) joined into per-model chains on demand."""

    def __init__(self, cfg: KubernetesConfig, api_client: client.ApiClient,
                 on_change: Callable[[], None] | None = None) -> None:
        hpa_api = client.AutoscalingV2Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        common: dict[str, Any] = {
            "watch_timeout_seconds": cfg.watch_timeout_seconds, "page_size": cfg.list_page_size,
            "backoff_initial_seconds": cfg.backoff_initial_seconds, "backoff_max_seconds": cfg.backoff_max_seconds,
            "on_change": on_change,
        }
        if cfg.namespaces:
            self.hpa_watchers = [ResourceWatcher(f"hpas/{ns}", hpa_api.list_namespaced_horizontal_pod_autoscaler,
                                                 ns, **common) for ns in cfg.namespaces]
            self.scaledobject_watchers = [
                ResourceWatcher(f"scaledobjects/{ns}", custom.list_namespaced_custom_object,
                                KEDA_GROUP, KEDA_VERSION, ns, KEDA_PLURAL, **common) for ns in cfg.namespaces]
        else:
            self.hpa_watchers = [ResourceWatcher("hpas", hpa_api.list_horizontal_pod_autoscaler_for_all_namespaces,
                                                 **common)]
            self.scaledobject_watchers = [ResourceWatcher("scaledobjects", custom.list_cluster_custom_object,
                                                          KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL, **common)]
        self._warned_missing = False

    @property
    def watchers(self) -> list[ResourceWatcher]:
        return [*self.hpa_watchers, *self.scaledobject_watchers]

    def start(self) -> None:
        for w in self.watchers:
            w.start()

    def stop(self) -> None:
        for w in self.watchers:
            w.stop()

    def stats(self) -> dict[str, WatchStats]:
        return {w.name: w.stats for w in self.watchers}

    @property
    def keda_missing(self) -> bool:
        """True while the API server answers 404 for ScaledObjects (the KEDA CRD is not installed)."""
        return any(not w.synced and w.last_error.startswith("HTTP 404") for w in self.scaledobject_watchers)

    def chains(self) -> list[ModelChain]:
        """Every (model, ScaledObject) link with its HPA. Says once in the log when KEDA is absent, so a chain
        view without ScaledObjects is explained where an operator looks first."""
        if not self._warned_missing and self.keda_missing:
            self._warned_missing = True
            log.warning("KEDA ScaledObjects are not served (HTTP 404: CRD keda.sh/v1alpha1 not installed); "
                        "watching HPAs only, retrying ScaledObjects with backoff")
        scaledobjects = [o for w in self.scaledobject_watchers for o in w.snapshot()]
        hpas = [o for w in self.hpa_watchers for o in w.snapshot()]
        return model_chains(scaledobjects, hpas)
