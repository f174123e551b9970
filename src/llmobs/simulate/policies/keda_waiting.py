"""KEDA on `vllm:num_requests_waiting`: the vLLM production-stack's documented autoscaling recipe.

The production-stack tutorial (tutorials/20-keda-autoscaling.md, tutorials/assets/keda-scaled-object.yaml)
and its Helm chart's `keda:` values (docs/source/use_cases/autoscaling-keda.rst) deploy a ScaledObject
with one `prometheus` trigger, `query: vllm:num_requests_waiting`, `threshold: '5'`, `pollingInterval: 15`,
`cooldownPeriod: 360`, min 1 replica. KEDA hands the query's value to the HPA as an AverageValue external
metric, so the HPA proposes ceil(total waiting ÷ threshold) replicas. The metric here is the sum of every
scraped replica's waiting requests (the query's value once a `sum()` makes it one series, as it must be
with more than one replica); with no replica scraped yet the query has no result and KEDA's
`ignoreNullValues` (default true) reads 0. `cooldownPeriod` only governs KEDA's 1 → 0 step, which no
policy here takes (min 1), so scale-down is the HPA's 300 s stabilization. The knob is the threshold.
"""

from __future__ import annotations

import math

from llmobs.simulate.control import Controller, ControlView
from llmobs.simulate.hpa import HorizontalPodAutoscaler
from llmobs.simulate.policies.base import PolicyContext, PolicySpec

DOCUMENTED_THRESHOLD = 5.0
THRESHOLDS = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 32.0)


def total_waiting(view: ControlView) -> float:
    """Waiting requests summed over the scraped replicas; a replica whose gauge is unreadable adds 0, as
    a missing series adds nothing to a Prometheus sum."""
    return float(sum(load.waiting for load in view.loads if math.isfinite(load.waiting) and load.waiting > 0))


def build(threshold: float, context: PolicyContext) -> Controller:
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"waiting threshold must be > 0 requests per replica, not {threshold!r}")
    hpa = HorizontalPodAutoscaler(context.hpa)

    def control(view: ControlView) -> int | None:
        return hpa.scale_on(view.now, view.current, total_waiting(view), threshold)

    return control


SPEC = PolicySpec(
    key="keda-waiting",
    label="KEDA on vllm:num_requests_waiting (production-stack)",
    knob="threshold (waiting requests per replica)",
    source="vllm-project/production-stack tutorials/20-keda-autoscaling.md + tutorials/assets/"
           "keda-scaled-object.yaml (query vllm:num_requests_waiting, threshold 5, pollingInterval 15)",
    grid=lambda c: THRESHOLDS,  # generous (any queue scales) to cheap (a long queue per replica)
    default=lambda c: DOCUMENTED_THRESHOLD,
    build=build,
)
