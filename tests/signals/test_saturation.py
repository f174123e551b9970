"""Saturation: the ratio of each vLLM scheduler limit, the binding one named, and `unknown` whenever an input is
missing (never the largest known ratio passed off as the bottleneck)."""

from __future__ import annotations

import math

import pytest

from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.saturation import BINDING_FLOOR, IterationTokens, saturation, spare_tokens_per_second
from llmobs.signals.types import Attribution, ModelEndpointSignals, Saturation
from llmobs.sources.normalize import HistogramSnapshot, ModelScrape
from llmobs.sources.targets import SchedulerLimits

LIMITS = SchedulerLimits(max_num_seqs=8, max_num_batched_tokens=64)
ITER_BOUNDS = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, math.inf)


def sat(kv: list[float], running: list[float], steps: float = 100.0, tokens: float = 640.0,
        limits: SchedulerLimits = LIMITS, tokens_rate: float = 100.0, with_iterations: bool = True) -> Saturation:
    iterations = IterationTokens(steps, tokens) if with_iterations else None
    return saturation(kv_usage=kv, running=running, iteration_tokens=iterations, limits=limits,
                      tokens_rate=tokens_rate)


class TestRatios:
    def test_kv_is_the_window_mean_of_usage(self) -> None:
        assert sat([0.2, 0.4, 0.9], [1, 1, 1]).ratios["kv"] == pytest.approx(0.5)

    def test_batch_is_mean_running_over_max_num_seqs_capped_at_one(self) -> None:
        assert sat([0.1] * 2, [4, 8]).ratios["batch"] == pytest.approx(0.75)
        assert sat([0.1] * 2, [12, 12]).ratios["batch"] == 1.0  # a page above the configured limit: full

    def test_prefill_is_step_fullness_times_busy_share(self) -> None:
        # 100 steps carried 3,200 tokens: 32 per step of a 64 budget; a request ran at 3 of 4 scrapes
        assert sat([0.1] * 4, [1, 1, 0, 2], steps=100, tokens=3200).ratios["prefill"] == pytest.approx(0.5 * 0.75)

    def test_prefill_fullness_is_capped_when_chunk_only_steps_went_unobserved(self) -> None:
        # vLLM observes only steps that emit a token, with whole prompts: 10 steps carrying 3,000 tokens means
        # chunk-only steps at the full budget happened in between
        assert sat([0.1] * 2, [2, 2], steps=10, tokens=3000).ratios["prefill"] == 1.0

    def test_a_long_prompt_that_arrives_rarely_is_not_saturation(self) -> None:
        """Full steps while it runs, idle otherwise: the busy share keeps the ratio low."""
        s = sat([0.05] * 10, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], steps=2, tokens=1000)
        assert s.ratios["prefill"] == pytest.approx(0.1)
        assert s.bottleneck == "none"

    def test_idle_window_reads_zero_and_names_nothing(self) -> None:
        s = sat([0.0, 0.0], [0, 0], steps=0, tokens=0, tokens_rate=0.0)
        assert s.ratios == {"kv": 0.0, "batch": 0.0, "prefill": 0.0}
        assert s.bottleneck == "none" and s.spare_tokens_per_second is None
        assert s.binding_ratio == 0.0


class TestBottleneck:
    @pytest.mark.parametrize(("kv", "running", "tokens", "expected"), [
        ([0.95, 0.9], [5, 5], 600.0, "kv"),  # cache full, batch part-full, small steps
        ([0.15, 0.2], [2, 2], 6400.0, "prefill"),  # full steps, little KV, few sequences
        ([0.2, 0.2], [8, 8], 1000.0, "batch"),  # every sequence slot taken
    ])
    def test_the_largest_ratio_binds(self, kv: list[float], running: list[float], tokens: float,
                                     expected: str) -> None:
        assert sat(kv, running, steps=100, tokens=tokens).bottleneck == expected

    def test_a_tie_is_named_in_resource_order(self) -> None:
        assert sat([1.0, 1.0], [8, 8], steps=10, tokens=6400).bottleneck == "kv"
        assert sat([0.1, 0.1], [8, 8], steps=10, tokens=6400).bottleneck == "prefill"

    def test_below_the_floor_nothing_binds_but_the_ratios_stay(self) -> None:
        s = sat([0.3, 0.3], [2, 2], steps=100, tokens=640)
        assert max(s.ratios.values()) < BINDING_FLOOR and s.bottleneck == "none"
        assert s.binding_ratio == pytest.approx(0.3)


class TestUnknown:
    """A missing input makes the bottleneck unknown (with the reason), never the largest of the known ratios."""

    def test_without_scheduler_limits_only_kv_is_known(self) -> None:
        s = sat([0.95, 0.95], [8, 8], limits=SchedulerLimits())
        assert s.ratios == {"kv": pytest.approx(0.95)}
        assert s.bottleneck == "unknown"
        assert s.unknown == ("max_num_seqs_unknown", "max_num_batched_tokens_unknown")
        assert math.isnan(s.binding_ratio) and s.spare_tokens_per_second is None

    def test_without_the_iteration_histogram_prefill_is_unknown(self) -> None:
        s = sat([0.1, 0.1], [8, 8], with_iterations=False)
        assert "prefill" not in s.ratios and s.bottleneck == "unknown" and s.unknown == ("no_iteration_tokens",)

    def test_a_page_without_kv_usage_or_running(self) -> None:
        s = sat([math.nan, math.nan], [math.nan, math.nan])
        assert s.ratios == {} and s.bottleneck == "unknown"
        assert set(s.unknown) == {"no_kv_cache_usage", "no_requests_running"}

    def test_nan_and_out_of_range_readings_are_left_out_of_the_means(self) -> None:
        s = sat([0.4, math.nan, 1.7, -0.1, 0.6, math.inf], [2, math.nan, -1, 6, math.inf])
        assert s.ratios["kv"] == pytest.approx(0.5) and s.ratios["batch"] == pytest.approx(0.5)

    @pytest.mark.parametrize(("steps", "tokens"), [(math.nan, 10.0), (10.0, math.nan), (-1.0, 10.0),
                                                   (10.0, math.inf)])
    def test_an_implausible_iteration_delta(self, steps: float, tokens: float) -> None:
        s = sat([0.1], [1], steps=steps, tokens=tokens)
        assert s.bottleneck == "unknown" and s.unknown == ("iteration_tokens_implausible",)

    def test_requests_running_but_no_step_emitting_is_not_read_as_idle(self) -> None:
        """One prompt longer than the window fills chunk-only steps that vLLM never observes."""
        s = sat([0.3, 0.3], [1, 1], steps=0, tokens=0)
        assert s.bottleneck == "unknown" and s.unknown == ("no_engine_steps",)


