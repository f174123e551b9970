"""The Kubernetes HPA's replica calculation, as KEDA drives it, on virtual time.

Every KEDA-based policy (and llmobs' own, which reaches a cluster through KEDA too) proposes a replica count
from one external metric with an `AverageValue` target; the HPA then decides. The rules are the ones
`llmobs.forecast.replay` models for the fluid replay, with the same `HpaConfig` (Kubernetes' defaults):

* proposal = ceil(metric ÷ target) unless |metric ÷ (target × current) − 1| ≤ tolerance (10 %), where
  current is the spec replica count (ready + starting: an AverageValue external metric divides by it);
* scale-up limited to max(+100 %, +4 pods) per 15 s period;
* scale-down stabilization: a lower proposal only lowers the count to the highest proposal of the last
  300 s (`scale_down_stabilization_s`), never raises it;
* min/max replicas. (KEDA's activation 0 ↔ 1 is not modelled: every policy here keeps ≥ min_replicas.)

The HPA is taken to have watched the fleet steady at its initial count before the run: that count counts
as a proposal of the first sync for the stabilization windows, so a metric that reads 0 before the first
replica is scraped does not empty the fleet at once (`llmobs.forecast.replay` starts its fleet at what the
first demand needs instead).

A ScaledObject or HPA may set its own `behavior` (autoscaling/v2 `HorizontalPodAutoscalerBehavior`); the
llm-d WVA Helm chart does. `HpaBehavior` models it as the HPA controller applies it
(`stabilizeRecommendationWithBehaviors` and `convertDesiredReplicasWithBehaviorRate` in
kubernetes/pkg/controller/podautoscaler/horizontal.go): the count moves towards the proposal only as far
as the lowest proposal of the scale-up window and the highest of the scale-down window allow, and each
direction is limited by its policies over their periods, counting the pods already changed in the period
(`selectPolicy: Max`: the most permissive policy wins).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from llmobs.forecast.replay import HpaConfig, replicas_needed


def hpa_proposal(metric: float, target: float, current: int, tolerance: float) -> int:
    """The HPA's AverageValue proposal for the fleet-wide `metric` at a per-replica `target`."""
    if not math.isfinite(metric):
        return current  # no metric: the HPA keeps the count (its "failed to get metric" path)
    if current > 0 and abs(metric / (target * current) - 1.0) <= tolerance:
        return current
    return replicas_needed(metric, target)


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """One autoscaling/v2 `HPAScalingPolicy`: at most `value` pods (`kind="Pods"`) or `value` % of the
    count at the start of the period (`kind="Percent"`) changed per `period_s`."""

    kind: str
    value: float
    period_s: float

    def __post_init__(self) -> None:
        if self.kind not in ("Pods", "Percent") or not self.value > 0 or not self.period_s > 0:
            raise ValueError(f"scaling policy {self.kind} {self.value} per {self.period_s}s: use Pods or "
                             "Percent with a positive value and period")


@dataclass(frozen=True, slots=True)
class HpaBehavior:
    """An HPA's `behavior` section. Kubernetes' defaults: scale-up window 0 s with 4 pods or 100 % per
    15 s; scale-down window 300 s with 100 % per 15 s."""

    scale_up_stabilization_s: float = 0.0
    scale_down_stabilization_s: float = 300.0
    scale_up: tuple[ScalingPolicy, ...] = (ScalingPolicy("Pods", 4, 15.0), ScalingPolicy("Percent", 100, 15.0))
    scale_down: tuple[ScalingPolicy, ...] = (ScalingPolicy("Percent", 100, 15.0),)


