"""Pod UID → namespace/name (+ model hint) for the pods on one node: what the node agent needs to name
the pod behind a GPU process. Fed by a pod watch with `fieldSelector=spec.nodeName=<node>`, so the cache
holds tens of pods, not the cluster, and lookups never call the API server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from llmobs.sources.kubernetes.config import KubernetesConfig
from llmobs.sources.kubernetes.watch import ResourceWatcher

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str
    uid: str
    model: str = ""      # from the model label/annotation, "" when the pod does not say
    matches: bool = False  # the pod matches the discovery label selector (is a scraped replica)


def _selector_matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based selectors (`a=b,c!=d,e`), the subset discovery configs use."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.strip().rstrip("=")) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class PodIndex:
    """Watches the pods on `node_name`; `lookup(uid)` answers from the cache (also static pods by hash)."""

    def __init__(self, cfg: KubernetesConfig, node_name: str, api_client: client.ApiClient) -> None:
        self.cfg = cfg
        core = client.CoreV1Api(api_client)
        self.watcher = ResourceWatcher(
            f"pods@{node_name}", core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node_name}",
            watch_timeout_seconds=cfg.watch_timeout_seconds, page_size=cfg.list_page_size,
            backoff_initial_seconds=cfg.backoff_initial_seconds, backoff_max_seconds=cfg.backoff_max_seconds,
            on_change=self._invalidate)
        self._index: dict[str, PodRef] = {}
        self._version = 0
        self._built = -1

    def _invalidate(self) -> None:
        self._version += 1  # read before building, so a change during a build forces the next one

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def _build(self) -> dict[str, PodRef]:
        index: dict[str, PodRef] = {}
        for pod in self.watcher.snapshot():
            meta: dict[str, Any] = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            annotations = meta.get("annotations") or {}
            ref = PodRef(namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
                         model=labels.get(self.cfg.model_label) or annotations.get(self.cfg.model_label) or "",
                         matches=_selector_matches(labels, self.cfg.label_selector))
            index[ref.uid] = ref
            mirror = annotations.get(MIRROR_ANNOTATION)
            if mirror:  # a static pod's cgroup names its config hash, not the mirror pod's UID
                index.setdefault(mirror, ref)
        return index

    def lookup(self, uid: str) -> PodRef | None:
        version = self._version
        if version != self._built:
            self._index = self._build()
            self._built = version
        return self._index.get(uid)
