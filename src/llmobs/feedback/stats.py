"""In-memory aggregates behind the feedback metrics: durable totals and windowed buckets.

The store updates these only after a commit, so a scrape never counts an event that could still be lost.
Scrapes read them under a lock and never touch SQLite: a slow disk cannot stall `/metrics` (the KEDA
scaler lesson in STYLE.md: answer from precomputed state).

Label cardinality is bounded here, once: apps outside the allow-list and models past the model limit
become `other` before anything is keyed by them.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from llmobs.feedback.config import FeedbackConfig

OTHER = "other"
TTFT_CLASSES = ("above_slo", "below_slo")


@dataclass(slots=True)
class WindowCounts:
    """Counts for one model in one bucket (or summed over a window)."""

    total: int = 0
    negative: int = 0
    # ttft class -> [total, negative]; events without a client TTFT are in neither class.
    by_ttft: dict[str, list[int]] = field(default_factory=lambda: {c: [0, 0] for c in TTFT_CLASSES})

    def add(self, other: WindowCounts) -> None:
        self.total += other.total
        self.negative += other.negative
        for c in TTFT_CLASSES:
            self.by_ttft[c][0] += other.by_ttft[c][0]
            self.by_ttft[c][1] += other.by_ttft[c][1]


@dataclass(frozen=True, slots=True)
class Observation:
    """What the aggregates need from one committed event."""

    model: str
    app: str
    label: str
    ttft_ms: float | None
    received_at: float


def ttft_class(ttft_ms: float | None, slo_seconds: float) -> str | None:
    """`above_slo` when the client saw a TTFT over the SLO, `below_slo` at or under it, None if unknown."""
    if ttft_ms is None:
        return None
    return "above_slo" if ttft_ms > slo_seconds * 1000.0 else "below_slo"


class FeedbackStats:
    """Thread-safe counters and window buckets, keyed by bounded labels."""

    def __init__(self, config: FeedbackConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._apps = set(config.allowed_apps)
        self._allowed_models = set(config.allowed_models) if config.allowed_models is not None else None
        self._known_models: list[str] = []
        self._known_set: set[str] = set()
        self.totals: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[str, dict[int, WindowCounts]] = defaultdict(dict)
        self.rejected: dict[str, int] = defaultdict(int)
        self.pruned: dict[str, int] = defaultdict(int)
        self.replays: int = 0
        self.store_bytes: int = 0
        self.stored_events: int = 0

    @property
    def config(self) -> FeedbackConfig:
        """The configuration the label policy and windows follow."""
        return self._config

    # --- label policy -------------------------------------------------------------------------
    def app_label(self, app: str) -> str:
        """The allow-listed app name, or `other`."""
        return app if app in self._apps else OTHER

    def model_label(self, model: str) -> str:
        """The model name while the label budget lasts (or it is allow-listed), else `other`.

        Caller holds the lock, or is single-threaded start-up.
        """
        if self._allowed_models is not None:
            return model if model in self._allowed_models else OTHER
        if model in self._known_set:
            return model
        if len(self._known_models) < self._config.max_models:
            self._known_models.append(model)
            self._known_set.add(model)
            return model
        return OTHER

    def labelled_models(self) -> list[str]:
        """Models that have their own label now (for coverage look-ups)."""
        with self._lock:
            if self._allowed_models is not None:
                return sorted(self._allowed_models)
            return list(self._known_models)

    # --- updates ------------------------------------------------------------------------------
    def load_totals(self, rows: Iterable[tuple[str, str, str, int]]) -> None:
        """Seed counters from the store's durable totals, rows in first-seen order."""
        with self._lock:
            for model, app, label, count in rows:
                self.totals[(self.model_label(model), self.app_label(app), label)] += count

    def record(self, observations: Iterable[Observation], *, totals: bool = True) -> None:
        """Count committed events in the window buckets and, unless replaying start-up, the totals."""
        width = self._config.bucket_seconds
        slo = self._config.ttft_slo_seconds
        with self._lock:
            for ob in observations:
                model = self.model_label(ob.model)
                if totals:
                    self.totals[(model, self.app_label(ob.app), ob.label)] += 1
                idx = math.floor(ob.received_at / width)
                bucket = self._buckets[model].get(idx)
                if bucket is None:
                    bucket = self._buckets[model][idx] = WindowCounts()
                negative = ob.label == "negative"
                bucket.total += 1
                bucket.negative += negative
                cls = ttft_class(ob.ttft_ms, slo)
                if cls is not None:
                    bucket.by_ttft[cls][0] += 1
                    bucket.by_ttft[cls][1] += negative

    def add_rejected(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.rejected[reason] += n

    def add_pruned(self, reason: str, n: int) -> None:
        with self._lock:
            self.pruned[reason] += n

    def add_replays(self, n: int) -> None:
        with self._lock:
            self.replays += n

    def set_store_size(self, nbytes: int, events: int) -> None:
        with self._lock:
            self.store_bytes = nbytes
            self.stored_events = events

    # --- reads --------------------------------------------------------------------------------
    def window(self, now: float, since: float | None = None) -> dict[str, WindowCounts]:
        """Per-model counts over [max(now - window, since), now], bucket-granular; drops old buckets."""
        width = self._config.bucket_seconds
        start = now - self._config.window_seconds
        if since is not None:
            start = max(start, since)
        first = math.floor(start / width)
        keep_from = math.floor((now - self._config.window_seconds) / width)
        out: dict[str, WindowCounts] = {}
        with self._lock:
            for model, buckets in self._buckets.items():
                for idx in [i for i in buckets if i < keep_from]:
                    del buckets[idx]
                acc = WindowCounts()
                for idx, counts in buckets.items():
                    if idx >= first:
                        acc.add(counts)
                out[model] = acc
        return out

    def snapshot(
        self,
    ) -> tuple[dict[tuple[str, str, str], int], dict[str, int], dict[str, int], int, int, int]:
        """Copies of the counters, taken atomically, for one scrape."""
        with self._lock:
            return (
                dict(self.totals),
                dict(self.rejected),
                dict(self.pruned),
                self.replays,
                self.store_bytes,
                self.stored_events,
            )
