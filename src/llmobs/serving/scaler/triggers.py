"""The triggers KEDA has asked about: parsed metadata, memoised, in a registry that cannot grow unbounded.

KEDA sends a trigger's whole metadata on every call, so each call would parse it again; the registry keeps
the parsed `ScalerQuery` (and its metric name) per distinct metadata. It is bounded twice, because the
metadata comes from whoever can reach the port: only triggers for a model the scaler knows (scraped, or
listed in `scaler.models`) are kept — a stream of made-up model names is parsed per call (cheap: the
metadata is bounded by `metadata.check_bounds`) and answered NOT_FOUND without being remembered — and
at most `capacity` triggers are kept, least recently used evicted first (counted: a fleet with more
triggers than that shows up in `llmobs_scaler_trigger_evictions_total`). Invalid metadata is never kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

from llmobs.serving.scaler.metadata import ScalerQuery, check_bounds, metric_name, parse_items, query_items

DEFAULT_CAPACITY = 4096  # one entry per ScaledObject trigger; an entry is a few hundred bytes


@dataclass(frozen=True, slots=True)
class Trigger:
    query: ScalerQuery
    metric_name: str
    metadata: Mapping[str, str]  # as first received, KEDA's keys included (the native front end's table key)


class TriggerRegistry:
    def __init__(self, horizons: tuple[float, ...], known_models: Callable[[], Container[str]],
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.horizons = horizons
        self.known_models = known_models
        self.capacity = capacity
        self.evictions = 0
        self._lock = threading.Lock()  # looked up from the gRPC thread and the HTTP server's loop
        self._triggers: OrderedDict[tuple[tuple[str, str], ...], Trigger] = OrderedDict()

    def __len__(self) -> int:
        return len(self._triggers)

    def lookup(self, metadata: Mapping[str, str]) -> Trigger:
        """The trigger for this metadata; raises `MetadataError` (never kept) for invalid metadata."""
        check_bounds(metadata)
        key = query_items(metadata)
        with self._lock:
            found = self._triggers.get(key)
            if found is not None:
                self._triggers.move_to_end(key)
                return found
        query = parse_items(key, self.horizons)
        trigger = Trigger(query, metric_name(query), dict(metadata))
        if query.model in self.known_models():
            with self._lock:
                self._triggers[key] = trigger
                while len(self._triggers) > self.capacity:
                    self._triggers.popitem(last=False)
                    self.evictions += 1
        return trigger

    def items(self) -> list[Trigger]:
        """Every remembered trigger, least recently used first."""
        with self._lock:
            return list(self._triggers.values())
