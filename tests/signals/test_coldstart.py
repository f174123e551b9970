"""Cold starts from the instants a replica's start leaves behind: which spans count, which are rejected, and
the horizon a forecast must look ahead."""

from __future__ import annotations

import math

import pytest

from llmobs.signals.coldstart import COLD_START_BUCKETS, ColdStartRecorder, cold_starts


def test_pod_and_process_spans_of_a_replica_seen_starting() -> None:
    spans, rejected = cold_starts("m", "e", first_scrape=1_000.0, watching_since=0.0, pod_created=700.0,
                                  ready_at=990.0, process_start=760.0)
    assert rejected == []
    assert {(s.start, s.stage): s.seconds for s in spans} == {
        ("pod_created", "ready"): 290.0, ("pod_created", "first_scrape"): 300.0,
        ("process_start", "first_scrape"): 240.0}


def test_a_replica_that_started_before_llmobs_watched_is_not_a_cold_start() -> None:
    """llmobs restarting next to a fleet that runs for days must not report days-long cold starts."""
    spans, rejected = cold_starts("m", "e", first_scrape=100_000.0, watching_since=99_990.0, pod_created=10.0,
                                  process_start=20.0)
    assert (spans, rejected) == ([], [])


@pytest.mark.parametrize(("process_start", "reason"), [
    (1_100.0, "clock_skew"),  # a start after the first scrape: the clocks disagree, not a negative cold start
    (-30_000.0, None),  # before llmobs watched: not counted at all
    (math.nan, "not_finite"),
    (math.inf, "not_finite"),
])
def test_impossible_starts_are_rejected_with_a_reason(process_start: float, reason: str | None) -> None:
    spans, rejected = cold_starts("m", "e", first_scrape=1_000.0, watching_since=0.0, process_start=process_start)
    assert spans == [] and rejected == ([reason] if reason else [])


def test_too_long_is_rejected_and_small_skew_is_zero() -> None:
    spans, rejected = cold_starts("m", "e", first_scrape=30_000.0, watching_since=0.0, process_start=1.0)
    assert (spans, rejected) == ([], ["too_long"])
    spans, rejected = cold_starts("m", "e", first_scrape=1_000.0, watching_since=0.0, process_start=1_002.0)
    assert [s.seconds for s in spans] == [0.0] and rejected == []


def test_recorder_histogram_counts_and_horizon_is_the_p90_of_recent_cold_starts() -> None:
    recorder = ColdStartRecorder(recent=20)
    for seconds in [30.0] * 8 + [60.0, 400.0]:
        spans, rejected = cold_starts("m", "e", first_scrape=1_000.0 + seconds, watching_since=0.0,
                                      pod_created=1_000.0, process_start=1_000.0 + seconds / 2)
        recorder.record("m", spans, rejected)
    summary = recorder.summaries()["m"]
    pod = next(h for h in summary.histograms if (h.start, h.stage) == ("pod_created", "first_scrape"))
    assert pod.count == 10 and pod.sum == 700.0
    assert pod.bucket_counts[COLD_START_BUCKETS.index(30)] == 8
    assert pod.bucket_counts[COLD_START_BUCKETS.index(60)] == 9
    assert pod.bucket_counts[-1] == 10
    # the horizon reads the span from the earliest start known (pod creation), p90 by nearest rank
    assert summary.recent_seconds[-1] == 400.0 and summary.horizon_seconds == 60.0


def test_recorder_without_process_or_pod_spans_has_no_horizon_but_counts_rejections() -> None:
    recorder = ColdStartRecorder()
    recorder.record("m", [], ["clock_skew", "clock_skew"])
    summary = recorder.summaries()["m"]
    assert summary.horizon_seconds is None and dict(summary.rejected) == {"clock_skew": 2}


def test_recorder_view_is_immutable_and_rebuilt_only_after_a_change() -> None:
    recorder = ColdStartRecorder()
    spans, _ = cold_starts("m", "e", first_scrape=50.0, watching_since=0.0, process_start=10.0)
    recorder.record("m", spans, [])
    view = recorder.summaries()
    assert recorder.summaries() is view
    with pytest.raises(TypeError):
        view["x"] = view["m"]  # type: ignore[index]  # the published state cannot be changed by a reader
    recorder.record("m", spans, [])
    assert recorder.summaries() is not view and recorder.summaries()["m"].histograms[0].count == 2


def test_recorder_keeps_a_bounded_number_of_models() -> None:
    recorder = ColdStartRecorder(max_models=3)
    for i in range(5):
        spans, _ = cold_starts(f"m{i}", "e", first_scrape=50.0, watching_since=0.0, process_start=10.0)
        recorder.record(f"m{i}", spans, [])
    assert sorted(recorder.summaries()) == ["m2", "m3", "m4"]
