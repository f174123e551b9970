"""The autoscaling policies the simulator compares, each as users run it today, plus llmobs' own and a
clairvoyant bound. `POLICIES` maps each key to its `PolicySpec`; docs/autoscaling-policies.md cites the
source of every rule and default. `load_test_capacity` is the one-replica load test that gives
`PolicyContext.capacity_rps` (Poisson arrivals at the traffic's length mix, bisected by `profile_capacity`)."""

from llmobs.simulate.policies import (
    aibrix_kpa,
    clairvoyant,
    dynamo_planner,
    keda_rate,
    keda_waiting,
    llmd_wva,
    llmobs_hybrid,
)
from llmobs.simulate.policies.base import PolicyContext, PolicySpec
from llmobs.simulate.policies.capacity import load_test_capacity, profile_capacity

POLICIES: dict[str, PolicySpec] = {
    spec.key: spec
    for spec in (
        keda_rate.SPEC,
        keda_waiting.SPEC,
        aibrix_kpa.SPEC,
        llmd_wva.SPEC,
        dynamo_planner.SPEC,
        llmobs_hybrid.SPEC,
        clairvoyant.SPEC,
    )
}

__all__ = ["POLICIES", "PolicyContext", "PolicySpec", "load_test_capacity", "profile_capacity"]
