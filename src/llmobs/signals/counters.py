"""Counter-reset handling: turn raw vLLM counters into monotonic totals, refusing implausible pages.

A vLLM restart sets every counter back to zero. Taking `latest - oldest` across that would give a
negative rate, and dropping the sample loses the requests served since the restart. Prometheus'
answer is that any decrease is a restart; ours is narrower, because a broken exporter whose counter
dips a little at every scrape then looks like a restart at every scrape, and each "restart" adds the
whole previous value to the total (a rate of hundreds of thousands per second). So:

- a counter that fell to less than `RESET_FRACTION` of its previous value restarted: everything it
  now shows is new, and an offset keeps what was seen before;
- a smaller decrease is a broken exporter: the sample is not believed (the adjusted total holds its
  previous value, later increases count from the new raw value) and it is counted as implausible;
- NaN, ±Inf, negative or absurdly large values are dropped and counted, never exported.

Histograms get the same rules on their count, and are made consistent first: buckets cumulative
(non-decreasing in `le`) and never above the count, so that "good ≤ total" holds by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from operator import add, le, lt

RESET_FRACTION = 0.5
"""A counter that fell below this fraction of its previous value restarted; a smaller fall is implausible."""


MAX_PLAUSIBLE_COUNT = 1e15
"""Larger counter values are not from a real server (a year at 100k tokens/s is 3e12): dropped."""


def plausible_count(value: float) -> bool:
    """A counter (or histogram count/bucket) value a real server can report."""
    return 0.0 <= value <= MAX_PLAUSIBLE_COUNT  # False for NaN and ±Inf too


def is_reset(raw: float, last_raw: float) -> bool:
    """Whether a fall from `last_raw` to `raw` is a restart (near zero) rather than a broken exporter."""
    return raw < last_raw * RESET_FRACTION


@dataclass(slots=True)
class ResetAdjuster:
    """Monotonic view of one raw counter. `offset` is what the adjusted total adds to the raw value."""

    last_raw: float | None = None
    offset: float = 0.0
    resets: int = 0
    implausible: int = 0
    last_total: float = 0.0  # what adjust() last returned: the floor of the next total (float rounding)

    def adjust(self, raw: float) -> float | None:
        """The monotonic total, or None when `raw` is not a value a counter can have (counted)."""
        if not plausible_count(raw):
            self.implausible += 1
            return None
        last = self.last_raw
        if last is not None and raw < last:
            if is_reset(raw, last):
                self.offset += last
                self.resets += 1
            else:  # hold the total where it was; later increases count from here
                self.offset += last - raw
                self.implausible += 1
        self.last_raw = raw
        # `raw + offset` can land one ulp below the previous total after a hold (offset += last - raw):
        # a total that never decreases is the promise, so the previous total is the floor.
        self.last_total = max(raw + self.offset, self.last_total)
        return self.last_total


def repair_histogram(cumulative: tuple[float, ...], count: float) -> tuple[tuple[float, ...] | None, bool]:
    """Buckets made non-decreasing in `le` (running max, as PromQL does) and capped at `count`.

    Returns the buckets to use and whether a repair was needed (a page a real client library cannot
    produce: prometheus_client derives the count from the buckets); None when a bucket or the count is
    not a value a counter can have (NaN, ±Inf, negative, absurdly large). Sound input comes back as is.
    """
    if not cumulative:
        return (cumulative, False) if plausible_count(count) else (None, False)
    # The usual case, in C: ordered, non-negative, within the count. sorted() of an ordered tuple is one
    # linear pass, twice as fast as comparing neighbours with map(); it lets a NaN through (list equality
    # compares identity first), which the sum catches: NaN anywhere makes it unequal to itself.
    total = sum(cumulative)
    if (cumulative[0] >= 0.0 and cumulative[-1] <= count <= MAX_PLAUSIBLE_COUNT and total == total
            and sorted(cumulative) == list(cumulative)):
        return cumulative, False
    if not plausible_count(count) or min(cumulative) < 0.0 or max(cumulative) > MAX_PLAUSIBLE_COUNT \
            or total != total:
        return None, False
    return tuple(min(v, count) for v in accumulate(cumulative, max)), True


@dataclass(slots=True)
class HistogramResetAdjuster:
    """Monotonic view of one histogram's buckets, count and sum.

    The reset rule applies to the count (a fall below `RESET_FRACTION` of it); any other decrease of the
    count or a bucket is implausible and held. The adjusted buckets are kept non-decreasing in `le` and
    at most the adjusted count whatever the pages say. If the bucket layout changes (vLLM restarted with
    other `--custom-histogram-buckets`), the adjusted history is meaningless and the caller must start
    the window afresh: `adjust` then returns None.
    """

    bounds: tuple[float, ...] | None = None
    last_cumulative: tuple[float, ...] | None = None
    last_count: float = 0.0
    last_sum: float = 0.0
    offsets: list[float] | None = None
    count_offset: float = 0.0
    sum_offset: float = 0.0
    resets: int = 0
    implausible: int = 0
    last_adjusted_count: float = 0.0

    def adjust(
        self, bounds: tuple[float, ...], cumulative: tuple[float, ...], count: float, total: float
    ) -> tuple[tuple[float, ...], float, float] | None:
        """Expects buckets already checked and repaired (`repair_histogram`)."""
        if self.bounds != bounds:
            fresh = self.bounds is None
            self.bounds = bounds
            self.offsets = [0.0] * len(bounds)
            self.count_offset = self.sum_offset = 0.0
            self.last_adjusted_count = count
            self.last_cumulative, self.last_count, self.last_sum = cumulative, count, total
            return (cumulative, count, total) if fresh else None
        assert self.offsets is not None and self.last_cumulative is not None
        # (same bounds, so same lengths: map() over the pairs, in C)
        if count < self.last_count and is_reset(count, self.last_count):
            self.offsets = [o + p for o, p in zip(self.offsets, self.last_cumulative, strict=True)]
            self.count_offset += self.last_count
            self.sum_offset += self.last_sum
            self.resets += 1
        elif count < self.last_count or any(map(lt, cumulative, self.last_cumulative)):
            # broken page: every part that went down holds its adjusted value
            self.offsets = [o + max(0.0, p - c) for o, p, c in zip(self.offsets, self.last_cumulative, cumulative,
                                                                     strict=True)]
            self.count_offset += max(0.0, self.last_count - count)
            self.sum_offset += max(0.0, self.last_sum - total) if math.isfinite(total - self.last_sum) else 0.0
            self.implausible += 1
        self.last_cumulative, self.last_count, self.last_sum = cumulative, count, total
        # the previous adjusted count is a floor: `count + count_offset` may round one ulp below it after a hold
        adjusted_count = self.last_adjusted_count = max(count + self.count_offset, self.last_adjusted_count)
        if not any(self.offsets):  # never reset (or only at zero counts): the page's own tuple, not a copy
            return cumulative, adjusted_count, total + self.sum_offset
        adjusted = tuple(map(add, cumulative, self.offsets))
        if not (all(map(le, adjusted, adjusted[1:])) and adjusted[-1] <= adjusted_count):
            # Offsets of held buckets can break the order: restore it, and keep the offsets matching, so
            # the next page's increases add onto exactly what was returned (still never decreasing).
            adjusted = tuple(min(v, adjusted_count) for v in accumulate(adjusted, max))
            self.offsets = [a - c for a, c in zip(adjusted, cumulative, strict=True)]
        return adjusted, adjusted_count, total + self.sum_offset
