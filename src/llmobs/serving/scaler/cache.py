"""The scaler's precomputed state, and the pure function that answers a query from it.

Why a cache: KEDA calls GetMetrics/IsActive for every trigger at every polling interval and HPA sync,
with a 3 s deadline, and the HPA path must never wait on a scrape or a forecaster. So everything a
request can ask for is computed once per published `FleetState` (`build_snapshot`, run by the refresher
off the request path) into an immutable `Snapshot`; handlers take `cache.snapshot` and do dictionary
lookups (plus a small aggregation when a trigger selects endpoints). The cache is versioned and wakes
waiters (StreamIsActive) on every publish, so a push can never miss a change between two timers.

Staleness (the documented safe behaviour): when no scrape cycle has completed for `stale_after`
seconds, or every scraped endpoint of the model has had no successful scrape for that long, answers are
UNAVAILABLE, so KEDA counts a scaler failure and its `fallback` replicas apply; we never serve an old
queue depth as if it were current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from llmobs.serving.scaler.catalogue import AGGREGATES, DOOR_SIGNALS, ENDPOINT_SIGNALS, SIGNALS
from llmobs.serving.scaler.metadata import MAX_TARGET, ScalerQuery
from llmobs.serving.scaler.provider import ForecastProvider
from llmobs.signals.door import DoorSignals
from llmobs.signals.types import ModelEndpointSignals
from llmobs.state import FleetState

log = logging.getLogger("llmobs.scaler")
MAX_VALUE = 9e15
"""Largest value answered (larger ones are clamped to it). KEDA turns `metricValueFloat` (and metrics-api's
`value`) into a milli-quantity, int64(value × 1000): above ~9.2e15 Go's conversion is undefined (on amd64 the
most negative int64), and the HPA would read a runaway signal as a negative one; GetMetrics' int64
`metricValue` cannot be encoded above 9.2e18 at all (the call failed). Clamped, the value is still ≥ 9 × the
largest target (metadata.MAX_TARGET), so the HPA scales up as far as it may — what the true value asks for."""
assert MAX_VALUE >= 9 * MAX_TARGET
_T = TypeVar("_T")


def _endpoint_reader(name: str) -> Callable[[ModelEndpointSignals], float]:
    """An endpoint signal's reader; the catalogue gives one to every endpoint signal, checked here at import."""
    read = SIGNALS[name].read
    if read is None:
        raise RuntimeError(f"endpoint signal {name!r} has no reader in the scaler catalogue")
    return read


_INDEX = {name: i for i, name in enumerate(ENDPOINT_SIGNALS)}
_READERS = {name: _endpoint_reader(name) for name in ENDPOINT_SIGNALS}


def _door_reader(name: str) -> Callable[[DoorSignals], float]:
    read = SIGNALS[name].read_door
    if read is None:
        raise RuntimeError(f"door signal {name!r} has no door reader in the scaler catalogue")
    return read


_DOOR_READERS = {name: _door_reader(name) for name in DOOR_SIGNALS}


class ScalerError(Exception):
    """An answer that is not a value; `code` is a gRPC status code name (and an HTTP status for metrics-api)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One endpoint's values for every endpoint signal (in ENDPOINT_SIGNALS order)."""

    endpoint: str
    node: str
    namespace: str
    values: tuple[float, ...]
    fresh_until: float


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model: str
    rows: tuple[EndpointRow, ...]
    totals: dict[tuple[str, str], float]
    fresh_until: float
    forecasts: dict[float, tuple[float, float]] = field(default_factory=dict)
    desired_replicas: int | None = None
    door_fresh_until: float | None = None  # None: no door has shown the model (its door signals read 0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the handlers may read. `ready` is False until the first scrape cycle has published."""

    state_time: float
    built_at: float
    stale_after: float
    ready: bool
    models: dict[str, ModelEntry]
    version: int = 0

    @property
    def fresh_until(self) -> float:
        return self.state_time + self.stale_after


EMPTY = Snapshot(state_time=0.0, built_at=0.0, stale_after=0.0, ready=False, models={})


