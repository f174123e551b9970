"""llm-d's workload-variant-autoscaler (WVA), saturation-based mode, as its Helm chart deploys it.

The WVA controller computes a desired replica count and publishes it as the `wva_desired_replicas` gauge;
an HPA reads it as an External metric with an AverageValue target of 1, so the HPA's proposal is the WVA's
number (within the HPA's 10 % tolerance) and the HPA's `behavior` decides when it is applied. Rules, read
in llm-d/llm-d-workload-variant-autoscaler:

* every 30 s (internal/engines/saturation/engine.go: the polling executor's `Interval`), per replica, the
  peak KV-cache usage and waiting queue of the last minute (internal/collector/registration/saturation.go:
  `max_over_time(...[1m])`);
* a replica is saturated when KV usage ≥ `kvCacheThreshold` (0.80) or waiting ≥ `queueLengthThreshold`
  (5); the spare capacity of the others is threshold − usage, averaged over non-saturated replicas
  (internal/saturation/analyzer.go `analyzeVariant`; defaults in deploy/configmap-saturation-scaling.yaml
  and docs/saturation-scaling-config.md);
* scale up by one replica when the average spare KV < `kvSpareTrigger` (0.10) or the average spare queue <
  `queueSpareTrigger` (3) (`shouldScaleUp`); with no non-saturated replica both averages are 0, so it
  scales up;
* scale down by one only when safe: ≥ 2 non-saturated replicas and, with their load spread over one fewer,
  both spares still ≥ their triggers (`isScaleDownSafe`, `MinNonSaturatedReplicasForScaleDown`);
* no decision while the model is in transition: the previous desired count is not yet the current count,
  or fewer replicas report metrics than exist (pods starting) — the target stays as it was
  (`CalculateSaturationTargets`); the base target is the count of replicas reporting metrics;
* the chart's HPA (charts/workload-variant-autoscaler/values.yaml `hpa:`, templates/hpa.yaml): target
  AverageValue 1, min 1, scale-up and scale-down stabilization 240 s, each limited to 10 pods per 150 s.

The knob is `kvSpareTrigger`, the threshold WVA's documentation explains first; its sweep is expressed
against the KV share a replica fills at its profiled capacity (see `kv_spare_triggers`). Simplified: one variant
(no cost ordering, no GPU limiter); the engine runs on the first sync at or after each 30 s mark.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from llmobs.simulate.control import Controller, ControlView, ReplicaLoad
from llmobs.simulate.hpa import HorizontalPodAutoscaler, HpaBehavior, ScalingPolicy
from llmobs.simulate.policies.base import PolicyContext, PolicySpec
from llmobs.simulate.policies.capacity import kv_usage_at_capacity

ENGINE_INTERVAL_S = 30.0
PEAK_WINDOW_S = 60.0
MIN_NON_SATURATED_FOR_SCALE_DOWN = 2
CHART_HPA = HpaBehavior(
    scale_up_stabilization_s=240.0, scale_down_stabilization_s=240.0,
    scale_up=(ScalingPolicy("Pods", 10, 150.0),), scale_down=(ScalingPolicy("Pods", 10, 150.0),))
SHARES = (1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2)  # scale up past this share of the KV filled at capacity


def kv_spare_triggers(context: PolicyContext) -> tuple[float, ...]:
    """The sweep: triggers that start a scale-up once the average KV usage passes 1.2 … 0.2 × what a
    replica fills at its profiled capacity (KV usage depends on the GPU's memory, so a fixed list of
    triggers would never fire on a large cache), plus the documented 0.10; each within (0, threshold)."""
    config = SaturationConfig()
    at_capacity = min(0.6, max(0.05, kv_usage_at_capacity(context)))  # keep the sweep's values distinct
    top = config.kv_cache_threshold
    values = {round(min(top - 0.01, max(0.01, top - share * at_capacity)), 3) for share in SHARES}
    return tuple(sorted(values | {config.kv_spare_trigger}))


@dataclass(frozen=True, slots=True)
class SaturationConfig:
    """The WVA ConfigMap's `default` entry."""

    kv_cache_threshold: float = 0.80
    queue_length_threshold: float = 5.0
    kv_spare_trigger: float = 0.10
    queue_spare_trigger: float = 3.0

    def __post_init__(self) -> None:
        if not 0 <= self.kv_spare_trigger <= 1 or not 0 <= self.kv_cache_threshold <= 1:
            raise ValueError("kvCacheThreshold and kvSpareTrigger must be between 0 and 1 (WVA's validation)")


