"""Replica recommendation: forecast demand → how many replicas to ask for now.

desired = max(reactive floor, ceil(forecast upper quantile at t + cold start ÷ (capacity per replica ×
target utilization)), what the current load needs at full capacity), clamped to [min, max], and held up
by a scale-down stabilization window (the highest recommendation of the last window wins, as in HPA),
so that a dip in the forecast does not throw away replicas that take minutes to come back.

The reactive floor is ceil(current ÷ (capacity × `floor_utilization`)): what KEDA on the request rate
would ask for at its own target (0.8), never at the forecast's tuned `target_utilization`, so tuning the
forecast's headroom for cost cannot remove it. When the forecast is not trusted (the data-quality guard,
llmobs.forecast.guard), the forecast term is left out and the floor alone decides.

Capacity per replica is configured, or learned from observed throughput at the latency SLO
(`learn_capacity_per_replica`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from llmobs.forecast.errors import ForecastInputError


def replicas_for(demand: float, capacity_per_replica: float, utilization: float = 1.0) -> int:
    """Replicas needed to serve `demand` with each replica loaded to `utilization` of its capacity."""
    if not math.isfinite(demand) or demand <= 0:
        return 0
    return math.ceil(demand / (capacity_per_replica * utilization) - 1e-9)


@dataclass(frozen=True, slots=True)
class ReplicaPolicy:
    """The knobs of the recommendation; validated so that an absurd value fails loudly, not silently."""

    capacity_per_replica: float  # requests/s one replica serves within the latency SLO
    target_utilization: float = 0.8  # headroom: plan each replica to this share of its capacity
    min_replicas: int = 1
    max_replicas: int = 1000
    scale_down_stabilization_s: float = 300.0
    floor_utilization: float = 0.8  # the reactive floor's target (KEDA's), independent of the forecast's

    def __post_init__(self) -> None:
        if not math.isfinite(self.capacity_per_replica) or self.capacity_per_replica <= 0:
            raise ForecastInputError(
                f"capacity per replica must be a positive number of requests/s, got {self.capacity_per_replica}"
            )
        if self.capacity_per_replica > 1e6:
            raise ForecastInputError(f"capacity per replica {self.capacity_per_replica} req/s is not plausible")
        if not 0 < self.target_utilization <= 2:
            raise ForecastInputError(f"target utilization {self.target_utilization} must be in (0, 2]")
        if not 0 < self.floor_utilization <= 1:
            raise ForecastInputError(f"floor utilization {self.floor_utilization} must be in (0, 1]")
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ForecastInputError(
                f"replica bounds min={self.min_replicas} max={self.max_replicas} are inconsistent"
            )
        if self.scale_down_stabilization_s < 0:
            raise ForecastInputError("scale-down stabilization window must be ≥ 0 s")


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What the recommender says now, and why (which term won)."""

    desired: int
    from_forecast: int
    from_current: int
    stabilized: bool
    from_floor: int = 0
    trusted: bool = True


class ReplicaRecommender:
    """Stateful: remembers its recent raw recommendations for the scale-down stabilization window."""

    def __init__(self, policy: ReplicaPolicy) -> None:
        self.policy = policy
        self._recent: deque[tuple[float, int]] = deque()

    def recommend(
        self, now: float, forecast_upper: float, current_demand: float, *, trusted: bool = True
    ) -> Recommendation:
        """Desired replicas at time `now` (seconds) from the forecast upper quantile and current demand;
        with `trusted` False the forecast is ignored and the reactive floor alone decides."""
        p = self.policy
        f = replicas_for(forecast_upper, p.capacity_per_replica, p.target_utilization) if trusted else 0
        c = replicas_for(current_demand, p.capacity_per_replica)
        floor = replicas_for(current_demand, p.capacity_per_replica, p.floor_utilization)
        raw = min(p.max_replicas, max(p.min_replicas, f, c, floor))
        self._recent.append((now, raw))
        while self._recent and self._recent[0][0] < now - p.scale_down_stabilization_s:
            self._recent.popleft()
        desired = max(r for _, r in self._recent)
        return Recommendation(desired=desired, from_forecast=f, from_current=c, stabilized=desired > raw,
                              from_floor=floor, trusted=trusted)


def learn_capacity_per_replica(
    observations: Iterable[tuple[float, float, float]],
    latency_slo_s: float,
    *,
    quantile: float = 0.9,
    min_points: int = 10,
) -> float:
    """Requests/s one replica sustains within the SLO, from (request_rate, replicas, latency_s) points.

    Keeps the points whose latency met the SLO and returns a high quantile of the per-replica
    throughput among them: the load replicas have been seen to carry without breaking the SLO.
    Points at low load say little about the limit, so this is a lower bound until the fleet has been
    busy; raise `ForecastInputError` when there are too few points to say anything.
    """
    per_replica = []
    for rate, replicas, latency in observations:
        if replicas > 0 and rate > 0 and math.isfinite(latency) and latency <= latency_slo_s:
            per_replica.append(rate / replicas)
    if len(per_replica) < min_points:
        raise ForecastInputError(
            f"only {len(per_replica)} observations within the {latency_slo_s}s SLO (need {min_points}) "
            "to learn capacity per replica; configure it instead"
        )
    return float(np.quantile(per_replica, quantile))