def aggregate(values: Iterable[float], how: str) -> float:
    vals = list(values)
    if not vals:
        return 0.0
    if how == "sum":
        return math.fsum(vals)
    if how == "mean":
        return math.fsum(vals) / len(vals)
    # max() is order-dependent around NaN (max([nan, 1]) is nan, max([1, nan]) is 1): an unknown reading makes
    # the maximum unknown, as it does the sum and the mean
    return math.nan if any(map(math.isnan, vals)) else max(vals)


def _clean(value: float) -> float:
    """Negative readings become 0 (as KEDA would); NaN/Inf stay NaN so `answer` refuses them."""
    value = float(value)
    return max(0.0, value) if math.isfinite(value) else math.nan


_logged_failures: set[tuple[str, str, str]] = set()


def _safe_call(fn: Callable[..., _T], model: str, *args: object) -> _T | None:
    """Call the forecaster; an exception reads as None (logged once per method, model and error type)."""
    try:
        return fn(model, *args)
    except Exception as e:  # a failing forecaster must not stop the live signals
        key = (getattr(fn, "__name__", "?"), model, type(e).__name__)
        if key not in _logged_failures:
            _logged_failures.add(key)
            log.warning("forecast provider %s(%r) failed: %r; answering UNAVAILABLE for it", key[0], model, e)
        return None


def _replicas(value: object) -> int | None:
    try:
        v = float(value)  # type: ignore[arg-type]  # a provider may return anything: float() raising is the check
    except (TypeError, ValueError):
        return None
    return max(0, math.ceil(v)) if math.isfinite(v) else None


def build_snapshot(
    state: FleetState, *, stale_after: float, known_models: Iterable[str] = (),
    forecast: ForecastProvider | None = None, horizons: Iterable[float] = (), now: float | None = None,
) -> Snapshot:
    """Precompute every (model, signal, aggregate) value and the per-endpoint rows from one state.

    An endpoint whose last successful scrape is older than `stale_after` is left out of the totals
    (a replica we cannot see serves no traffic we can count); the model is stale when all are.
    """
    now = time.time() if now is None else now
    health = {t.endpoint: t for t in state.targets}
    rows_by_model: dict[str, list[EndpointRow]] = {m: [] for m in known_models}
    for s in state.signals:
        a = s.attribution
        h = health.get(a.endpoint)
        last_ok = h.last_success_time if h is not None and h.last_success_time is not None else state.time
        namespace = h.labels.get("namespace", "") if h is not None else ""
        values = tuple(_clean(_READERS[n](s)) for n in ENDPOINT_SIGNALS)
        rows_by_model.setdefault(a.model, []).append(
            EndpointRow(a.endpoint, a.node, namespace, values, last_ok + stale_after))
    doors_by_model = _door_rows(state, stale_after)
    for model in doors_by_model:
        rows_by_model.setdefault(model, [])
    horizons = tuple(horizons)
    models: dict[str, ModelEntry] = {}
    for model, rows in rows_by_model.items():
        live = [r for r in rows if r.fresh_until >= now]
        totals = {(sig, how): aggregate((r.values[i] for r in live), how)
                  for sig, i in _INDEX.items() for how in AGGREGATES}
        door_rows = doors_by_model.get(model, [])
        live_doors = [values for values, fresh in door_rows if fresh >= now]
        totals.update({(sig, how): aggregate((v[i] for v in live_doors), how)
                       for i, sig in enumerate(DOOR_SIGNALS) for how in AGGREGATES})
        door_fresh_until = max((fresh for _, fresh in door_rows), default=None)
        fresh_until = max((r.fresh_until for r in rows), default=math.inf)
        forecasts: dict[float, tuple[float, float]] = {}
        desired: int | None = None
        if forecast is not None:
            for horizon in horizons:
                f = _safe_call(forecast.forecast, model, horizon)
                if f is not None and len(f) == 2 and all(math.isfinite(x) for x in f):
                    forecasts[horizon] = (max(0.0, float(f[0])), max(0.0, float(f[1])))
            desired = _replicas(_safe_call(forecast.desired_replicas, model))
        models[model] = ModelEntry(model, tuple(rows), totals, fresh_until, forecasts, desired, door_fresh_until)
    ready = bool(state.targets or state.signals or state.door_health)
    return Snapshot(state.time, now, stale_after, ready, models)


