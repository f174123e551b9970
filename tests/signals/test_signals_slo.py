"""Latency SLO counts (TTFT, TPOT, E2E): good ÷ total from the histogram bucket at the threshold, the threshold
snapped to a bucket bound and exported, and no series at all where the page lacks the histogram."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.config import SignalsConfig
from llmobs.pipeline import Pipeline
from llmobs.serving.collector import FleetCollector
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.types import Attribution, ModelEndpointSignals
from llmobs.sources.normalize import HistogramSnapshot, ModelScrape
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource
from llmobs.state import StateHolder
from tests.factories import make_state, signals_from_page
from tests.pageserver import PageServer

INF = math.inf
TPOT_BOUNDS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, INF)
E2E_BOUNDS = (10.0, 20.0, 30.0, 40.0, 60.0, INF)


def _hist(bounds: tuple[float, ...], cumulative: tuple[float, ...]) -> HistogramSnapshot:
    return HistogramSnapshot(bounds, cumulative, sum=0.0, count=cumulative[-1])


def _scrape(histograms: dict[str, HistogramSnapshot]) -> ModelScrape:
    ms = ModelScrape()
    ms.counters = {"request_success": {"stop": 1.0}}
    ms.histograms = histograms
    return ms


def _signals(histograms: dict[str, HistogramSnapshot], **thresholds: float) -> ModelEndpointSignals:
    t = ModelEndpointTracker(Attribution("m", "e"), 60.0, **thresholds)
    t.observe(_scrape(histograms), 0.0)
    t.observe(_scrape(histograms), 5.0)
    s = t.signals()
    assert s is not None
    return s


def test_defaults_are_stated_and_shared_by_config_and_tracker() -> None:
    config = SignalsConfig()
    assert (config.ttft_slo_seconds, config.tpot_slo_seconds, config.e2e_slo_seconds) == (1.0, 0.1, 30.0)
    assert ModelEndpointTracker(Attribution("m", "e"), 60.0).slo_seconds == {"ttft": 1.0, "tpot": 0.1, "e2e": 30.0}
    with pytest.raises(ValueError):
        SignalsConfig(tpot_slo_seconds=0)


def test_good_is_the_bucket_at_the_threshold_and_total_the_count() -> None:
    s = _signals({"tpot": _hist(TPOT_BOUNDS, (1, 3, 6, 8, 9, 10, 10)),
                  "e2e_latency": _hist(E2E_BOUNDS, (5, 20, 40, 45, 49, 50))})
    assert (s.totals["tpot_slo_good"], s.totals["tpot_slo_requests"]) == (8, 10)  # ≤ 0.1 s
    assert (s.totals["e2e_slo_good"], s.totals["e2e_slo_requests"]) == (40, 50)  # ≤ 30 s
    assert s.tpot_slo_threshold_seconds == 0.1 and s.e2e_slo_threshold_seconds == 30.0


@pytest.mark.parametrize("threshold, snapped, good", [
    (0.12, 0.1, 8),  # nearer 0.1 than 0.15
    (0.13, 0.15, 9),  # nearer 0.15
    (0.125, 0.1, 8),  # a tie takes the lower bound: never counts a slower request as good
    (0.001, 0.025, 1),  # below every bound: the first
    (5.0, 0.2, 10),  # above every finite bound: the last finite one, never +Inf
])
def test_threshold_snaps_to_the_nearest_bound_and_is_reported(threshold: float, snapped: float, good: float) -> None:
    s = _signals({"tpot": _hist(TPOT_BOUNDS, (1, 3, 6, 8, 9, 10, 10))}, tpot_slo_seconds=threshold)
    assert s.tpot_slo_threshold_seconds == snapped
    assert s.totals["tpot_slo_good"] == good


def test_a_page_without_the_histogram_has_no_slo_series_not_zero_or_all_good() -> None:
    s = _signals({"ttft": _hist((0.5, 1.0, INF), (4, 9, 10))})
    assert s.totals["ttft_slo_good"] == 9 and s.ttft_slo_threshold_seconds == 1.0
    assert not {k for k in s.totals if k.startswith(("tpot_", "e2e_"))}
    assert s.tpot_slo_threshold_seconds is None and s.e2e_slo_threshold_seconds is None


def test_a_histogram_with_only_the_inf_bucket_has_no_threshold_to_count_at() -> None:
    s = _signals({"e2e_latency": _hist((INF,), (7,))})
    assert "e2e_slo_good" not in s.totals and "e2e_slo_requests" not in s.totals
    assert s.e2e_slo_threshold_seconds is None


def test_a_histogram_that_leaves_the_page_takes_its_series_with_it() -> None:
    t = ModelEndpointTracker(Attribution("m", "e"), 60.0)
    full = {"tpot": _hist(TPOT_BOUNDS, (1, 3, 6, 8, 9, 10, 10))}
    t.observe(_scrape(full), 0.0)
    t.observe(_scrape(full), 5.0)
    t.observe(_scrape({}), 10.0)
    s = t.signals()
    assert s is not None and "tpot_slo_good" not in s.totals and s.tpot_slo_threshold_seconds is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=7, max_size=7), st.integers(0, 50),
       st.floats(0.001, 10.0, allow_nan=False))
def test_good_never_exceeds_total_even_on_a_broken_page(buckets: list[int], count_extra: int,
                                                        threshold: float) -> None:
    # the buckets as drawn are not cumulative (a page no client library writes), and the count may be off
    page = _hist(TPOT_BOUNDS, tuple(float(b) for b in buckets))
    page = HistogramSnapshot(page.bounds, page.cumulative, sum=0.0, count=float(max(buckets) + count_extra))
    s = _signals({"tpot": page}, tpot_slo_seconds=threshold)
    assert 0 <= s.totals["tpot_slo_good"] <= s.totals["tpot_slo_requests"]
    assert s.tpot_slo_threshold_seconds in TPOT_BOUNDS[:-1]


def test_real_vllm_page_counts_tpot_per_request_not_per_token(fixture_page: str) -> None:
    s = signals_from_page(fixture_page)
    # vllm:request_time_per_output_token_seconds_count is 8 (requests); the per-token ITL histogram has 223
    assert s.totals["tpot_slo_requests"] == 8 == s.totals["e2e_slo_requests"] == s.totals["ttft_slo_requests"]
    assert (s.tpot_slo_threshold_seconds, s.e2e_slo_threshold_seconds, s.ttft_slo_threshold_seconds) == (0.1, 30, 1)
    assert s.totals["tpot_slo_good"] == 8 and s.totals["e2e_slo_good"] == 8


def _exposed(signals: ModelEndpointSignals) -> dict[str, list[float]]:
    holder = StateHolder()
    holder.publish(make_state(signals))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    return {f.name: [x.value for x in f.samples if not x.name.endswith("_created")]
            for f in text_string_to_metric_families(generate_latest(registry).decode())}


def test_the_exporter_renders_present_slos_and_leaves_absent_ones_empty() -> None:
    families = _exposed(_signals({"e2e_latency": _hist(E2E_BOUNDS, (5, 20, 40, 45, 49, 50))}))
    assert families["llmobs_e2e_slo_good"] == [40] and families["llmobs_e2e_slo_requests"] == [50]
    assert families["llmobs_e2e_slo_threshold_seconds"] == [30.0]
    for name in ("llmobs_tpot_slo_good", "llmobs_tpot_slo_requests", "llmobs_tpot_slo_threshold_seconds",
                 "llmobs_ttft_slo_good", "llmobs_ttft_slo_threshold_seconds"):
        assert families[name] == [], name


async def test_pipeline_applies_configured_thresholds_and_names_the_missing_histogram(
        fixture_page: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two endpoints: a vLLM 0.32 page, and the same page without the per-request TPOT histogram (an engine
    before 0.10). The first gets TPOT series at the configured threshold; the second none, and its target
    reports `tpot` missing (llmobs_vllm_expected_series_missing{series="tpot"})."""
    old = "\n".join(line for line in fixture_page.splitlines() if "request_time_per_output_token" not in line)
    holder = StateHolder()
    async with PageServer({"new": lambda n: fixture_page, "old": lambda n: old}) as server:
        pipeline = Pipeline(StaticTargetSource(server.targets(["new", "old"])), Scraper(), holder,
                            tpot_slo_seconds=0.04, e2e_slo_seconds=0.95)
        with caplog.at_level("WARNING", logger="llmobs.pipeline"):
            await pipeline.run_cycle()
            state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    by_endpoint = {s.attribution.endpoint: s for s in state.signals}
    new, old_signals = by_endpoint["new"], by_endpoint["old"]
    assert new.tpot_slo_threshold_seconds == 0.05 and new.e2e_slo_threshold_seconds == 1.0  # snapped
    assert new.totals["tpot_slo_good"] == 8 and new.totals["e2e_slo_good"] == 8
    assert "tpot_slo_good" not in old_signals.totals and old_signals.tpot_slo_threshold_seconds is None
    assert old_signals.totals["e2e_slo_requests"] == 8
    missing = {t.endpoint: t.missing_series for t in state.targets}
    assert "tpot" in missing["old"] and "tpot" not in missing["new"]
    assert [r.getMessage() for r in caplog.records] == [
        "target old does not expose expected vLLM series ['tpot'] (version drift?)"]
