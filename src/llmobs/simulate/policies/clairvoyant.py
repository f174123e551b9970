"""The clairvoyant bound: knows every future arrival and its lengths, and sets the fleet a cold start ahead.

Not a policy anyone can run — a reference for how few GPU-hours the SLO needs when the only limit is the
cold start. At each sync it wants, for every minute of the next cold start + sync interval, enough
replicas for the GPU work arriving in that minute (each request's `capacity.request_work_s`, at its own
lengths) at `margin` × a replica's work at the profiled capacity; it asks for the most any of those
minutes — and the minute just past, whose requests are still decoding — need, so a replica is added in
time for the first minute that needs it and kept until no minute within reach needs it. It sets replicas
directly (no HPA: the HPA's delays are part of what is compared).

`context.future` must be the workload being simulated, on the simulator's clock.
"""

from __future__ import annotations

import math

import numpy as np

from llmobs.simulate.control import Controller, ControlView
from llmobs.simulate.policies.base import PolicyContext, PolicySpec
from llmobs.simulate.policies.capacity import reference_lengths, request_work_s

BUCKET_S = 15.0
DEMAND_WINDOW_S = 60.0
MARGINS = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)


def replicas_needed_per_bucket(context: PolicyContext, margin: float) -> np.ndarray:
    """Replicas needed at each 15 s instant for the work arriving in the following minute."""
    future = context.future
    if future is None:
        raise ValueError("the clairvoyant policy needs context.future (the workload being simulated)")
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be > 0, not {margin!r}")
    profile = context.fleet.profile
    prompt, output = reference_lengths(context)
    per_replica = context.capacity_rps * float(request_work_s(prompt, output, profile)) * margin
    if not len(future):
        return np.zeros(1, dtype=int)
    work = np.asarray(request_work_s(future.prompt.astype(float), future.output.astype(float), profile))
    bucket = np.floor(future.arrival / BUCKET_S).astype(int)
    per_bucket = np.bincount(bucket, weights=work)
    span = int(DEMAND_WINDOW_S / BUCKET_S)
    padded = np.concatenate([per_bucket, np.zeros(span)])
    window = np.convolve(padded, np.ones(span), mode="valid")[: len(per_bucket)]  # [k, k + span) buckets
    return np.ceil(window / DEMAND_WINDOW_S / per_replica - 1e-9).astype(int)


def build(margin: float, context: PolicyContext) -> Controller:
    need = replicas_needed_per_bucket(context, margin)
    reach = context.fleet.cold_start_s + context.fleet.sync_interval_s
    low, high = context.hpa.min_replicas, context.hpa.max_replicas

    def control(view: ControlView) -> int | None:
        first = int((view.now - DEMAND_WINDOW_S) // BUCKET_S)  # the last minute's requests are still running
        last = int((view.now + reach) // BUCKET_S)
        ahead = need[max(0, first): max(0, last + 1)]
        wanted = int(ahead.max()) if ahead.size else 0
        return max(low, min(high, wanted))

    return control


SPEC = PolicySpec(
    key="clairvoyant",
    label="Clairvoyant (knows the future; a bound)",
    knob="margin (share of profiled capacity planned with)",
    source="this project: a bound, not a deployed policy",
    grid=lambda c: MARGINS,
    default=lambda c: 0.9,
    build=build,
    clairvoyant=True,
)