def _door_rows(state: FleetState, stale_after: float) -> dict[str, list[tuple[tuple[float, ...], float]]]:
    """Per model, each door's values of the door signals (DOOR_SIGNALS order) and until when they are fresh."""
    last_ok = {h.door: h.last_success_time for h in state.door_health}
    out: dict[str, list[tuple[tuple[float, ...], float]]] = {}
    for d in state.doors:
        seen = last_ok.get(d.door)
        fresh_until = (state.time if seen is None else seen) + stale_after
        values = tuple(_clean(_DOOR_READERS[n](d)) for n in DOOR_SIGNALS)
        out.setdefault(d.model, []).append((values, fresh_until))
    return out


def answer(snapshot: Snapshot, q: ScalerQuery, now: float) -> float:
    """The value for one query, or ScalerError (NOT_FOUND unknown model, UNAVAILABLE stale/missing)."""
    if not snapshot.ready:
        raise ScalerError("UNAVAILABLE", "no scrape cycle has completed yet")
    if now > snapshot.fresh_until:
        raise ScalerError("UNAVAILABLE", f"scaler state is {now - snapshot.state_time:.0f} s old "
                                         f"(stale after {snapshot.stale_after:g} s): the scrape loop is stuck")
    entry = snapshot.models.get(q.model)
    if entry is None:
        raise ScalerError("NOT_FOUND", f"model {q.model!r} is not served by any scraped endpoint "
                                       f"(known: {', '.join(sorted(snapshot.models)) or 'none'})")
    if q.signal == "forecast_request_rate":
        f = entry.forecasts.get(q.horizon_seconds) if q.horizon_seconds is not None else None
        if f is None:
            raise ScalerError("UNAVAILABLE", f"no forecast for model {q.model!r} yet")
        value = f[1] if q.bound == "upper" else f[0]
    elif q.signal == "desired_replicas":
        if entry.desired_replicas is None:
            raise ScalerError("UNAVAILABLE", f"no replica recommendation for model {q.model!r} yet")
        value = float(entry.desired_replicas)
    elif SIGNALS[q.signal].source == "door":
        if entry.door_fresh_until is not None and now > entry.door_fresh_until:
            raise ScalerError("UNAVAILABLE", f"no successful scrape of any door of {q.model!r} for "
                                             f"{snapshot.stale_after:g} s")
        value = entry.totals[(q.signal, q.aggregate)]
    elif not q.has_selectors:
        if now > entry.fresh_until:
            raise ScalerError("UNAVAILABLE", f"no successful scrape of any endpoint of {q.model!r} for "
                                             f"{snapshot.stale_after:g} s")
        value = entry.totals[(q.signal, q.aggregate)]
    else:
        rows = [r for r in entry.rows
                if (q.endpoints is None or r.endpoint in q.endpoints) and (q.nodes is None or r.node in q.nodes)
                and (q.namespaces is None or r.namespace in q.namespaces)]
        if rows and max(r.fresh_until for r in rows) < now:
            raise ScalerError("UNAVAILABLE", f"no successful scrape of the selected endpoints of {q.model!r} "
                                             f"for {snapshot.stale_after:g} s")
        i = _INDEX[q.signal]
        value = aggregate((r.values[i] for r in rows if r.fresh_until >= snapshot.built_at), q.aggregate)
    if not math.isfinite(value):
        raise ScalerError("UNAVAILABLE", f"{q.signal} of {q.model!r} is not a finite number right now")
    return min(max(0.0, value), MAX_VALUE)


class SignalCache:
    """Holds the current `Snapshot`; `publish` (from any thread) swaps it and wakes every waiter, on whichever
    event loop it waits (the gRPC thread's)."""

    def __init__(self) -> None:
        self._snapshot = EMPTY
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> Snapshot:
        with self._lock:
            snapshot = replace(snapshot, version=self._snapshot.version + 1)
            self._snapshot = snapshot
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed (the scaler stopping)
                loop.call_soon_threadsafe(_wake, fut)
        return snapshot

    async def wait_newer(self, version: int) -> Snapshot:
        """Return the first snapshot with a version other than `version` (at once if there is one)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._snapshot.version != version:
                    return self._snapshot
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            try:
                await fut
            finally:
                if not fut.done():
                    with self._lock:
                        self._waiters = [w for w in self._waiters if w[1] is not fut]


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