class HorizontalPodAutoscaler:
    """Turns proposals into replica counts with the HPA's stabilization and rate limits (one per policy run:
    it remembers the proposals of the stabilization window).

    Without `behavior` it applies `HpaConfig`'s rules exactly as `llmobs.forecast.replay` does; with one,
    the behavior's windows and policies (see the module docstring)."""

    def __init__(self, config: HpaConfig | None = None, behavior: HpaBehavior | None = None) -> None:
        self.config = config or HpaConfig()
        self.behavior = behavior
        self._proposals: deque[tuple[float, int]] = deque()
        self._events: deque[tuple[float, int]] = deque()  # (time, replicas added (+) or removed (−))
        # The HPA existed before the run, watching the fleet steady at its first count: that count stands as
        # a proposal for the windows that reach back past the first sync (a fresh HPA would act at once).
        self._steady: tuple[float, int] | None = None

    def decide(self, now: float, current: int, proposal: int) -> int:
        """The replica count the HPA sets at `now` when `current` pods exist and the metric proposes `proposal`."""
        if self.behavior is not None:
            return self._decide_with_behavior(now, current, proposal, self.behavior)
        hpa = self.config
        if self._steady is None:
            self._steady = (now, current)
        self._proposals.append((now, proposal))
        while self._proposals and self._proposals[0][0] < now - hpa.scale_down_stabilization_s:
            self._proposals.popleft()
        highest = max(p for _, p in self._proposals)
        if self._steady[0] > now - hpa.scale_down_stabilization_s:
            highest = max(highest, self._steady[1])
        desired = min(current, highest) if proposal < current else proposal
        periods = max(1.0, hpa.polling_interval_s / 15.0)
        up_limit = max(current * (1 + hpa.scale_up_percent / 100.0), current + hpa.scale_up_pods)
        desired = min(desired, math.floor(current + (up_limit - current) * periods))
        return max(hpa.min_replicas, min(hpa.max_replicas, desired))

    def scale_on(self, now: float, current: int, metric: float, target: float) -> int:
        """One HPA sync on an AverageValue external metric: proposal, then `decide`."""
        return self.decide(now, current, hpa_proposal(metric, target, current, self.config.tolerance))

    def _decide_with_behavior(self, now: float, current: int, proposal: int, b: HpaBehavior) -> int:
        hpa = self.config
        proposal = max(hpa.min_replicas, min(hpa.max_replicas, proposal))
        self._proposals.append((now, proposal))
        keep = max(b.scale_up_stabilization_s, b.scale_down_stabilization_s)
        while self._proposals and self._proposals[0][0] < now - keep:
            self._proposals.popleft()
        if self._steady is None:
            self._steady = (now, current)
        up = min(p for t, p in self._proposals if t >= now - b.scale_up_stabilization_s)
        if b.scale_up_stabilization_s > 0 and self._steady[0] > now - b.scale_up_stabilization_s:
            up = min(up, self._steady[1])
        down = max(p for t, p in self._proposals if t >= now - b.scale_down_stabilization_s)
        if b.scale_down_stabilization_s > 0 and self._steady[0] > now - b.scale_down_stabilization_s:
            down = max(down, self._steady[1])
        desired = min(max(current, up), down)
        longest = max((p.period_s for p in (*b.scale_up, *b.scale_down)), default=15.0)
        while self._events and self._events[0][0] <= now - longest:
            self._events.popleft()
        if desired > current:
            desired = min(desired, self._limit(now, current, b.scale_up, up=True))
        elif desired < current:
            desired = max(desired, self._limit(now, current, b.scale_down, up=False))
        desired = max(hpa.min_replicas, min(hpa.max_replicas, desired))
        if desired != current:
            self._events.append((now, desired - current))
        return desired

    def _limit(self, now: float, current: int, policies: tuple[ScalingPolicy, ...], up: bool) -> int:
        """The furthest the count may move this sync: the most permissive policy (`selectPolicy: Max`)."""
        bounds = []
        for policy in policies:
            changed = sum(d for t, d in self._events if t > now - policy.period_s and (d > 0) == up)
            start = current - changed  # the count at the start of the period
            if policy.kind == "Pods":
                bound = start + policy.value if up else start - policy.value
            else:
                bound = start * (1 + policy.value / 100) if up else start * (1 - policy.value / 100)
            bounds.append(math.ceil(bound - 1e-9) if up else math.floor(bound + 1e-9))
        if not bounds:
            return current
        return max(bounds) if up else min(bounds)
