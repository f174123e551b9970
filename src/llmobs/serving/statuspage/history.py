"""A bounded per-endpoint signal history for the status page's sparklines.

The page shows the last hour of each endpoint's KV use, queue and latency; the pipeline keeps only the
current cycle. `SignalHistory.record` runs when a state is published (a `StateHolder` listener), so it
must be cheap: it appends a handful of floats per endpoint into fixed-size ring buffers (`array`, 4 bytes
a value) and thins to at most one point per `spacing_seconds`, so memory is fixed by `capacity` whatever
the scrape interval: 1,000 endpoints × 360 points × 6 series ≈ 10 MB. Endpoints not seen for `retain_seconds`
are dropped, so churn (rolling restarts, autoscaling) cannot grow it.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llmobs.signals.types import ModelEndpointSignals
from llmobs.state import FleetState

# The series kept per endpoint, in this order (the page's sparklines and the JSON view name them so).
ENDPOINT_SERIES: tuple[str, ...] = ("kv", "waiting", "running", "ttft_p90", "tpot_p90", "saturation")
# The series kept per model: served demand (req/s), door demand (plug-in), forecast point and upper band at
# the horizon, desired / current / Ready replicas, and the TTFT SLO's good and total request counters.
MODEL_SERIES: tuple[str, ...] = ("served", "door", "forecast", "upper", "desired", "current", "ready",
                                 "slo_good", "slo_total")

Key = tuple[str, str]  # (model, endpoint)
# What the saturation signal is, per endpoint (None = not measured): the slot a bottleneck signal plugs in.
SaturationOf = Callable[[ModelEndpointSignals], float | None]


def _quantile(q: Mapping[float, float], at: float) -> float:
    v = q.get(at)
    return math.nan if v is None else v


def _values(s: ModelEndpointSignals, saturation_of: SaturationOf | None) -> tuple[float, ...]:
    sat = saturation_of(s) if saturation_of is not None else None
    return (
        s.kv_cache_utilization,
        s.requests_waiting,
        s.requests_running,
        _quantile(s.ttft.quantiles, 0.9),
        _quantile(s.itl.quantiles, 0.9),  # vLLM's inter-token latency: the time per output token (TPOT)
        math.nan if sat is None else sat,
    )


class _Ring:
    """One endpoint's or model's series: a time column and one column per series, written round-robin.

    With `overview_points`, it also keeps an overview: the same span in that many buckets, each the max of
    its points (a spike stays visible), updated as points arrive — so a sparkline reads ~40 values instead of
    thinning 360 at every render."""

    __slots__ = ("bucket", "columns", "count", "last_seen", "names", "next", "overview", "size", "times")

    def __init__(self, capacity: int, names: tuple[str, ...], typecode: str = "f", overview_points: int = 0) -> None:
        self.names = names
        self.times = array("d", [math.nan]) * capacity
        self.columns = [array(typecode, [math.nan]) * capacity for _ in names]
        self.next = 0
        self.size = 0
        self.count = 0  # points ever appended: which overview bucket the next one falls in
        self.last_seen = 0.0
        self.bucket = max(1, -(-capacity // overview_points)) if overview_points else 0
        self.overview = _Ring(-(-capacity // self.bucket) + 1, names, typecode) if overview_points else None

    def append(self, t: float, values: tuple[float, ...]) -> None:
        i = self.next
        self.times[i] = t
        for column, v in zip(self.columns, values, strict=True):
            column[i] = v if math.isfinite(v) else math.nan
        capacity = len(self.times)
        self.next = (i + 1) % capacity
        self.size = min(self.size + 1, capacity)
        if self.overview is not None:
            if self.count % self.bucket == 0:
                self.overview.append(t, values)
            else:
                self.overview.merge_last(t, values)
        self.count += 1

    def merge_last(self, t: float, values: tuple[float, ...]) -> None:
        """Fold `values` into the newest point: the max, ignoring NaN; its time becomes `t`."""
        i = (self.next - 1) % len(self.times)
        self.times[i] = t
        for column, v in zip(self.columns, values, strict=True):
            old = column[i]
            if v == v and math.isfinite(v) and not old >= v:  # not old >= v: also when old is NaN
                column[i] = v

    def ordered(self) -> tuple[list[float], dict[str, list[float]]]:
        """Times and columns oldest first (array slices: C-speed, no per-value Python work)."""
        capacity = len(self.times)
        start = (self.next - self.size) % capacity
        end = start + self.size

        def rotate(a: array[float]) -> list[float]:
            return a[start:end].tolist() if end <= capacity else (a[start:] + a[:end - capacity]).tolist()

        return rotate(self.times), {name: rotate(col) for name, col in zip(self.names, self.columns, strict=True)}

    def last_time(self) -> float:
        return self.times[(self.next - 1) % len(self.times)] if self.size else -math.inf

    def nbytes(self) -> int:
        own = self.times.itemsize * len(self.times) + sum(c.itemsize * len(c) for c in self.columns)
        return own + (self.overview.nbytes() if self.overview is not None else 0)


@dataclass(frozen=True, slots=True)
class Series:
    """One endpoint's or model's history, oldest first; NaN where a value was not measured."""

    times: list[float]
    values: dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class ModelExtras:
    """What the model history records besides the scraped state: each value None when its source is absent."""

    door: float | None = None
    forecast: float | None = None
    upper: float | None = None
    desired: float | None = None
    current: float | None = None
    ready: float | None = None


# Where the model history's non-scraped values come from (forecast service, HPAs, the door): model -> extras.
ModelExtrasOf = Callable[[str], ModelExtras]


def _nan(v: float | None) -> float:
    return math.nan if v is None else v


def _model_values(state: FleetState, model: str, extras: ModelExtras) -> tuple[float, ...]:
    rows = state.for_model(model)
    good = sum(r.totals.get("ttft_slo_good", 0.0) for r in rows)
    total = sum(r.totals.get("ttft_slo_requests", 0.0) for r in rows)
    has_slo = any("ttft_slo_requests" in r.totals for r in rows)
    current = extras.current if extras.current is not None else float(len(rows))
    return (sum(r.request_rate for r in rows), _nan(extras.door), _nan(extras.forecast), _nan(extras.upper),
            _nan(extras.desired), current, _nan(extras.ready),
            good if has_slo else math.nan, total if has_slo else math.nan)


class SignalHistory:
    """Per-endpoint and per-model ring buffers, written when a state is published, read by the page's thread."""

    def __init__(self, capacity: int = 360, spacing_seconds: float = 10.0, retain_seconds: float = 3600.0,
                 saturation_of: SaturationOf | None = None, model_extras: ModelExtrasOf | None = None,
                 overview_points: int = 40) -> None:
        if capacity < 2 or overview_points < 1:
            raise ValueError("capacity must be at least 2 points and overview_points at least 1")
        self.capacity = capacity
        self.overview_points = overview_points
        self.spacing_seconds = spacing_seconds
        self.retain_seconds = retain_seconds
        self.saturation_of = saturation_of
        self.model_extras = model_extras
        self._lock = threading.Lock()
        self._endpoints: dict[Key, _Ring] = {}
        self._models: dict[str, _Ring] = {}
        self._last_prune = -math.inf

    def record(self, state: FleetState) -> None:
        """Append one point per endpoint and model of `state` (thinned to `spacing_seconds`); cheap, no I/O."""
        now = state.time
        models = state.models()
        extras = {m: self.model_extras(m) if self.model_extras is not None else ModelExtras() for m in models}
        with self._lock:
            for s in state.signals:
                key = (s.attribution.model, s.attribution.endpoint)
                ring = self._endpoints.get(key)
                if ring is None:
                    ring = self._endpoints[key] = _Ring(self.capacity, ENDPOINT_SERIES,
                                                        overview_points=self.overview_points)
                ring.last_seen = now
                if now - ring.last_time() >= self.spacing_seconds:
                    ring.append(now, _values(s, self.saturation_of))
            for m in models:
                mring = self._models.get(m)
                if mring is None:
                    mring = self._models[m] = _Ring(self.capacity, MODEL_SERIES, "d")
                mring.last_seen = now
                if now - mring.last_time() >= self.spacing_seconds:
                    mring.append(now, _model_values(state, m, extras[m]))
            if now - self._last_prune >= self.spacing_seconds:
                self._last_prune = now
                for key in [k for k, r in self._endpoints.items() if now - r.last_seen > self.retain_seconds]:
                    del self._endpoints[key]
                for m in [k for k, r in self._models.items() if now - r.last_seen > self.retain_seconds]:
                    del self._models[m]

    def endpoint(self, model: str, endpoint: str) -> Series | None:
        """`endpoint`'s history for `model`, None if it has none."""
        with self._lock:
            ring = self._endpoints.get((model, endpoint))
            if ring is None:
                return None
            return Series(*ring.ordered())

    def endpoint_overview(self, model: str, endpoint: str) -> Series | None:
        """`endpoint`'s history in about `overview_points` values (sparklines): the points themselves while
        there are no more than that, then buckets, each the max of its points."""
        with self._lock:
            ring = self._endpoints.get((model, endpoint))
            if ring is None:
                return None
            if ring.overview is None or ring.size <= self.overview_points:
                return Series(*ring.ordered())
            return Series(*ring.overview.ordered())

    def model(self, model: str) -> Series | None:
        """`model`'s history, None if it has none."""
        with self._lock:
            ring = self._models.get(model)
            if ring is None:
                return None
            return Series(*ring.ordered())

    def __len__(self) -> int:
        return len(self._endpoints)

    def nbytes(self) -> int:
        """The ring buffers' payload in bytes (what `capacity` bounds), for the docs and the benchmark."""
        with self._lock:
            return sum(r.nbytes() for r in [*self._endpoints.values(), *self._models.values()])