@dataclass(frozen=True, slots=True)
class SaturationAnalysis:
    non_saturated: int
    avg_spare_kv: float
    avg_spare_queue: float
    scale_up: bool
    scale_down_safe: bool


def analyze(peaks: list[tuple[float, float]], config: SaturationConfig) -> SaturationAnalysis:
    """WVA's saturation analysis of (peak KV usage, peak waiting) per replica."""
    spare_kv: list[float] = []
    spare_queue: list[float] = []
    for kv, waiting in peaks:
        if kv >= config.kv_cache_threshold or waiting >= config.queue_length_threshold:
            continue
        spare_kv.append(config.kv_cache_threshold - kv)
        spare_queue.append(config.queue_length_threshold - waiting)
    n = len(spare_kv)
    avg_kv = sum(spare_kv) / n if n else 0.0
    avg_queue = sum(spare_queue) / n if n else 0.0
    scale_up = avg_kv < config.kv_spare_trigger or avg_queue < config.queue_spare_trigger
    safe = False
    if n >= MIN_NON_SATURATED_FOR_SCALE_DOWN:
        grow = n / (n - 1)
        kv_after = config.kv_cache_threshold - (config.kv_cache_threshold - avg_kv) * grow
        queue_after = config.queue_length_threshold - (config.queue_length_threshold - avg_queue) * grow
        safe = kv_after >= config.kv_spare_trigger and queue_after >= config.queue_spare_trigger
    return SaturationAnalysis(n, avg_kv, avg_queue, scale_up, safe)


class WvaController:
    """The WVA saturation engine for one variant: its peak window, its last published desired count."""

    def __init__(self, config: SaturationConfig) -> None:
        self.config = config
        self.desired = 0  # what wva_desired_replicas shows; 0 = not published yet
        self._history: deque[tuple[float, tuple[ReplicaLoad, ...]]] = deque()
        self._next_run = 0.0

    def _peaks(self, now: float, loads: tuple[ReplicaLoad, ...]) -> list[tuple[float, float]]:
        """Per replica, the peak of the last minute's scrapes (views with the same replica count only:
        a changed fleet has no comparable history, and WVA is in transition then anyway)."""
        self._history.append((now, loads))
        while self._history and self._history[0][0] <= now - PEAK_WINDOW_S:
            self._history.popleft()
        same = [past for _, past in self._history if len(past) == len(loads)]
        peaks = []
        for i in range(len(loads)):
            kv = [p[i].kv_usage for p in same if math.isfinite(p[i].kv_usage)]
            waiting = [p[i].waiting for p in same if math.isfinite(p[i].waiting)]
            if kv and waiting:
                peaks.append((max(kv), max(waiting)))
        return peaks

    def step(self, view: ControlView) -> int:
        """The desired count published at this sync (recomputed every 30 s, held in between)."""
        peaks = self._peaks(view.now, view.loads)
        if view.now + 1e-9 < self._next_run:
            return self.desired
        self._next_run = view.now + ENGINE_INTERVAL_S
        current = view.current
        reporting = len(peaks)
        if (self.desired and self.desired != current) or reporting != current or not peaks:
            if not self.desired:
                self.desired = current
            return self.desired  # model in transition: keep the published target
        analysis = analyze(peaks, self.config)
        if analysis.scale_up:
            self.desired = reporting + 1
        elif analysis.scale_down_safe and reporting > 1:
            self.desired = reporting - 1
        else:
            self.desired = reporting
        return self.desired


def build(kv_spare_trigger: float, context: PolicyContext) -> Controller:
    wva = WvaController(SaturationConfig(kv_spare_trigger=kv_spare_trigger))
    hpa = HorizontalPodAutoscaler(context.hpa, CHART_HPA)

    def control(view: ControlView) -> int | None:
        return hpa.scale_on(view.now, view.current, float(wva.step(view)), 1.0)

    return control


SPEC = PolicySpec(
    key="llmd-wva",
    label="llm-d WVA (saturation, via HPA)",
    knob="kvSpareTrigger (average spare KV fraction that triggers +1 replica)",
    source="llm-d/llm-d-workload-variant-autoscaler internal/saturation/analyzer.go, "
           "deploy/configmap-saturation-scaling.yaml, charts/workload-variant-autoscaler/values.yaml (hpa)",
    grid=kv_spare_triggers,
    default=lambda c: SaturationConfig().kv_spare_trigger,
    build=build,
)
