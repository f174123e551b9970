"""Signals: PromQL-equivalent quantiles, reset-safe rates, window behaviour."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmobs.signals.counters import HistogramResetAdjuster, ResetAdjuster
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.histogram import histogram_quantile
from llmobs.signals.types import Attribution
from llmobs.sources.normalize import HistogramSnapshot, ModelScrape

INF = math.inf


class TestHistogramQuantile:
    bounds = (0.1, 0.5, 1.0, INF)

    def test_interpolates_inside_bucket_like_promql(self) -> None:
        # 10 obs: 2 ≤0.1, 6 in (0.1,0.5], 2 in (0.5,1]. p50: rank 5 → 0.1 + 0.4*(3/6) = 0.3
        assert histogram_quantile(0.5, self.bounds, (2, 8, 10, 10)) == pytest.approx(0.3)
        # p90: rank 9 → 0.5 + 0.5*(1/2) = 0.75
        assert histogram_quantile(0.9, self.bounds, (2, 8, 10, 10)) == pytest.approx(0.75)

    def test_first_bucket_lower_edge_is_zero(self) -> None:
        assert histogram_quantile(0.5, self.bounds, (10, 10, 10, 10)) == pytest.approx(0.05)

    def test_rank_in_inf_bucket_returns_largest_finite_bound(self) -> None:
        assert histogram_quantile(0.99, self.bounds, (0, 0, 1, 10)) == 1.0

    def test_empty_window_is_nan_not_zero(self) -> None:
        assert math.isnan(histogram_quantile(0.5, self.bounds, (0, 0, 0, 0)))

    def test_out_of_range_q(self) -> None:
        assert histogram_quantile(-0.1, self.bounds, (1, 1, 1, 1)) == -INF
        assert histogram_quantile(1.1, self.bounds, (1, 1, 1, 1)) == INF

    def test_non_monotonic_buckets_are_repaired(self) -> None:
        assert histogram_quantile(0.5, self.bounds, (5, 4, 10, 10)) == pytest.approx(0.1)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.integers(0, 50), min_size=4, max_size=4), st.floats(0, 1))
    def test_result_stays_within_bounds(self, counts: list[int], q: float) -> None:
        cumulative = tuple(float(sum(counts[: i + 1])) for i in range(4))
        v = histogram_quantile(q, self.bounds, cumulative)
        if cumulative[-1] == 0:
            assert math.isnan(v)
        else:
            assert 0.0 <= v <= 1.0


def test_counter_reset_never_goes_backwards() -> None:
    a = ResetAdjuster()
    values = [a.adjust(v) for v in (10, 15, 3, 8, 0, 2)]
    assert values == [10, 15, 18, 23, 23, 25]
    assert a.resets == 2


def test_histogram_reset_and_layout_change() -> None:
    h = HistogramResetAdjuster()
    assert h.adjust((1.0, INF), (2, 4), 4, 3.0) == ((2, 4), 4, 3.0)
    assert h.adjust((1.0, INF), (1, 1), 1, 0.5) == ((3, 5), 5, 3.5)  # restart: counts add on
    assert h.adjust((2.0, INF), (1, 1), 1, 0.5) is None  # new buckets: history unusable


def _scrape(success: float, prompt: float, ttft_cum: tuple[float, ...], kv: float = 0.5,
            bounds: tuple[float, ...] = (0.1, 1.0, INF), waiting: float = 0.0) -> ModelScrape:
    ms = ModelScrape()
    ms.gauges = {"kv_cache_usage": {"": kv}, "requests_running": {"": 2.0}, "requests_waiting": {"": waiting}}
    ms.counters = {"request_success": {"stop": success}, "prompt_tokens": {"": prompt},
                   "prefix_cache_queries": {"": prompt}, "prefix_cache_hits": {"": prompt / 4}}
    ms.histograms = {"ttft": HistogramSnapshot(bounds, ttft_cum, sum=0.2 * ttft_cum[-1], count=ttft_cum[-1])}
    return ms


def tracker(window: float = 60.0) -> ModelEndpointTracker:
    return ModelEndpointTracker(Attribution("m", "e", "node-1", "H100"), window, ttft_slo_seconds=1.0)


def test_needs_two_points_for_a_rate() -> None:
    t = tracker()
    t.observe(_scrape(0, 0, (0, 0, 0)), 0.0)
    assert t.signals() is None


def test_rates_quantiles_and_ratios_over_window() -> None:
    t = tracker()
    t.observe(_scrape(100, 1000, (10, 20, 20)), 0.0)
    t.observe(_scrape(160, 4000, (10, 80, 80), kv=0.7), 30.0)
    s = t.signals()
    assert s is not None
    assert s.request_rate == pytest.approx(2.0)
    assert s.prompt_tokens_rate == pytest.approx(100.0)
    assert s.prefix_cache_hit_ratio == pytest.approx(0.25)
    assert s.kv_cache_utilization == 0.7 and s.kv_cache_utilization_max == 0.7
    # window delta: 60 new obs all in (0.1, 1.0] → p50 = 0.1 + 0.9*0.5
    assert s.ttft.quantiles[0.5] == pytest.approx(0.55)
    assert s.ttft.count == 60
    assert s.totals["ttft_slo_good"] == 80 and s.totals["ttft_slo_requests"] == 80
    assert s.attribution.node == "node-1"


def test_restart_gives_no_negative_rate_and_keeps_new_requests() -> None:
    t = tracker()
    t.observe(_scrape(100, 1000, (10, 20, 20)), 0.0)
    t.observe(_scrape(120, 1200, (10, 25, 25)), 10.0)
    t.observe(_scrape(5, 50, (1, 2, 2)), 20.0)  # vLLM restarted between scrapes
    s = t.signals()
    assert s is not None
    assert s.request_rate == pytest.approx((20 + 5) / 20)
    assert s.prompt_tokens_rate >= 0 and s.ttft.count == 7
    assert s.totals["requests:stop"] == 125
    assert t.resets == 1


def test_old_points_leave_the_window() -> None:
    t = tracker(window=30.0)
    for i in range(10):
        t.observe(_scrape(100 + i * 10, 0, (0, 0, 0)), i * 10.0)
    s = t.signals()
    assert s is not None and s.window_seconds <= 40.0
    assert s.request_rate == pytest.approx(1.0)


def test_out_of_order_scrape_ignored() -> None:
    t = tracker()
    t.observe(_scrape(100, 0, (0, 0, 0)), 10.0)
    t.observe(_scrape(50, 0, (0, 0, 0)), 5.0)
    t.observe(_scrape(110, 0, (0, 0, 0)), 20.0)
    s = t.signals()
    assert s is not None and s.request_rate == pytest.approx(1.0)


def test_bucket_layout_change_restarts_quantile_history() -> None:
    t = tracker()
    t.observe(_scrape(0, 0, (5, 5, 5)), 0.0)
    t.observe(_scrape(0, 0, (1, 3, 3), bounds=(0.5, 2.0, INF)), 10.0)
    t.observe(_scrape(0, 0, (1, 7, 7), bounds=(0.5, 2.0, INF)), 20.0)
    s = t.signals()
    assert s is not None and s.ttft.count == 4
    assert 0.5 <= s.ttft.quantiles[0.5] <= 2.0


def test_no_observations_in_window_is_nan() -> None:
    t = tracker()
    t.observe(_scrape(1, 0, (3, 3, 3)), 0.0)
    t.observe(_scrape(1, 0, (3, 3, 3)), 10.0)
    s = t.signals()
    assert s is not None and math.isnan(s.ttft.quantiles[0.99]) and s.request_rate == 0


def test_histogram_quantiles_equal_one_call_per_quantile() -> None:
    """The batched form the tracker uses gives bit for bit what histogram_quantile gives per quantile,
    including non-monotonic buckets, empty histograms, a missing +Inf and out-of-range quantiles."""
    import random

    from llmobs.signals.histogram import histogram_quantile, histogram_quantiles

    rng = random.Random(3)
    qs = (0.5, 0.9, 0.99, 0.0, 1.0, -0.1, 1.5, math.nan)
    for _ in range(2000):
        n = rng.randrange(1, 8)
        bounds = sorted(rng.choice([-1.0, 0.0, 0.001, 0.5, 1.0, 2.5, 10.0]) for _ in range(n))
        if rng.random() < 0.9:
            bounds.append(math.inf)
        cumulative = [float(rng.randrange(0, 5)) for _ in bounds]
        if rng.random() < 0.7:
            cumulative = [sum(cumulative[: i + 1]) for i in range(len(cumulative))]
        got = histogram_quantiles(qs, bounds, cumulative)
        want = [histogram_quantile(q, bounds, cumulative) for q in qs]
        assert repr(got) == repr(want), (bounds, cumulative)