class TestSpareCapacity:
    def test_linear_extrapolation_to_the_binding_limit(self) -> None:
        assert spare_tokens_per_second(0.8, 1000.0) == pytest.approx(250.0)  # full at 1250 tokens/s
        assert sat([0.2, 0.2], [4, 4], tokens_rate=900.0).spare_tokens_per_second == pytest.approx(900.0)

    def test_none_left_when_full_and_unknown_from_nothing(self) -> None:
        assert spare_tokens_per_second(1.0, 500.0) == 0.0
        assert spare_tokens_per_second(0.0, 500.0) is None
        assert spare_tokens_per_second(0.5, math.nan) is None


# --- through the tracker: pages, partial pages, counter resets ------------------------------------------------

def page(*, kv: float | None = 0.2, running: float | None = 2.0, steps: float | None = 100.0,
         tokens: float = 3200.0, prompt: float = 1000.0) -> ModelScrape:
    ms = ModelScrape()
    if kv is not None:
        ms.gauges["kv_cache_usage"] = {"": kv}
    if running is not None:
        ms.gauges["requests_running"] = {"": running}
    ms.counters = {"prompt_tokens": {"": prompt}, "generation_tokens": {"": prompt / 10}}
    if steps is not None:
        cumulative = tuple(steps if b >= 64 else 0.0 for b in ITER_BOUNDS)
        ms.histograms["iteration_tokens"] = HistogramSnapshot(ITER_BOUNDS, cumulative, sum=tokens, count=steps)
    return ms


def follow(*pages: ModelScrape, limits: SchedulerLimits | None = LIMITS, every: float = 5.0) -> ModelEndpointSignals:
    t = ModelEndpointTracker(Attribution("m", "e"), 60.0, scheduler=limits)
    for i, p in enumerate(pages):
        t.observe(p, i * every)
    s = t.signals()
    assert s is not None and s.saturation is not None
    return s


def test_tracker_reads_the_window_delta_of_the_iteration_histogram() -> None:
    s = follow(page(steps=100, tokens=3200), page(steps=150, tokens=5000, running=4), page(steps=200, tokens=6400))
    assert s.saturation is not None
    assert s.saturation.ratios["prefill"] == pytest.approx(3200 / (100 * 64))  # 100 new steps, 3,200 new tokens
    assert s.saturation.ratios["batch"] == pytest.approx((2 + 4 + 2) / 3 / 8)


def test_a_vllm_restart_inside_the_window_does_not_distort_the_ratio() -> None:
    # 100 → 150 steps, then the server restarts and counts 50 steps again: 100 new steps, 3,200 new tokens
    s = follow(page(steps=100, tokens=3200), page(steps=150, tokens=4800), page(steps=50, tokens=1600))
    assert s.saturation is not None
    assert s.saturation.ratios["prefill"] == pytest.approx(3200 / (100 * 64))


def test_a_page_carrying_only_some_families_names_no_bottleneck() -> None:
    s = follow(page(steps=None, running=None), page(steps=None, running=None))
    assert s.saturation is not None and s.saturation.bottleneck == "unknown"
    assert set(s.saturation.unknown) == {"no_iteration_tokens", "no_requests_running"}
    assert set(s.saturation.ratios) == {"kv"}


def test_nan_gauges_on_the_page_are_dropped_and_counted_not_averaged() -> None:
    t = ModelEndpointTracker(Attribution("m", "e"), 60.0, scheduler=LIMITS)
    t.observe(page(kv=0.2, running=4.0), 0.0)
    t.observe(page(kv=math.nan, running=math.nan, steps=200, tokens=6400), 5.0)
    s = t.signals()
    assert s is not None and s.saturation is not None
    assert s.saturation.ratios["kv"] == pytest.approx(0.2) and s.saturation.ratios["batch"] == pytest.approx(0.5)
    assert t.take_implausible() == 2


def test_without_token_counters_spare_capacity_is_unknown_not_zero() -> None:
    first, second = page(), page(steps=200, tokens=6400)
    first.counters, second.counters = {}, {}
    s = follow(first, second)
    assert s.saturation is not None and s.saturation.bottleneck == "prefill"
    assert s.saturation.spare_tokens_per_second is None


def test_a_tracker_without_limits_keeps_the_old_signals_and_says_why() -> None:
    s = follow(page(), page(steps=200, tokens=6400), limits=None)
    assert s.saturation is not None and s.saturation.bottleneck == "unknown"
    assert s.kv_cache_utilization == 0.2  # the rest of the signals are unchanged
