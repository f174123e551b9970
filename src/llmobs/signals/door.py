"""Door signals: per model, what arrives at a router or proxy, what it refuses and holds, from successive door
pages. Pure: the caller says when each page was read.

Why the door: a model scaled to zero has no replica and so no vLLM page; its queue depth reads 0 and nothing
would ever wake it. The door sees the requests. Two rules make the first request count at once:

- a door series appears on the page only once something happened (the Rust router and prometheus_client both
  create a labelled counter on its first increment), so a model seen for the first time on a door that was read
  before had zero at that earlier read: the tracker starts it from 0 there, and the first request is a rate on
  the first page that shows it, not one page later;
- on a door's first page nothing is known of before, and its counters (maybe weeks old) give no rate yet.

Counters that go back (the door restarted) count on from their last value (`ResetAdjuster`), as for vLLM.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from llmobs.signals.counters import ResetAdjuster
from llmobs.signals.histogram import histogram_quantiles
from llmobs.signals.types import QUANTILES, Distribution
from llmobs.sources.door import DoorModelReading, DoorReading, DoorTarget


@dataclass(frozen=True, slots=True)
class DoorSignals:
    """One model at one door over the signal window. `model` is the replicas' name (after the door's
    `model_map`), so these join the replica signals on `model`. `pending` is None and `latency` None where the
    door does not export them."""

    model: str
    door: str
    kind: str
    window_seconds: float
    request_rate: float  # requests/s the door answered (served or refused)
    rejected_rate: float  # requests/s it refused for want of a backend
    pending: float | None  # requests it holds now without a backend's answer
    latency: Distribution | None  # door-side request latency over the window
    requests_total: float  # reset-adjusted totals behind the rates
    rejected_total: float


@dataclass(slots=True)
class _Point:
    time: float
    arrivals: float
    rejected: float
    bounds: tuple[float, ...] | None
    buckets: tuple[float, ...] | None
    latency_sum: float


class DoorModelTracker:
    """One model at one door: rates and the latency distribution over `window_seconds` of pages."""

    def __init__(self, model: str, door: str, kind: str, window_seconds: float) -> None:
        self.model, self.door, self.kind = model, door, kind
        self.window_seconds = window_seconds
        self._arrivals = ResetAdjuster()
        self._rejected = ResetAdjuster()
        self._points: deque[_Point] = deque()
        self._pending: float | None = None
        self.implausible = 0

    def start_from_zero(self, at: float) -> None:
        """The model had no series on the door's page read at `at`: its counters were 0 then."""
        self._arrivals.adjust(0.0)
        self._rejected.adjust(0.0)
        self._points.append(_Point(at, 0.0, 0.0, None, None, 0.0))

    def observe(self, reading: DoorModelReading, now: float) -> None:
        if self._points and now <= self._points[-1].time:
            return
        arrivals = self._total(self._arrivals, reading.arrivals)
        rejected = self._total(self._rejected, reading.rejected)
        pending = reading.pending
        self._pending = pending if pending is not None and math.isfinite(pending) and pending >= 0 else None
        h = reading.latency
        bounds = buckets = None
        latency_sum = 0.0
        if h is not None and len(h.bounds) >= 2 and math.isinf(h.bounds[-1]):
            bounds, buckets, latency_sum = h.bounds, h.cumulative, h.sum
        self._points.append(_Point(now, arrivals, rejected, bounds, buckets, latency_sum))
        while len(self._points) > 2 and self._points[1].time <= now - self.window_seconds:
            self._points.popleft()

    def _total(self, adjuster: ResetAdjuster, raw: float | None) -> float:
        if raw is None:
            return adjuster.last_total
        before = adjuster.implausible
        total = adjuster.adjust(raw)
        self.implausible += adjuster.implausible - before
        return adjuster.last_total if total is None else total

    def signals(self) -> DoorSignals | None:
        if not self._points:
            return None
        last = self._points[-1]
        first = self._points[0]
        span = last.time - first.time
        request_rate = rejected_rate = 0.0
        if span > 0:
            request_rate = max(0.0, last.arrivals - first.arrivals) / span
            rejected_rate = max(0.0, last.rejected - first.rejected) / span
        return DoorSignals(self.model, self.door, self.kind, self.window_seconds, request_rate, rejected_rate,
                           self._pending, self._latency(first, last), last.arrivals, last.rejected)

    @staticmethod
    def _latency(first: _Point, last: _Point) -> Distribution | None:
        if last.bounds is None or last.buckets is None:
            return None
        if first.bounds == last.bounds and first.buckets is not None and last.buckets[-1] >= first.buckets[-1]:
            cumulative = [b - a for a, b in zip(first.buckets, last.buckets, strict=True)]
            total_sum = last.latency_sum - first.latency_sum
        elif first.bounds is None and first.buckets is None and first.arrivals == 0.0:
            cumulative, total_sum = list(last.buckets), last.latency_sum  # started from zero
        else:
            return Distribution({q: math.nan for q in QUANTILES}, math.nan, 0.0)
        count = cumulative[-1]
        values = histogram_quantiles(QUANTILES, last.bounds, cumulative)
        mean = total_sum / count if count > 0 else math.nan
        return Distribution(dict(zip(QUANTILES, values, strict=True)), mean, count)


class DoorTracker:
    """Every model of one door, from its successive readings; `target.model_map` renames them."""

    def __init__(self, target: DoorTarget, window_seconds: float = 60.0) -> None:
        if not (math.isfinite(window_seconds) and window_seconds > 0):
            raise ValueError(f"window_seconds must be a positive number, not {window_seconds!r}")
        self.target = target
        self.window_seconds = window_seconds
        self._models: dict[str, DoorModelTracker] = {}
        self._last_read: float | None = None

    @property
    def implausible(self) -> int:
        return sum(t.implausible for t in self._models.values())

    def observe(self, reading: DoorReading, now: float) -> list[DoorSignals]:
        """Feed the reading of the page read at `now`; the signals of every model on it, sorted by model.

        Door-side names that map to one replica name (two public aliases of one model) are summed first."""
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, not {now!r}")
        merged: dict[str, DoorModelReading] = {}
        for door_model, r in reading.models.items():
            model = self.target.replica_model(door_model)
            merged[model] = _merge(merged[model], r) if model in merged else r
        for gone in self._models.keys() - merged.keys():
            del self._models[gone]
        out = []
        for model in sorted(merged):
            tracker = self._models.get(model)
            if tracker is None:
                tracker = self._models[model] = DoorModelTracker(model, self.target.name, self.target.kind,
                                                                 self.window_seconds)
                if self._last_read is not None and self._last_read < now:
                    tracker.start_from_zero(self._last_read)
            tracker.observe(merged[model], now)
            s = tracker.signals()
            if s is not None:
                out.append(s)
        self._last_read = now
        return out


def _add(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


def _merge(a: DoorModelReading, b: DoorModelReading) -> DoorModelReading:
    latency = a.latency if b.latency is None else b.latency if a.latency is None else (
        a.latency if a.latency.bounds != b.latency.bounds else type(a.latency)(
            a.latency.bounds, tuple(x + y for x, y in zip(a.latency.cumulative, b.latency.cumulative, strict=True)),
            a.latency.count + b.latency.count, a.latency.sum + b.latency.sum))
    return DoorModelReading(_add(a.arrivals, b.arrivals), _add(a.rejected, b.rejected), _add(a.pending, b.pending),
                            latency)
