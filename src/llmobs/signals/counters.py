"""Counter-reset handling: turn raw vLLM counters into monotonic totals.

A vLLM restart sets every counter back to zero. Taking `latest - oldest` across that would give a
negative rate, and dropping the sample loses the requests served since the restart. Prometheus'
answer (and ours): when a value decreases, the counter restarted from zero, so everything it now
shows is new; keep an offset of what was seen before the reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import add, lt


@dataclass(slots=True)
class ResetAdjuster:
    """Monotonic view of one raw counter. `offset` accumulates the value lost at each reset."""

    last_raw: float | None = None
    offset: float = 0.0
    resets: int = 0

    def adjust(self, raw: float) -> float:
        if self.last_raw is not None and raw < self.last_raw:
            self.offset += self.last_raw
            self.resets += 1
        self.last_raw = raw
        return raw + self.offset


@dataclass(slots=True)
class HistogramResetAdjuster:
    """Monotonic view of one histogram's buckets, count and sum.

    A reset is detected on the count (or any bucket) going down. If the bucket layout changes (vLLM
    restarted with other `--custom-histogram-buckets`), the adjusted history is meaningless and the
    caller must start the window afresh: `adjust` then returns None.
    """

    bounds: tuple[float, ...] | None = None
    last_cumulative: tuple[float, ...] | None = None
    last_count: float = 0.0
    last_sum: float = 0.0
    offsets: list[float] | None = None
    count_offset: float = 0.0
    sum_offset: float = 0.0
    resets: int = 0

    def adjust(
        self, bounds: tuple[float, ...], cumulative: tuple[float, ...], count: float, total: float
    ) -> tuple[tuple[float, ...], float, float] | None:
        if self.bounds != bounds:
            fresh = self.bounds is None
            self.bounds = bounds
            self.offsets = [0.0] * len(bounds)
            self.count_offset = self.sum_offset = 0.0
            self.last_cumulative, self.last_count, self.last_sum = cumulative, count, total
            return (cumulative, count, total) if fresh else None
        assert self.offsets is not None and self.last_cumulative is not None
        # (same bounds, so same lengths: map() over the pairs, in C)
        if count < self.last_count or any(map(lt, cumulative, self.last_cumulative)):
            self.offsets = [o + p for o, p in zip(self.offsets, self.last_cumulative, strict=True)]
            self.count_offset += self.last_count
            self.sum_offset += self.last_sum
            self.resets += 1
        self.last_cumulative, self.last_count, self.last_sum = cumulative, count, total
        if not any(self.offsets):  # never reset (or only at zero counts): the page's own tuple, not a copy
            return cumulative, count + self.count_offset, total + self.sum_offset
        adjusted = tuple(map(add, cumulative, self.offsets))
        return adjusted, count + self.count_offset, total + self.sum_offset
