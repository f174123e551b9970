"""Quantiles from cumulative histogram buckets, with the semantics of PromQL's `histogram_quantile`.

Matching PromQL matters: an SRE comparing llmobs' p99 with a Grafana panel built on
`histogram_quantile(0.99, rate(..._bucket[1m]))` must see the same number.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """Estimate quantile `q` from cumulative counts at upper `bounds` (ascending, last = +Inf).

    As PromQL: NaN when there are no observations; linear interpolation inside the bucket; the lower
    edge of the first bucket is 0 when its upper bound is positive; a rank that lands in the +Inf
    bucket returns the largest finite bound; q < 0 → -Inf, q > 1 → +Inf.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan
    total = cumulative[-1]
    if not total > 0:
        return math.nan
    # PromQL repairs non-monotonic buckets (a scrape can race observations) by carrying the max forward.
    counts = list(cumulative)
    for i in range(1, len(counts)):
        if counts[i] < counts[i - 1]:
            counts[i] = counts[i - 1]
    rank = q * total
    index = 0
    while index < len(counts) - 1 and counts[index] < rank:
        index += 1
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    lower = 0.0 if index == 0 else bounds[index - 1]
    below = 0.0 if index == 0 else counts[index - 1]
    upper = bounds[index]
    in_bucket = counts[index] - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * ((rank - below) / in_bucket)


def histogram_quantiles(qs: Sequence[float], bounds: Sequence[float], cumulative: Sequence[float]) -> list[float]:
    """`[histogram_quantile(q, bounds, cumulative) for q in qs]` with the buckets checked and repaired once
    (the tracker asks for three quantiles of every distribution of every endpoint each cycle)."""
    if len(bounds) < 2 or not math.isinf(bounds[-1]) or not cumulative[-1] > 0 or any(map(math.isnan, qs)):
        return [histogram_quantile(q, bounds, cumulative) for q in qs]
    counts = list(cumulative)
    s = sum(counts)
    # The usual case, sound ordered buckets, is checked in C (sorted() of an ordered list is one pass) and then
    # searched by bisection; NaN (s != s) or disorder takes PromQL's repair and the linear scan.
    ordered = s == s and sorted(counts) == counts
    if not ordered:
        for i in range(1, len(counts)):
            if counts[i] < counts[i - 1]:
                counts[i] = counts[i - 1]
    total = cumulative[-1]
    last = len(counts) - 1
    out = []
    for q in qs:
        if q < 0:
            out.append(-math.inf)
            continue
        if q > 1:
            out.append(math.inf)
            continue
        rank = q * total
        if ordered:  # the first bucket whose count reaches the rank, as the scan below finds it
            index = min(bisect_left(counts, rank), last)
        else:
            index = 0
            while index < last and counts[index] < rank:
                index += 1
        if index == len(bounds) - 1:
            out.append(bounds[-2])
            continue
        if index == 0 and bounds[0] <= 0:
            out.append(bounds[0])
            continue
        lower = 0.0 if index == 0 else bounds[index - 1]
        below = 0.0 if index == 0 else counts[index - 1]
        upper = bounds[index]
        in_bucket = counts[index] - below
        out.append(upper if in_bucket <= 0 else lower + (upper - lower) * ((rank - below) / in_bucket))
    return out
