"""AIBrix KPA: the Knative-style pod autoscaler of vLLM's AIBrix, with its own algorithm (not the HPA).

AIBrix's PodAutoscaler controller scales the Deployment itself (strategy `KPA`); it runs on the simulator's
sync instants and cold-start model like every policy, but none of the HPA's rules apply. What is modelled,
each rule read in vllm-project/aibrix (pkg/controller/podautoscaler/):

* metric: per-pod concurrency (running + waiting), the Knative KPA's metric; the knob is its
  `targetValue` per pod. Each sync records the fleet's concurrency; the stable value is its mean over the
  stable window (`observeWindowSeconds`, default 180 s) and the panic value its mean over the panic window
  (`panicWindowSeconds`, default 60 s) (metrics/client.go `DefaultStableWindowDuration`,
  `DefaultPanicWindowDuration`; docs/source/features/autoscaling/metric-based-autoscaling.rst);
* panic mode when panic ÷ stable > `PanicThreshold` (2.0), or when the stable value is 0
  (algorithm/kpa.go `shouldEnterPanicMode`; context/context.go `NewBaseScalingContext`);
* desired pods from each value = ceil(value ÷ target), unless the per-pod value is within the up/down
  fluctuation tolerance (10 % each) of the target, then the current count; each clamped to
  [floor(current ÷ MaxScaleDownRate), max(1, ceil(MaxScaleUpRate × current))] with both rates 2.0
  (kpa.go `computeTargetReplicas`); in panic mode the larger of the stable and panic counts, else the
  stable one;
* the controller's cooldown (podautoscaler_controller.go `stabilizeRecommendation`): scale-up window 0 s,
  scale-down window 300 s in which a lower recommendation is replaced by the lowest of the window's
  recommendations; then min/max replicas.

Where AIBrix's code and its intent differ, the code wins, and the two places are stated: (1) its metrics
client records the mean over pods at each scrape while `computeTargetReplicas` divides the value by the
per-pod target as Knative divides the fleet total (its unit tests pass totals); here the total is divided,
and the tolerance compares the per-pod mean with the target, the reading under which both rules make
sense. (2) kpa.go's comment says panic mode never scales down, but the scaling context is built afresh at
every reconcile and the base context's `GetMaxPanicPods` returns 0, so no panic high-water mark survives a
sync: in panic mode the count follows max(stable, panic) down as well as up. AIBrix syncs every 10 s
(`DefaultResyncInterval`); here, at the simulator's 15 s.
"""

from __future__ import annotations

import math
from collections import deque

from llmobs.simulate.control import Controller, ControlView
from llmobs.simulate.policies.base import PolicyContext, PolicySpec
from llmobs.simulate.policies.capacity import concurrency_at_capacity

STABLE_WINDOW_S = 180.0
PANIC_WINDOW_S = 60.0
PANIC_THRESHOLD = 2.0
MAX_SCALE_UP_RATE = 2.0
MAX_SCALE_DOWN_RATE = 2.0
TOLERANCE = 0.1
SCALE_DOWN_COOLDOWN_S = 300.0
SHARES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2)  # of a replica's concurrency at its profiled capacity


def fleet_concurrency(view: ControlView) -> float | None:
    """Running + waiting summed over the scraped replicas; None when no replica reported a usable value."""
    values = [load.concurrency for load in view.loads if math.isfinite(load.concurrency)]
    return float(sum(values)) if values else None


class KpaAutoscaler:
    """One AIBrix KPA PodAutoscaler: its metric windows and its recommendation history."""

    def __init__(self, target: float, min_replicas: int = 1, max_replicas: int = 10_000) -> None:
        if not (math.isfinite(target) and target > 0):
            raise ValueError(f"KPA target concurrency must be > 0 per pod, not {target!r}")
        self.target = target
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self._samples: deque[tuple[float, float]] = deque()
        self._recommendations: deque[tuple[float, int]] = deque()
        self.in_panic = False

    def _window_mean(self, now: float, window: float) -> float:
        values = [v for t, v in self._samples if t > now - window]
        return sum(values) / len(values)

    def _pods_for(self, value: float, current: int) -> int:
        per_pod = value / max(1, current)
        if self.target * (1 - TOLERANCE) <= per_pod <= self.target * (1 + TOLERANCE):
            wanted = current
        else:
            wanted = math.ceil(value / self.target - 1e-9)
        most = max(1, math.ceil(MAX_SCALE_UP_RATE * current))
        least = math.floor(current / MAX_SCALE_DOWN_RATE)
        return min(max(wanted, least), most)

    def recommend(self, now: float, current: int, concurrency: float | None) -> int:
        """The algorithm's recommendation, before the controller's cooldown."""
        if concurrency is not None:
            self._samples.append((now, concurrency))
        while self._samples and self._samples[0][0] <= now - STABLE_WINDOW_S:
            self._samples.popleft()
        if not self._samples:
            return current  # no metric yet: AIBrix reports an error and leaves the count as it is
        stable = self._window_mean(now, STABLE_WINDOW_S)
        panic = self._window_mean(now, PANIC_WINDOW_S) if any(
            t > now - PANIC_WINDOW_S for t, _ in self._samples) else stable
        self.in_panic = stable <= 0 or panic / stable > PANIC_THRESHOLD
        desired = self._pods_for(stable, current)
        if self.in_panic:
            desired = max(desired, self._pods_for(panic, current))
        return desired

    def decide(self, now: float, current: int, concurrency: float | None) -> int:
        """Recommendation, cooldown (scale-down: lowest recommendation of the last 300 s), min/max."""
        recommendation = self.recommend(now, current, concurrency)
        self._recommendations.append((now, recommendation))
        while self._recommendations and self._recommendations[0][0] <= now - SCALE_DOWN_COOLDOWN_S:
            self._recommendations.popleft()
        desired = recommendation
        if recommendation < current:
            desired = min(r for _, r in self._recommendations)
        return max(self.min_replicas, min(self.max_replicas, desired))


def build(target: float, context: PolicyContext) -> Controller:
    kpa = KpaAutoscaler(target, context.hpa.min_replicas, context.hpa.max_replicas)

    def control(view: ControlView) -> int | None:
        return kpa.decide(view.now, view.current, fleet_concurrency(view))

    return control


SPEC = PolicySpec(
    key="aibrix-kpa",
    label="AIBrix KPA (Knative-style, concurrency)",
    knob="target concurrency per pod (running + waiting)",
    source="vllm-project/aibrix pkg/controller/podautoscaler/algorithm/kpa.go, context/context.go, "
           "metrics/client.go, podautoscaler_controller.go (stabilizeRecommendation)",
    grid=lambda c: tuple(float(f"{concurrency_at_capacity(c) * s:.3g}") for s in SHARES),
    default=lambda c: float(f"{concurrency_at_capacity(c) * 0.8:.3g}"),
    build=build,
)
