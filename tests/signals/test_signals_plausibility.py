"""Signals from broken pages: implausible counter decreases, non-monotone histograms, impossible gauges.

A page from a broken exporter must never turn into an absurd signal (a request rate of 194k/s from a
counter dipping a little at every scrape, more good requests than requests, an infinite queue): the
tracker refuses what a real server cannot report, counts it, and keeps its invariants by construction.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from llmobs.signals.counters import HistogramResetAdjuster, ResetAdjuster, repair_histogram
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.types import Attribution
from llmobs.sources.normalize import HistogramSnapshot, ModelScrape

INF = math.inf
BOUNDS = (0.1, 0.5, 1.0, INF)


def _page(success: float, *, waiting: float = 1.0, kv: float = 0.5, ttft: tuple[float, ...] = (0, 0, 0, 0),
          ttft_count: float | None = None, hits: float = 0.0, queries: float = 0.0) -> ModelScrape:
    ms = ModelScrape()
    ms.gauges = {"kv_cache_usage": {"": kv}, "requests_running": {"": 1.0}, "requests_waiting": {"": waiting}}
    ms.counters = {"request_success": {"stop": success}, "prefix_cache_hits": {"": hits},
                   "prefix_cache_queries": {"": queries}}
    count = ttft[-1] if ttft_count is None else ttft_count
    ms.histograms = {"ttft": HistogramSnapshot(BOUNDS, ttft, sum=0.1 * count, count=count)}
    return ms


def _tracker() -> ModelEndpointTracker:
    return ModelEndpointTracker(Attribution("m", "e"), window_seconds=60.0, ttft_slo_seconds=0.5)


def test_small_decrease_is_implausible_not_a_reset() -> None:
    a = ResetAdjuster()
    assert [a.adjust(v) for v in (1000, 999, 998, 1005)] == [1000, 1000, 1000, 1007]
    assert (a.resets, a.implausible) == (0, 2)


def test_fall_to_near_zero_is_a_reset() -> None:
    a = ResetAdjuster()
    assert [a.adjust(v) for v in (1000, 3, 10)] == [1000, 1003, 1010]
    assert (a.resets, a.implausible) == (1, 0)


def test_impossible_counter_values_are_dropped() -> None:
    a = ResetAdjuster()
    assert [a.adjust(v) for v in (5, math.nan, -1, INF, 7)] == [5, None, None, None, 7]
    assert a.implausible == 3


def test_counter_dipping_at_every_scrape_gives_no_request_rate() -> None:
    t = _tracker()
    for i in range(20):
        t.observe(_page(478_988 - i), float(i))
    s = t.signals()
    assert s is not None and s.request_rate == 0.0
    assert t.take_implausible() == 19 and t.take_implausible() == 0


def test_non_monotone_histogram_keeps_good_at_most_total() -> None:
    t = _tracker()
    t.observe(_page(0, ttft=(10, 3500, 20, 70)), 0.0)
    t.observe(_page(0, ttft=(10, 3500, 20, 70)), 1.0)
    s = t.signals()
    assert s is not None
    assert s.totals["ttft_slo_good"] <= s.totals["ttft_slo_requests"] == 70
    assert t.take_implausible() == 2


def test_impossible_gauges_are_dropped_and_counted() -> None:
    t = _tracker()
    t.observe(_page(1, waiting=INF, kv=-INF), 0.0)
    t.observe(_page(2, waiting=-3, kv=1.5), 1.0)
    s = t.signals()
    assert s is not None
    assert math.isnan(s.requests_waiting) and math.isnan(s.kv_cache_utilization)
    assert math.isnan(s.kv_cache_utilization_max)
    assert t.take_implausible() == 4


def test_repair_histogram_is_cumulative_and_capped() -> None:
    assert repair_histogram((1.0, 2.0, 2.0), 2.0) == ((1.0, 2.0, 2.0), False)
    assert repair_histogram((5.0, 3.0, 9.0), 6.0) == ((5.0, 5.0, 6.0), True)
    assert repair_histogram((1.0, math.nan), 2.0) == (None, False)
    assert repair_histogram((1.0, 2.0), INF) == (None, False)


def test_histogram_small_count_decrease_is_held() -> None:
    h = HistogramResetAdjuster()
    h.adjust((1.0, INF), (5.0, 10.0), 10.0, 4.0)
    assert h.adjust((1.0, INF), (4.0, 9.0), 9.0, 3.5) == ((5.0, 10.0), 10.0, 4.0)
    assert h.adjust((1.0, INF), (6.0, 12.0), 12.0, 5.0) == ((7.0, 13.0), 13.0, 5.5)
    assert (h.resets, h.implausible) == (0, 1)


# Values a broken page may carry: ordinary counts, decreases, zeros, junk.
_value = st.one_of(st.floats(0, 1e6), st.sampled_from([0.0, -1.0, math.nan, INF, -INF, 1e300]))
_bucket_array = st.lists(_value, min_size=4, max_size=4)
_page_strategy = st.tuples(
    _value, _value, _value, _value, _bucket_array, _value,  # success, hits, queries, waiting, ttft, count
    st.one_of(st.floats(-2, 2), st.sampled_from([math.nan, INF, -INF])),  # kv
    st.floats(0.001, 100.0),  # time step
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_page_strategy, min_size=2, max_size=12))
def test_invariants_hold_for_arbitrary_pages(pages) -> None:  # type: ignore[no-untyped-def]
    t = _tracker()
    now = 0.0
    previous_totals: dict[str, float] = {}
    for success, hits, queries, waiting, buckets, count, kv, step in pages:
        now += step
        t.observe(_page(success, waiting=waiting, kv=kv, ttft=tuple(buckets), ttft_count=count, hits=hits,
                        queries=queries), now)
        s = t.signals()
        if s is None:
            continue
        for rate in (s.request_rate, s.prompt_tokens_rate, s.generation_tokens_rate, s.preemption_rate,
                     *s.finished_rate_by_reason.values()):
            assert math.isfinite(rate) and rate >= 0
        assert math.isnan(s.prefix_cache_hit_ratio) or 0 <= s.prefix_cache_hit_ratio <= 1
        for kv_value in (s.kv_cache_utilization, s.kv_cache_utilization_max):
            assert math.isnan(kv_value) or 0 <= kv_value <= 1
        assert math.isnan(s.requests_waiting) or 0 <= s.requests_waiting < INF
        assert 0 <= s.kv_cache_headroom <= 1
        if "ttft_slo_requests" in s.totals:
            assert 0 <= s.totals["ttft_slo_good"] <= s.totals["ttft_slo_requests"] < INF
        for q in s.ttft.quantiles.values():
            assert math.isnan(q) or 0 <= q <= 1.0
        assert s.ttft.count >= 0
        for name, value in s.totals.items():  # exported as Prometheus counters: never down
            assert math.isfinite(value) and value >= previous_totals.get(name, 0.0)
        previous_totals = dict(s.totals)
