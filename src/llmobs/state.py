"""The shared, read-mostly view of the fleet that every server (exporter, scaler, API) reads.

The scrape pipeline is the only writer: each cycle it builds a new immutable `FleetState` and swaps
it in. Readers take `holder.current` once and use that object; they never see a half-updated fleet.
A bounded per-model history feeds the forecaster and the scaler without any I/O.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from llmobs.signals.coldstart import ColdStartSummary
from llmobs.signals.door import DoorSignals
from llmobs.signals.types import ModelEndpointSignals


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """Health of one scrape target, as the exporter reports it (`llmobs_target_*`)."""

    endpoint: str
    url: str
    up: bool
    last_scrape_time: float | None
    scrape_duration_seconds: float
    last_error: str
    last_error_kind: str
    consecutive_failures: int
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    skipped_lines: dict[str, int] = field(default_factory=dict)
    missing_series: tuple[str, ...] = ()
    last_success_time: float | None = None
    counter_resets: int = 0
    series_dropped: dict[str, int] = field(default_factory=dict)  # by reason: the cardinality guard's drops


@dataclass(frozen=True, slots=True)
class DoorHealth:
    """Health of one door target (a router or proxy scraped for per-model demand): `llmobs_door_*`."""

    door: str
    kind: str
    url: str
    up: bool
    last_success_time: float | None
    problems: dict[str, int] = field(default_factory=dict)  # failed scrapes by kind, unusable samples by reason


@dataclass(frozen=True, slots=True)
class ModelDemandPoint:
    """One point of a model's demand history (summed over its endpoints)."""

    time: float
    request_rate: float
    prompt_tokens_rate: float
    generation_tokens_rate: float
    requests_waiting: float
    requests_running: float
    kv_cache_utilization_max: float
    endpoints_up: int


@dataclass(frozen=True, slots=True)
class FleetState:
    """What one scrape cycle published: every model × endpoint's signals and every target's health.

    Immutable, so a server thread reading it can never see it change; the pipeline publishes a new one each
    cycle (`StateHolder.publish`).
    """

    time: float
    signals: tuple[ModelEndpointSignals, ...] = ()
    targets: tuple[TargetHealth, ...] = ()
    cycle_duration_seconds: float = 0.0
    window_seconds: float = 60.0
    cold_starts: Mapping[str, ColdStartSummary] = field(default_factory=dict)  # by model (llmobs.signals.coldstart)
    doors: tuple[DoorSignals, ...] = ()  # per model x door: demand where requests enter, replica or not
    door_health: tuple[DoorHealth, ...] = ()

    def models(self) -> list[str]:
        """The models that have signals, sorted."""
        return sorted({s.attribution.model for s in self.signals})

    def for_model(self, model: str) -> list[ModelEndpointSignals]:
        """`model`'s signals, one per endpoint serving it."""
        return [s for s in self.signals if s.attribution.model == model]

    def doors_for_model(self, model: str) -> list[DoorSignals]:
        """`model`'s door signals, one per door it arrives at; `model` is the replicas' name (after each door's
        model map), so this is the door side of the same model `for_model` gives the replica side of."""
        return [d for d in self.doors if d.model == model]

    def door_models(self) -> list[str]:
        """The models any door has signals for, sorted (a model at zero replicas is here and not in `models`)."""
        return sorted({d.model for d in self.doors})


def summarize_model(state: FleetState, model: str) -> ModelDemandPoint:
    """Sum a model's endpoint signals into one demand point (max for utilization)."""
    rows = state.for_model(model)
    return ModelDemandPoint(
        time=state.time,
        request_rate=sum(r.request_rate for r in rows),
        prompt_tokens_rate=sum(r.prompt_tokens_rate for r in rows),
        generation_tokens_rate=sum(r.generation_tokens_rate for r in rows),
        requests_waiting=sum(r.requests_waiting for r in rows),
        requests_running=sum(r.requests_running for r in rows),
        kv_cache_utilization_max=max((r.kv_cache_utilization for r in rows), default=0.0),
        endpoints_up=len({r.attribution.endpoint for r in rows}),
    )


class StateHolder:
    """Holds the current `FleetState` and a bounded demand history per model.

    Thread-safe for one writer and many readers: the gRPC scaler and HTTP servers may run in other
    threads than the scrape loop.
    """

    def __init__(self, history_points: int = 2880) -> None:
        self._lock = threading.Lock()
        self._current = FleetState(time=time.time())
        self._history: dict[str, deque[ModelDemandPoint]] = {}
        self._history_points = history_points
        self._listeners: list[Callable[[], None]] = []

    @property
    def current(self) -> FleetState:
        return self._current

    def publish(self, state: FleetState) -> None:
        points = [summarize_model(state, m) for m in state.models()]
        with self._lock:
            self._current = state
            for p, model in zip(points, state.models(), strict=True):
                self._history.setdefault(model, deque(maxlen=self._history_points)).append(p)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def on_publish(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` after every publish, in the publishing thread; returns the call that stops it.

        Why: a reader that must act on a new state at once (the KEDA scaler pushing a queue that just
        appeared) wakes on it instead of polling. The listener must be quick and must not raise (schedule
        the work, e.g. `loop.call_soon_threadsafe`): it runs inside the scrape loop."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def add_listener(self, listener: Callable[[FleetState], None]) -> Callable[[], None]:
        """Call `listener(state)` with each published state, on the publishing thread (see `on_publish`: it must
        be cheap and never block; the status page's history appends a few floats per endpoint)."""
        return self.on_publish(lambda: listener(self._current))

    def history(self, model: str) -> list[ModelDemandPoint]:
        with self._lock:
            return list(self._history.get(model, ()))

    def models_with_history(self) -> Iterable[str]:
        with self._lock:
            return list(self._history)
