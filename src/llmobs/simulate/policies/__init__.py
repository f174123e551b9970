"""The autoscaling policies the simulator compares, each as users run it today, plus llmobs' own and a
clairvoyant bound. `POLICIES` maps each key to its `PolicySpec`; docs/autoscaling-policies.md cites the
source of every rule and default."""

from llmobs.simulate.policies import keda_rate
from llmobs.simulate.policies.base import PolicyContext, PolicySpec

POLICIES: dict[str, PolicySpec] = {spec.key: spec for spec in (keda_rate.SPEC,)}

__all__ = ["POLICIES", "PolicyContext", "PolicySpec"]
