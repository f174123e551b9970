"""The status page's signal history: bounded, thinned to its spacing, oldest first, churn forgotten."""

from __future__ import annotations

import math

import pytest

from llmobs.serving.statuspage.history import ModelExtras, SignalHistory
from tests.factories import distribution, make_signals, make_state


def state_at(t: float, kv: float, *endpoints: str) -> object:
    return make_state(*(make_signals("m", e, kv_cache_utilization=kv, requests_waiting=kv * 10,
                                     ttft=distribution(0.1, kv, 2.0, 0.5),
                                     totals={"ttft_slo_requests": 100 * t, "ttft_slo_good": 90 * t})
                        for e in endpoints), time=t)


def test_keeps_the_last_capacity_points_oldest_first_at_its_spacing() -> None:
    history = SignalHistory(capacity=5, spacing_seconds=10.0)
    for i in range(30):  # a point every 5 s: every other one is within the spacing and skipped
        history.record(state_at(i * 5.0, i / 100, "e1"))
    series = history.endpoint("m", "e1")
    assert series is not None
    assert series.times == [100.0, 110.0, 120.0, 130.0, 140.0]
    assert series.values["kv"] == pytest.approx([0.20, 0.22, 0.24, 0.26, 0.28])
    assert series.values["ttft_p90"] == pytest.approx(series.values["kv"])
    assert all(math.isnan(v) for v in series.values["saturation"]), "no saturation source: not measured"


def test_overview_buckets_keep_each_buckets_max() -> None:
    history = SignalHistory(capacity=40, spacing_seconds=1.0, overview_points=4)
    for i in range(40):
        history.record(state_at(float(i), 1.0 if i == 13 else 0.0, "e1"))  # one spike
    overview = history.endpoint_overview("m", "e1")
    assert overview is not None
    assert overview.values["kv"] == [0.0, 1.0, 0.0, 0.0], "the spike survives thinning"
    assert len(overview.times) == 4


def test_endpoints_gone_longer_than_retention_are_dropped() -> None:
    history = SignalHistory(capacity=10, spacing_seconds=10.0, retain_seconds=60.0)
    history.record(state_at(0.0, 0.1, "old", "kept"))
    size_two = history.nbytes()
    for t in range(10, 200, 10):
        history.record(state_at(float(t), 0.1, "kept"))
    assert history.endpoint("m", "old") is None
    assert history.endpoint("m", "kept") is not None
    assert len(history) == 1 and history.nbytes() < size_two


def test_model_history_sums_endpoints_and_records_extras_or_nan() -> None:
    history = SignalHistory(capacity=4, spacing_seconds=1.0,
                            model_extras=lambda m: ModelExtras(forecast=7.0, upper=9.0, desired=3.0))
    history.record(make_state(make_signals("m", "a", request_rate=1.5), make_signals("m", "b", request_rate=2.0),
                              time=1.0))
    series = history.model("m")
    assert series is not None
    assert series.values["served"] == [3.5] and series.values["current"] == [2.0]
    assert (series.values["forecast"], series.values["upper"], series.values["desired"]) == ([7.0], [9.0], [3.0])
    assert math.isnan(series.values["door"][0]) and math.isnan(series.values["ready"][0])


def test_rejects_a_history_that_cannot_draw_a_line() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SignalHistory(capacity=1)
