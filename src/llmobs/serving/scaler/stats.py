"""The scaler's own metrics, exported through a collector on an injected registry (never the global one).

`llmobs_scaler_requests_total{method,code}` counts every answered call (gRPC methods by name, the JSON
route as `metrics-api`; `code` is the gRPC status name; with the opt-in native engine, the front end's own
answers are added from the counts it writes each second), `llmobs_scaler_last_update_timestamp_seconds{model}`
is the time the cache was last rebuilt for each model — an alert on its age catches a stuck refresher —
and `llmobs_scaler_triggers` / `llmobs_scaler_trigger_evictions_total` show the bounded trigger registry
(evictions mean more distinct triggers than it holds: a very large fleet, or a client inventing them).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from llmobs.metric_families import family
from llmobs.serving.scaler.cache import SignalCache
from llmobs.serving.scaler.triggers import TriggerRegistry


class ScalerStats:
    """Request counts by (method, code). A lock: the gRPC thread and the HTTP server's loop both count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        # Counts kept elsewhere and added in (the native front end's answers; it writes them each second).
        self.external: Callable[[], Mapping[tuple[str, str], int]] | None = None

    def count(self, method: str, code: str) -> None:
        with self._lock:
            self._counts[(method, code)] += 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            out = Counter(self._counts)
        if self.external is not None:
            out.update(self.external())
        return dict(out)


class ScalerCollector(Collector):
    def __init__(self, stats: ScalerStats, cache: SignalCache, triggers: TriggerRegistry | None = None) -> None:
        self.stats = stats
        self.cache = cache
        self.triggers = triggers

    def collect(self) -> Iterator[Metric]:
        requests = family("llmobs_scaler_requests_total")
        for (method, code), n in sorted(self.stats.counts().items()):
            requests.add_metric([method, code], n)
        yield requests
        updated = family("llmobs_scaler_last_update_timestamp_seconds")
        snapshot = self.cache.snapshot
        if snapshot.ready:
            for model in sorted(snapshot.models):
                updated.add_metric([model], snapshot.built_at)
        yield updated
        if self.triggers is not None:
            yield family("llmobs_scaler_triggers", len(self.triggers))
            yield family("llmobs_scaler_trigger_evictions_total", self.triggers.evictions)
