"""KEDA on request rate: today's reactive scaling (a Prometheus trigger on the arrival rate, AverageValue).

A ScaledObject with a `prometheus` trigger whose query is the rate of requests at the door (the router's
request counter, `rate(...[1m])`) and whose `threshold` is the requests per second one replica should carry;
KEDA hands it to the HPA as an AverageValue external metric. The knob users tune is that threshold; they
usually set it to a fraction of what a load test showed one replica sustains, so the grid is expressed in
multiples of the profiled capacity.
"""

from __future__ import annotations

from llmobs.simulate.control import Controller, ControlView
from llmobs.simulate.hpa import HorizontalPodAutoscaler
from llmobs.simulate.policies.base import PolicyContext, PolicySpec

SHARES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)


def build(threshold_rps: float, context: PolicyContext) -> Controller:
    hpa = HorizontalPodAutoscaler(context.hpa)

    def control(view: ControlView) -> int | None:
        return hpa.scale_on(view.now, view.current, view.door_rate, threshold_rps)

    return control


SPEC = PolicySpec(
    key="keda-rate",
    label="KEDA on request rate",
    knob="threshold (requests/s per replica)",
    source="KEDA prometheus scaler, AverageValue target (keda.sh/docs/latest/scalers/prometheus/)",
    grid=lambda c: tuple(round(c.capacity_rps * s, 4) for s in SHARES),
    default=lambda c: c.capacity_rps * 0.8,
    build=build,
)
