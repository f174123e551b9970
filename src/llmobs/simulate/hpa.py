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
"""

from __future__ import annotations

import math
from collections import deque

from llmobs.forecast.replay import HpaConfig, replicas_needed


def hpa_proposal(metric: float, target: float, current: int, tolerance: float) -> int:
    """The HPA's AverageValue proposal for the fleet-wide `metric` at a per-replica `target`."""
    if not math.isfinite(metric):
        return current  # no metric: the HPA keeps the count (its "failed to get metric" path)
    if current > 0 and abs(metric / (target * current) - 1.0) <= tolerance:
        return current
    return replicas_needed(metric, target)


class HorizontalPodAutoscaler:
    """Turns proposals into replica counts with the HPA's stabilization and rate limits (one per policy run:
    it remembers the proposals of the stabilization window)."""

    def __init__(self, config: HpaConfig | None = None) -> None:
        self.config = config or HpaConfig()
        self._proposals: deque[tuple[float, int]] = deque()

    def decide(self, now: float, current: int, proposal: int) -> int:
        """The replica count the HPA sets at `now` when `current` pods exist and the metric proposes `proposal`."""
        hpa = self.config
        self._proposals.append((now, proposal))
        while self._proposals and self._proposals[0][0] < now - hpa.scale_down_stabilization_s:
            self._proposals.popleft()
        desired = min(current, max(p for _, p in self._proposals)) if proposal < current else proposal
        periods = max(1.0, hpa.polling_interval_s / 15.0)
        up_limit = max(current * (1 + hpa.scale_up_percent / 100.0), current + hpa.scale_up_pods)
        desired = min(desired, math.floor(current + (up_limit - current) * periods))
        return max(hpa.min_replicas, min(hpa.max_replicas, desired))

    def scale_on(self, now: float, current: int, metric: float, target: float) -> int:
        """One HPA sync on an AverageValue external metric: proposal, then `decide`."""
        return self.decide(now, current, hpa_proposal(metric, target, current, self.config.tolerance))
