"""The HPA as every KEDA-driven policy goes through it: tolerance, the scale-up limit, scale-down
stabilization, and an HPA `behavior` (the llm-d WVA chart's) with its own windows and policies."""

from __future__ import annotations

import math
import random

from llmobs.forecast.replay import HpaConfig
from llmobs.simulate.hpa import HorizontalPodAutoscaler, HpaBehavior, ScalingPolicy, hpa_proposal


def test_a_metric_within_the_tolerance_keeps_the_count() -> None:
    assert hpa_proposal(metric=10.5, target=1.0, current=10, tolerance=0.1) == 10
    assert hpa_proposal(metric=9.2, target=1.0, current=10, tolerance=0.1) == 10
    assert hpa_proposal(metric=11.5, target=1.0, current=10, tolerance=0.1) == 12
    assert hpa_proposal(metric=math.nan, target=1.0, current=7, tolerance=0.1) == 7  # no metric: no change


def test_scale_up_is_limited_to_double_or_four_more_per_period() -> None:
    hpa = HorizontalPodAutoscaler(HpaConfig())
    assert hpa.scale_on(15.0, 2, metric=100.0, target=1.0) == 6  # +4 beats +100 % at 2 pods
    assert hpa.scale_on(30.0, 10, metric=100.0, target=1.0) == 20  # +100 % beats +4 at 10 pods
    assert hpa.scale_on(45.0, 20, metric=30.0, target=1.0) == 30


def test_a_lower_proposal_waits_for_the_stabilization_window() -> None:
    hpa = HorizontalPodAutoscaler(HpaConfig(scale_down_stabilization_s=300.0))
    assert hpa.scale_on(0.0, 4, metric=8.0, target=1.0) == 8
    counts = [hpa.scale_on(t, 8, metric=2.0, target=1.0) for t in (15.0, 150.0, 285.0, 300.0)]
    assert counts == [8, 8, 8, 8]  # the proposal of 8 at t=0 is still in the window
    assert hpa.scale_on(315.0, 8, metric=2.0, target=1.0) == 2


def test_min_and_max_replicas_bound_every_decision() -> None:
    hpa = HorizontalPodAutoscaler(HpaConfig(min_replicas=2, max_replicas=5))
    assert hpa.scale_on(0.0, 3, metric=3.0, target=1.0) == 3
    assert hpa.scale_on(15.0, 3, metric=0.0, target=1.0) == 3  # stabilization: the count stays
    assert hpa.scale_on(400.0, 3, metric=0.0, target=1.0) == 2  # never below min_replicas
    assert hpa.scale_on(415.0, 2, metric=50.0, target=1.0) == 5


def test_kubernetes_default_behavior_decides_as_the_config_rules_do() -> None:
    rng = random.Random(7)
    plain = HorizontalPodAutoscaler(HpaConfig())
    explicit = HorizontalPodAutoscaler(HpaConfig(), HpaBehavior())
    a = b = 3
    for step in range(400):
        now = 15.0 * (step + 1)
        metric = rng.choice([0.0, 1.0, 5.0, 20.0, 60.0]) * rng.random()
        a = plain.scale_on(now, a, metric, target=2.0)
        b = explicit.scale_on(now, b, metric, target=2.0)
        assert a == b, f"diverged at {now}s"


def test_a_scale_up_window_applies_the_lowest_proposal_of_the_window() -> None:
    hpa = HorizontalPodAutoscaler(HpaConfig(), HpaBehavior(scale_up_stabilization_s=240.0,
                                                           scale_down_stabilization_s=240.0))
    current = hpa.decide(0.0, 2, 2)
    for t in range(15, 240, 15):
        current = hpa.decide(float(t), current, 3)
        assert current == 2, t  # the proposal of 2 at t=0 is still within the 240 s window
    assert hpa.decide(240.0 + 1e-6, current, 3) == 3


def test_a_pods_policy_counts_what_was_added_within_its_period() -> None:
    behavior = HpaBehavior(scale_up=(ScalingPolicy("Pods", 10, 150.0),))
    hpa = HorizontalPodAutoscaler(HpaConfig(), behavior)
    current = hpa.decide(0.0, 1, 50)
    assert current == 11
    for t in range(15, 150, 15):
        assert hpa.decide(float(t), current, 50) == 11, t  # ten pods already added in this 150 s
    assert hpa.decide(150.0, current, 50) == 21


def test_the_fleet_it_watched_before_the_run_is_not_dropped_at_the_first_sync() -> None:
    hpa = HorizontalPodAutoscaler(HpaConfig(scale_down_stabilization_s=300.0))
    assert hpa.scale_on(15.0, 4, metric=0.0, target=1.0) == 4  # nothing scraped yet: the metric reads 0
    assert hpa.scale_on(300.0, 4, metric=0.0, target=1.0) == 4
    assert hpa.scale_on(315.0, 4, metric=0.0, target=1.0) == 1
