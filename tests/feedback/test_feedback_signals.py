"""The collector: families, label guards, windowed ratios, TTFT split, coverage — on a fresh registry."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.feedback import FeedbackCollector, FeedbackConfig, FeedbackStats
from llmobs.feedback.stats import Observation
from tests.conftest import REPO
from tests.feedback.feedback_helpers import Clock


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def setup(config: FeedbackConfig, clock: Clock, served=None) -> tuple[FeedbackStats, CollectorRegistry]:
    stats = FeedbackStats(config)
    registry = CollectorRegistry()
    FeedbackCollector(stats, served, clock=clock).register(registry)
    return stats, registry


def ob(
    model: str = "m", app: str = "chat", label: str = "positive", at: float = 0.0, ttft_ms: float | None = None
) -> Observation:
    return Observation(model, app, label, ttft_ms, at)


def test_counter_and_app_allow_list(config: FeedbackConfig, clock: Clock) -> None:
    stats, reg = setup(config, clock)
    stats.record([ob(app="chat"), ob(app="chat", label="negative"), ob(app="rogue"), ob(app="other-rogue")])
    assert value(reg, "llmobs_feedback_total", model="m", app="chat", rating="positive") == 1
    assert value(reg, "llmobs_feedback_total", model="m", app="chat", rating="negative") == 1
    assert value(reg, "llmobs_feedback_total", model="m", app="other", rating="positive") == 2
    assert value(reg, "llmobs_feedback_total", model="m", app="rogue", rating="positive") is None


def test_model_label_budget(make_config, clock: Clock) -> None:
    config = make_config(max_models=2)
    stats, reg = setup(config, clock)
    stats.record([ob(model=f"model-{i}", at=clock.now) for i in range(5)])
    text = generate_latest(reg).decode()
    models = {
        line.split('model="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("llmobs_feedback_total{")
    }
    assert models == {"model-0", "model-1", "other"}
    assert value(reg, "llmobs_feedback_total", model="other", app="chat", rating="positive") == 3


def test_negative_ratio_over_window_and_expiry(config: FeedbackConfig, clock: Clock) -> None:
    stats, reg = setup(config, clock)
    stats.record([ob(label="negative", at=clock.now)] * 3 + [ob(at=clock.now)] + [ob(label="neutral", at=clock.now)])
    assert value(reg, "llmobs_feedback_negative_ratio", model="m") == pytest.approx(3 / 5)
    assert value(reg, "llmobs_feedback_window_events", model="m") == 5
    clock.now += config.window_seconds / 2
    stats.record([ob(at=clock.now)] * 5)
    assert value(reg, "llmobs_feedback_negative_ratio", model="m") == pytest.approx(3 / 10)
    clock.now += config.window_seconds / 2 + config.bucket_seconds + 1  # first batch falls out
    assert value(reg, "llmobs_feedback_negative_ratio", model="m") == 0.0
    clock.now += config.window_seconds + config.bucket_seconds
    assert math.isnan(value(reg, "llmobs_feedback_negative_ratio", model="m"))
    # The counter is not windowed.
    assert value(reg, "llmobs_feedback_total", model="m", app="chat", rating="positive") == 6


def test_negative_ratio_split_by_client_ttft(config: FeedbackConfig, clock: Clock) -> None:
    """SLO 1 s: 1000 ms is at the SLO (below_slo), 1000.1 ms above; events without TTFT are in neither."""
    stats, reg = setup(config, clock)
    t = clock.now
    stats.record(
        [
            ob(label="negative", at=t, ttft_ms=3000.0),
            ob(label="negative", at=t, ttft_ms=1000.1),
            ob(at=t, ttft_ms=2500.0),
            ob(label="negative", at=t, ttft_ms=1000.0),
            ob(at=t, ttft_ms=200.0),
            ob(at=t, ttft_ms=300.0),
            ob(at=t, ttft_ms=10.0),
            ob(label="negative", at=t),
        ]
    )
    assert value(reg, "llmobs_feedback_negative_ratio_by_ttft", model="m", ttft="above_slo") == pytest.approx(2 / 3)
    assert value(reg, "llmobs_feedback_negative_ratio_by_ttft", model="m", ttft="below_slo") == pytest.approx(1 / 4)
    assert value(reg, "llmobs_feedback_negative_ratio", model="m") == pytest.approx(4 / 8)
    # The counts behind the ratios, so a fleet of replicas can sum before dividing.
    assert value(reg, "llmobs_feedback_window_negative_events", model="m") == 4
    assert value(reg, "llmobs_feedback_window_ttft_events", model="m", ttft="above_slo") == 3
    assert value(reg, "llmobs_feedback_window_ttft_negative_events", model="m", ttft="above_slo") == 2
    assert value(reg, "llmobs_feedback_window_ttft_events", model="m", ttft="below_slo") == 4
    assert value(reg, "llmobs_feedback_window_ttft_negative_events", model="m", ttft="below_slo") == 1


def test_coverage_is_feedback_per_request_served_over_the_window(config: FeedbackConfig, clock: Clock) -> None:
    served = {"m": 1000.0}
    stats, reg = setup(config, clock, served=lambda model: served[model])
    stats.record([ob(at=clock.now)])  # makes `m` a labelled model
    first = value(reg, "llmobs_feedback_coverage_ratio", model="m")  # baseline sample, nothing served since
    assert first is not None and math.isnan(first)
    clock.now += 60
    served["m"] += 400
    stats.record([ob(at=clock.now)] * 20)
    # 20 events since the baseline sample (the first one was before it) over 400 requests.
    assert value(reg, "llmobs_feedback_coverage_ratio", model="m") == pytest.approx(20 / 400, rel=0.1)


def test_coverage_absent_without_source_and_tolerates_broken_source(config: FeedbackConfig, clock: Clock) -> None:
    stats, reg = setup(config, clock)
    stats.record([ob(at=clock.now)])
    assert "llmobs_feedback_coverage_ratio" not in generate_latest(reg).decode()

    def broken(model: str) -> float:
        raise RuntimeError("source down")

    stats2, reg2 = setup(config, clock, served=broken)
    stats2.record([ob(at=clock.now)])
    text = generate_latest(reg2).decode()
    assert "# TYPE llmobs_feedback_coverage_ratio gauge" in text
    assert value(reg2, "llmobs_feedback_coverage_ratio", model="m") is None


def test_health_families_always_present(config: FeedbackConfig, clock: Clock) -> None:
    stats, reg = setup(config, clock)
    stats.add_rejected("validation", 2)
    stats.add_pruned("disk_cap", 7)
    stats.set_store_size(4096, 3)
    assert value(reg, "llmobs_feedback_rejected_total", reason="validation") == 2
    assert value(reg, "llmobs_feedback_rejected_total", reason="unauthenticated") == 0
    assert value(reg, "llmobs_feedback_pruned_total", reason="disk_cap") == 7
    assert value(reg, "llmobs_feedback_pruned_total", reason="retention") == 0
    assert value(reg, "llmobs_feedback_store_bytes") == 4096
    assert value(reg, "llmobs_feedback_store_events") == 3
    assert value(reg, "llmobs_feedback_window_seconds") == config.window_seconds


def test_names_documented_in_metric_contract(config: FeedbackConfig, clock: Clock) -> None:
    """Every family the collector emits appears in docs/metrics.md (the public contract)."""

    stats, reg = setup(config, clock, served=lambda m: 0.0)
    stats.record([ob(at=clock.now, ttft_ms=5.0)])
    doc = (REPO / "docs" / "metrics.md").read_text()
    names = {m.name for m in reg.collect()}
    for name in names:
        exported = (
            name + "_total"
            if name
            in {"llmobs_feedback", "llmobs_feedback_rejected", "llmobs_feedback_pruned", "llmobs_feedback_replays"}
            else name
        )
        assert f"`{exported}" in doc, exported


def test_collector_registers_only_where_told(config: FeedbackConfig, clock: Clock) -> None:
    from prometheus_client import REGISTRY

    setup(config, clock)
    assert REGISTRY.get_sample_value("llmobs_feedback_window_seconds") is None


def test_replicas_add_up_when_summed_before_dividing(config: FeedbackConfig, clock: Clock) -> None:
    """Scale-out: two replicas with their own stores; summing their counts gives the fleet's numbers,
    while averaging their ratio gauges would not (the documented PromQL sums first)."""
    stats_a, reg_a = setup(config, clock)
    stats_b, reg_b = setup(config, clock)
    t = clock.now
    stats_a.record([ob(label="negative", at=t, ttft_ms=3000.0)] * 2)  # 2 events, all negative
    stats_b.record([ob(at=t, ttft_ms=100.0)] * 17 + [ob(label="negative", at=t, ttft_ms=100.0)] * 1)  # 18, 1 neg

    def total(name: str, **labels: str) -> float:
        return sum(value(r, name, **labels) or 0.0 for r in (reg_a, reg_b))

    assert total("llmobs_feedback_total", model="m", app="chat", rating="negative") == 3
    assert total("llmobs_feedback_total", model="m", app="chat", rating="positive") == 17
    fleet = total("llmobs_feedback_window_negative_events", model="m") / total(
        "llmobs_feedback_window_events", model="m"
    )
    assert fleet == pytest.approx(3 / 20)
    averaged = (
        value(reg_a, "llmobs_feedback_negative_ratio", model="m")
        + value(reg_b, "llmobs_feedback_negative_ratio", model="m")
    ) / 2
    assert averaged != pytest.approx(fleet)
    above = total("llmobs_feedback_window_ttft_negative_events", model="m", ttft="above_slo") / total(
        "llmobs_feedback_window_ttft_events", model="m", ttft="above_slo"
    )
    assert above == 1.0
