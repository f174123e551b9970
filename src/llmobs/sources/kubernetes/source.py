"""`KubernetesTargetSource`: the pipeline's TargetSource fed by pod (and node) watches.

The pipeline calls `targets()` every cycle; it only reads the watch caches (built in background threads)
and rebuilds the target list when a watch reported a change, so a cycle never waits on the API server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from kubernetes import client

from llmobs.sources.kubernetes.autoscalers import PodCount, pod_counts
from llmobs.sources.kubernetes.chainwatch import AutoscalerWatch
from llmobs.sources.kubernetes.client import make_api_client
from llmobs.sources.kubernetes.config import KubernetesConfig
from llmobs.sources.kubernetes.pods import pod_target, skip_reason
from llmobs.sources.kubernetes.watch import ResourceWatcher, WatchStats
from llmobs.sources.targets import Target

log = logging.getLogger(__name__)


class KubernetesTargetSource:
    """Discovers vLLM replicas as ready pods matching `cfg.label_selector` in `cfg.namespaces`."""

    def __init__(self, cfg: KubernetesConfig, api_client: client.ApiClient | None = None) -> None:
        self.cfg = cfg
        self.api_client = api_client or make_api_client(cfg)
        core = client.CoreV1Api(self.api_client)
        self._version = 0
        self._built_version = -1
        self._targets: tuple[Target, ...] = ()
        self._lock = threading.Lock()
        self._skipped: set[tuple[str, str, str]] = set()  # (namespace, pod, reason) already logged
        common: dict[str, Any] = {
            "watch_timeout_seconds": cfg.watch_timeout_seconds, "page_size": cfg.list_page_size,
            "backoff_initial_seconds": cfg.backoff_initial_seconds, "backoff_max_seconds": cfg.backoff_max_seconds,
            "on_change": self._bump,
        }
        if cfg.namespaces:
            self.pod_watchers = [ResourceWatcher(f"pods/{ns}", core.list_namespaced_pod, ns,
                                                 label_selector=cfg.label_selector, **common)
                                 for ns in cfg.namespaces]
        else:
            self.pod_watchers = [ResourceWatcher("pods", core.list_pod_for_all_namespaces,
                                                 label_selector=cfg.label_selector, **common)]
        self.node_watcher = ResourceWatcher("nodes", core.list_node, **common) if cfg.watch_nodes else None
        self.autoscalers = AutoscalerWatch(cfg, self.api_client) if cfg.watch_autoscalers else None

    def _warn_skipped(self, pod: Any, reason: str) -> None:
        """Say once per pod and reason why a ready pod is not scraped (it would otherwise just be missing)."""
        meta = pod.get("metadata") if isinstance(pod, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")), reason)
        if key not in self._skipped:
            if len(self._skipped) >= 10_000:  # bounded: pods come and go
                self._skipped.clear()
            self._skipped.add(key)
            log.warning("pod %s/%s is ready but not scraped: %s", key[0], key[1], reason)

    def _bump(self) -> None:
        with self._lock:
            self._version += 1

    @property
    def watchers(self) -> list[ResourceWatcher]:
        return [*self.pod_watchers, *([self.node_watcher] if self.node_watcher is not None else [])]

    def start(self) -> None:
        for w in self.watchers:
            w.start()
        if self.autoscalers is not None:
            self.autoscalers.start()

    def stop(self) -> None:
        for w in self.watchers:
            w.stop()
        if self.autoscalers is not None:
            self.autoscalers.stop()

    def wait_synced(self, timeout: float) -> bool:
        """True once every pod/node watcher has listed once (call after start() to avoid an empty first
        cycle). The autoscaler watches are not waited for: a missing KEDA CRD must not delay discovery."""
        return all(w.wait_synced(timeout) for w in self.watchers)

    def stats(self) -> dict[str, WatchStats]:
        stats = {w.name: w.stats for w in self.watchers}
        if self.autoscalers is not None:
            stats.update(self.autoscalers.stats())
        return stats

    def pod_counts(self) -> dict[str, PodCount]:
        """Pods per model that name their model, Ready or not (targets() keeps only the Ready ones)."""
        return pod_counts((p for w in self.pod_watchers for p in w.snapshot()), self.cfg.model_label)

    def targets(self) -> Sequence[Target]:
        with self._lock:
            version = self._version
        if version == self._built_version:
            return self._targets
        nodes = {}
        if self.node_watcher is not None:
            nodes = {(n.get("metadata") or {}).get("name", ""): n for n in self.node_watcher.snapshot()}
        out: dict[str, Target] = {}
        for w in self.pod_watchers:
            for pod in w.snapshot():
                try:
                    t = pod_target(pod, nodes, self.cfg)
                    reason = skip_reason(pod, self.cfg) if t is None else None
                except (TypeError, ValueError, AttributeError) as exc:  # one odd pod must not stop the others
                    t, reason = None, f"unreadable pod object ({type(exc).__name__}: {exc})"
                if reason is not None:
                    self._warn_skipped(pod, reason)
                if t is not None:
                    out[t.url] = t
        self._targets = tuple(sorted(out.values(), key=lambda t: t.name))
        self._built_version = version
        return self._targets
