"""Door signals from successive door readings: the first request for a model counts on the first page that shows
it, rates follow the window, door names map to the replicas' names, and a restarted door does not go negative."""

from __future__ import annotations

import math

import pytest

from llmobs.signals.door import DoorTracker
from llmobs.sources.door import DoorHistogram, DoorModelReading, DoorReading, DoorTarget

INF = math.inf


def reading(**models: DoorModelReading) -> DoorReading:
    return DoorReading(models, {}, True)


def test_a_model_first_seen_on_a_door_already_read_counts_its_first_request_at_once() -> None:
    """A door writes a model's series on its first request; the earlier page without it was a zero."""
    tracker = DoorTracker(DoorTarget("http://r/metrics", "router", "vllm-router", "tiny"), window_seconds=60)
    assert tracker.observe(reading(), 0.0) == []  # the door is up and has seen nothing
    [s] = tracker.observe(reading(tiny=DoorModelReading(arrivals=1.0, rejected=1.0)), 5.0)
    assert (s.model, s.door, s.kind) == ("tiny", "router", "vllm-router")
    assert s.request_rate == pytest.approx(1 / 5) and s.rejected_rate == pytest.approx(1 / 5)
    assert (s.requests_total, s.rejected_total) == (1.0, 1.0)


def test_on_the_first_page_of_a_door_old_counters_give_no_rate() -> None:
    tracker = DoorTracker(DoorTarget("http://r/metrics", "router", "litellm"), window_seconds=60)
    [s] = tracker.observe(reading(m=DoorModelReading(arrivals=5000.0)), 0.0)
    assert s.request_rate == 0.0 and s.requests_total == 5000.0
    [s] = tracker.observe(reading(m=DoorModelReading(arrivals=5010.0)), 10.0)
    assert s.request_rate == pytest.approx(1.0)


def test_rates_cover_the_window_and_forget_older_pages() -> None:
    tracker = DoorTracker(DoorTarget("http://r/metrics", "d", "litellm"), window_seconds=20)
    for t, total in [(0, 0), (10, 100), (20, 100), (30, 100)]:
        [s] = tracker.observe(reading(m=DoorModelReading(arrivals=float(total))), float(t))
    assert s.request_rate == 0.0  # the burst fell out of the last 20 s


def test_model_map_renames_door_names_and_sums_aliases_of_one_replica_model() -> None:
    target = DoorTarget("http://l/metrics", "litellm", "litellm", model_map={"public": "tiny", "alias": "tiny"})
    tracker = DoorTracker(target)
    tracker.observe(reading(), 0.0)
    [s] = tracker.observe(reading(public=DoorModelReading(arrivals=3.0, pending=1.0),
                                  alias=DoorModelReading(arrivals=1.0, pending=2.0)), 4.0)
    assert s.model == "tiny" and s.request_rate == pytest.approx(1.0) and s.pending == 3.0


def test_a_restarted_door_counts_on_instead_of_going_negative() -> None:
    tracker = DoorTracker(DoorTarget("http://r/metrics", "d", "gie-epp"))
    tracker.observe(reading(m=DoorModelReading(arrivals=100.0)), 0.0)
    [s] = tracker.observe(reading(m=DoorModelReading(arrivals=4.0)), 10.0)  # restart: 4 new requests
    assert s.requests_total == 104.0 and s.request_rate == pytest.approx(0.4)


def test_latency_quantiles_come_from_the_windows_bucket_deltas() -> None:
    tracker = DoorTracker(DoorTarget("http://r/metrics", "d", "gie-epp"))
    bounds = (0.5, 1.0, INF)
    tracker.observe(reading(m=DoorModelReading(arrivals=10.0, latency=DoorHistogram(bounds, (10, 10, 10), 10, 2))),
                    0.0)
    [s] = tracker.observe(reading(m=DoorModelReading(
        arrivals=20.0, latency=DoorHistogram(bounds, (10, 20, 20), 20, 9.5))), 10.0)
    assert s.latency is not None and s.latency.count == 10.0  # the 10 new requests, all in (0.5, 1]
    assert s.latency.quantiles[0.5] == pytest.approx(0.75) and s.latency.mean == pytest.approx(0.75)


def test_a_door_without_pending_or_latency_says_so() -> None:
    tracker = DoorTracker(DoorTarget("http://l/metrics", "l", "litellm"))
    [s] = tracker.observe(reading(m=DoorModelReading(arrivals=1.0)), 0.0)
    assert s.pending is None and s.latency is None


def test_bad_clock_and_window_are_refused() -> None:
    with pytest.raises(ValueError):
        DoorTracker(DoorTarget("http://r/metrics", "d", "litellm"), window_seconds=0)
    with pytest.raises(ValueError):
        DoorTracker(DoorTarget("http://r/metrics", "d", "litellm")).observe(reading(), math.nan)
