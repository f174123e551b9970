"""Replica cold starts: how long a new replica took from its start to serving, measured, not configured.

Why: the forecast must look at least one cold start ahead, and that time (scheduling, image pull, weights
load, CUDA graph capture) differs by model and cluster by an order of magnitude. Until now it was a
configured guess. Each time a target comes up with a process llmobs has not seen before, the pipeline
hands this module the instants it knows (the pod's creation and Ready transition from the Kubernetes
watch, the process start from the page's standard `process_start_time_seconds`, the first good scrape),
and this module turns them into observations, a histogram per model, and the horizon to forecast at.

Pure: no clock, no I/O; the caller passes every instant (Unix seconds).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "COLD_START_BUCKETS",
    "ColdStart",
    "ColdStartHistogram",
    "ColdStartRecorder",
    "ColdStartSummary",
    "cold_starts",
]

COLD_START_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600)
"""Upper bounds (s): from a vLLM waking from sleep mode (about a second) to a large model's image pull."""

START_POD_CREATED = "pod_created"
START_PROCESS = "process_start"
STAGE_READY = "ready"
STAGE_FIRST_SCRAPE = "first_scrape"

# Clocks of the node, the API server and llmobs differ a little; a start up to this far after the instant
# it should precede is taken as zero, anything worse is not a measurement.
CLOCK_SKEW_SECONDS = 5.0
MAX_COLD_START_SECONDS = 6 * 3600.0

REJECT_SKEW = "clock_skew"
REJECT_TOO_LONG = "too_long"
REJECT_NOT_FINITE = "not_finite"


@dataclass(frozen=True, slots=True)
class ColdStart:
    """One measured span of one replica's start: from `start` (pod_created | process_start) to `stage`
    (ready | first_scrape)."""

    model: str
    endpoint: str
    start: str
    stage: str
    seconds: float


def _span(begin: float | None, end: float | None) -> float | str | None:
    """end − begin; None when either is unknown; a rejection reason when it cannot be a cold start."""
    if begin is None or end is None:
        return None
    if not (math.isfinite(begin) and math.isfinite(end)):
        return REJECT_NOT_FINITE
    seconds = end - begin
    if seconds < -CLOCK_SKEW_SECONDS:
        return REJECT_SKEW
    if seconds > MAX_COLD_START_SECONDS:
        return REJECT_TOO_LONG
    return max(0.0, seconds)


def cold_starts(
    model: str,
    endpoint: str,
    *,
    first_scrape: float,
    watching_since: float,
    process_start: float | None = None,
    pod_created: float | None = None,
    ready_at: float | None = None,
) -> tuple[list[ColdStart], list[str]]:
    """The spans of a replica that just came up, and the reasons any span was rejected.

    A start before `watching_since` (llmobs itself started later, or the pod predates it) is not a cold
    start llmobs saw: it yields nothing and is not an error. An instant that is not a number, a span that
    runs backwards by more than the clock skew, or one longer than six hours is rejected with its reason
    (the caller counts them) instead of skewing the horizon."""
    spans: list[ColdStart] = []
    rejected: list[str] = []
    for start_kind, begin, stage, end in (
        (START_POD_CREATED, pod_created, STAGE_READY, ready_at),
        (START_POD_CREATED, pod_created, STAGE_FIRST_SCRAPE, first_scrape),
        (START_PROCESS, process_start, STAGE_FIRST_SCRAPE, first_scrape),
    ):
        if begin is not None and math.isfinite(begin) and begin < watching_since - CLOCK_SKEW_SECONDS:
            continue
        span = _span(begin, end)
        if span is None:
            continue
        if isinstance(span, str):
            rejected.append(span)
            continue
        spans.append(ColdStart(model, endpoint, start_kind, stage, span))
    return spans, rejected


@dataclass(frozen=True, slots=True)
class ColdStartHistogram:
    """Cumulative counts at `COLD_START_BUCKETS` (then +Inf), their sum and count: one Prometheus histogram."""

    start: str
    stage: str
    bucket_counts: tuple[int, ...]
    count: int
    sum: float


@dataclass(frozen=True, slots=True)
class ColdStartSummary:
    """One model's cold starts as the state publishes them."""

    model: str
    histograms: tuple[ColdStartHistogram, ...]
    recent_seconds: tuple[float, ...]  # the last spans to first scrape, from the earliest start known
    rejected: Mapping[str, int]

    @property
    def horizon_seconds(self) -> float | None:
        """The 90th percentile (nearest rank) of the recent cold starts: how far ahead a forecast must look so
        that a replica asked for now serves before the demand it was asked for. None before the first one."""
        if not self.recent_seconds:
            return None
        ordered = sorted(self.recent_seconds)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


class _Counts:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * len(COLD_START_BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        for i in range(bisect.bisect_left(COLD_START_BUCKETS, seconds), len(COLD_START_BUCKETS)):
            self.buckets[i] += 1
        self.count += 1
        self.sum += seconds


class ColdStartRecorder:
    """Accumulates cold starts per model; `summaries()` is an immutable view, rebuilt only after a change
    (cold starts are rare, the state is published every scrape cycle)."""

    def __init__(self, recent: int = 20, max_models: int = 1000) -> None:
        self._max_models = max_models  # models come and go (a fleet's model budget is per moment, not forever)
        self._counts: dict[tuple[str, str, str], _Counts] = {}
        self._recent: dict[str, deque[float]] = {}
        self._rejected: dict[str, dict[str, int]] = {}
        self._recent_len = recent
        self._view: Mapping[str, ColdStartSummary] | None = None
        self._order: OrderedDict[str, None] = OrderedDict()

    def record(self, model: str, spans: list[ColdStart], rejected: list[str]) -> None:
        if not spans and not rejected:
            return
        self._make_room(model)
        for span in spans:
            self._counts.setdefault((model, span.start, span.stage), _Counts()).observe(span.seconds)
        to_scrape = {s.start: s.seconds for s in spans if s.stage == STAGE_FIRST_SCRAPE}
        earliest = to_scrape.get(START_POD_CREATED, to_scrape.get(START_PROCESS))
        if earliest is not None:
            self._recent.setdefault(model, deque(maxlen=self._recent_len)).append(earliest)
        for reason in rejected:
            by_reason = self._rejected.setdefault(model, {})
            by_reason[reason] = by_reason.get(reason, 0) + 1
        self._view = None

    def _make_room(self, model: str) -> None:
        """Keep at most `max_models` models: a new one evicts the model whose last cold start is oldest."""
        order = self._order
        if model in order:
            order.move_to_end(model)
            return
        order[model] = None
        while len(order) > self._max_models:
            gone, _ = order.popitem(last=False)
            self._recent.pop(gone, None)
            self._rejected.pop(gone, None)
            for key in [k for k in self._counts if k[0] == gone]:
                del self._counts[key]

    def summaries(self) -> Mapping[str, ColdStartSummary]:
        if self._view is None:
            models = sorted({m for m, _, _ in self._counts} | set(self._rejected))
            self._view = MappingProxyType({
                m: ColdStartSummary(
                    model=m,
                    histograms=tuple(
                        ColdStartHistogram(start, stage, tuple(c.buckets), c.count, c.sum)
                        for (model, start, stage), c in sorted(self._counts.items()) if model == m
                    ),
                    recent_seconds=tuple(self._recent.get(m, ())),
                    rejected=dict(self._rejected.get(m, {})),
                )
                for m in models
            })
        return self._view
