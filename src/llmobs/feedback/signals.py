"""Prometheus collector for the `llmobs_feedback_*` families.

A custom collector (client_python's one-method protocol) rather than live Counter objects, because the
values come from the store's aggregates: counters must start from the durable totals after a restart,
and ratios are computed over the window at scrape time. It is registered on a registry passed in, never
on the global default. Names, help and labels are the metric catalogue's (llmobs.metrics_catalogue).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from llmobs.feedback.stats import OTHER, TTFT_CLASSES, FeedbackStats
from llmobs.metric_families import family

ServedRequests = Callable[[str], float]
"""`served_requests(model)`: reset-adjusted count of requests vLLM served for the model."""

REJECT_REASONS = (
    "unauthenticated",
    "forbidden",
    "malformed_json",
    "validation",
    "too_large",
    "batch_too_large",
    "clock_skew",
    "store_error",
)
"""Every rejection reason; all are exported (as 0 until seen) so alerts need no `absent()`."""


def _ratio(num: float, den: float) -> float:
    """num / den, NaN for an empty window (a gap on a dashboard, not a made-up zero)."""
    return num / den if den > 0 else math.nan


class CoverageTracker:
    """Samples `served_requests` so coverage can be a ratio over the same window as the feedback.

    Keeps (time, count) pairs per model; coverage = feedback events since the oldest sample inside
    the window ÷ requests served since that sample.
    """

    def __init__(self, served: ServedRequests, window_seconds: float) -> None:
        self._served = served
        self._window = window_seconds
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def sample(self, models: list[str], now: float) -> dict[str, tuple[float, float, float]]:
        """Record the current count for each model; return model → (since, served_then, served_now)."""
        out: dict[str, tuple[float, float, float]] = {}
        with self._lock:
            for model in models:
                try:
                    value = float(self._served(model))
                except Exception:  # a broken source must not break the scrape
                    continue
                if not math.isfinite(value):
                    continue
                samples = self._samples.setdefault(model, deque())
                if samples and value < samples[-1][1]:  # the source reset after all: new baseline
                    samples.clear()
                # One sample per 1/120 of the window bounds memory however often scrapes come.
                if not samples or now - samples[-1][0] >= self._window / 120:
                    samples.append((now, value))
                while len(samples) > 1 and samples[0][0] < now - self._window:
                    samples.popleft()
                since, then = samples[0]
                out[model] = (since, then, value)
        return out


class FeedbackCollector(Collector):
    """Yields every feedback family from the aggregates (and the served-request source, if any)."""

    def __init__(
        self,
        stats: FeedbackStats,
        served_requests: ServedRequests | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stats = stats
        self._clock = clock
        window = stats.config.window_seconds
        self._coverage = CoverageTracker(served_requests, window) if served_requests is not None else None

    def register(self, registry: CollectorRegistry) -> None:
        """Register on the given registry (client_python checks for name clashes there)."""
        registry.register(self)

    def sample_coverage(self) -> None:
        """Take a served-requests sample now (the server calls this periodically between scrapes)."""
        if self._coverage is not None:
            self._coverage.sample(self._stats.labelled_models(), self._clock())

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        totals, rejected, pruned, replays, store_bytes, stored = self._stats.snapshot()
        window = self._stats.window(now)
        window_s = self._stats.config.window_seconds

        total = family("llmobs_feedback_total")
        for (model, app, rating), count in sorted(totals.items()):
            total.add_metric([model, app, rating], count)
        yield total

        events = family("llmobs_feedback_window_events")
        negatives = family("llmobs_feedback_window_negative_events")
        ttft_events = family("llmobs_feedback_window_ttft_events")
        ttft_negatives = family("llmobs_feedback_window_ttft_negative_events")
        neg = family("llmobs_feedback_negative_ratio")
        by_ttft = family("llmobs_feedback_negative_ratio_by_ttft")
        for model, counts in sorted(window.items()):
            events.add_metric([model], counts.total)
            negatives.add_metric([model], counts.negative)
            neg.add_metric([model], _ratio(counts.negative, counts.total))
            for cls in TTFT_CLASSES:
                n, k = counts.by_ttft[cls]
                ttft_events.add_metric([model, cls], n)
                ttft_negatives.add_metric([model, cls], k)
                by_ttft.add_metric([model, cls], _ratio(k, n))
        yield from (events, negatives, ttft_events, ttft_negatives, neg, by_ttft)

        if self._coverage is not None:
            cov = family("llmobs_feedback_coverage_ratio")
            for model, (since, then, served_now) in sorted(
                self._coverage.sample([m for m in self._stats.labelled_models() if m != OTHER], now).items()
            ):
                got = self._stats.window(now, since=since).get(model)
                cov.add_metric([model], _ratio(got.total if got else 0, served_now - then))
            yield cov

        rej = family("llmobs_feedback_rejected_total")
        for reason in sorted(set(REJECT_REASONS) | set(rejected)):
            rej.add_metric([reason], rejected.get(reason, 0))
        yield rej

        pr = family("llmobs_feedback_pruned_total")
        for reason in ("retention", "disk_cap"):
            pr.add_metric([reason], pruned.get(reason, 0))
        yield pr

        yield family("llmobs_feedback_replays_total", replays)
        yield family("llmobs_feedback_store_bytes", store_bytes)
        yield family("llmobs_feedback_store_events", stored)
        yield family("llmobs_feedback_window_seconds", window_s)
