"""What one replica serves within the SLO, measured the way a user measures it before deploying.

`profile_capacity` is the load test (NVIDIA Dynamo's pre-deployment profiling does the same job with its
sweeps): one replica, no autoscaler, the workload's own requests replayed faster and faster, and a bisection
for the highest arrival rate at which ≥ 99 % of requests meet both SLOs. The other helpers turn that one
number into what a token-aware policy needs: the GPU work of a request (from the step profile), and the
number of requests a replica holds at a given rate (Little's law over the profile's decode step).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.fleet import FleetConfig, simulate
from llmobs.simulate.policies.base import PolicyContext
from llmobs.simulate.profile import StepProfile
from llmobs.simulate.workload import Workload

ATTAINMENT = 0.99
SAMPLE_REQUESTS = 2000  # enough for the 1 % tail to be ~20 requests, few enough to bisect in seconds
LOAD_TEST_MIN_REQUESTS = 500
"""Fewest requests a load test sends: fewer admitted requests are sent again (as `vllm bench serve` draws
more prompts than a small dataset holds), so that 99 % leaves a tail of 5 requests to tell from noise. With
the 39 requests of a one-minute trace, every rate up to millions per second fitted in one burst."""
LOAD_TEST_SEED = 1
BISECTION_STEPS = 10
ISOLATION_S = 1000.0  # seconds between requests served alone: each finds the replica idle


def _attainment_at(sample: Workload, base_rate: float, rate: float, fleet: FleetConfig, ttft: float,
                   tpot: float) -> float:
    return simulate(sample.compressed(rate / base_rate), fleet).attainment(ttft, tpot)


def profile_capacity(workload: Workload, fleet_config: FleetConfig, ttft: float, tpot: float, *,
                     attainment: float = ATTAINMENT, sample_requests: int = SAMPLE_REQUESTS) -> float:
    """Requests per second ONE replica serves with ≥ `attainment` of requests meeting TTFT ≤ `ttft` and
    TPOT ≤ `tpot`, at `workload`'s length mix and burstiness (its arrivals compressed in time).

    Uses the first `sample_requests` requests vLLM would admit (a prompt ≥ max_model_len is refused at any
    rate: not a matter of capacity) on a fixed fleet of one replica (no controller, so no pages are
    rendered), and bisects the rate in log space to within ~1 %. Raises `SimulationInputError` when even a
    trickle misses the SLO (the SLO is out of this hardware's reach for this mix)."""
    if len(workload) < 2:
        raise SimulationInputError("profiling capacity needs a workload of at least 2 requests")
    admitted = np.flatnonzero(workload.prompt < fleet_config.engine.max_model_len)[:sample_requests]
    n = len(admitted)
    if n < 2:
        raise SimulationInputError("profiling capacity needs at least 2 requests shorter than max_model_len")
    arrival = workload.arrival[admitted] - workload.arrival[admitted[0]]
    hashes = tuple(workload.hashes[i] for i in admitted) if workload.hashes else ()
    sample = Workload(workload.source, arrival, workload.prompt[admitted], workload.output[admitted], hashes,
                      workload.hash_block_tokens)
    span = float(arrival[-1])
    if not span > 0:
        raise SimulationInputError("profiling capacity needs requests spread over time (all arrive at once)")
    base_rate = (n - 1) / span
    fleet = dataclasses.replace(fleet_config, initial_replicas=1, tail_s=max(fleet_config.tail_s, 600.0))
    low = 0.01 * base_rate
    if _attainment_at(sample, base_rate, low, fleet, ttft, tpot) < attainment:
        raise SimulationInputError(
            f"one replica misses the SLO (TTFT ≤ {ttft:g}s, TPOT ≤ {tpot:g}s) for more than "
            f"{(1 - attainment) * 100:g} % of requests even at {low:.3g} requests/s: no capacity to profile")
    high = max(2 * low, base_rate)
    while _attainment_at(sample, base_rate, high, fleet, ttft, tpot) >= attainment:
        low, high = high, high * 2
        if high > 1e6:
            break
    for _ in range(BISECTION_STEPS):
        mid = math.sqrt(low * high)
        if _attainment_at(sample, base_rate, mid, fleet, ttft, tpot) >= attainment:
            low = mid
        else:
            high = mid
    return low


def load_test_sample(workload: Workload, max_model_len: int, *, requests: int = SAMPLE_REQUESTS,
                     minimum: int = LOAD_TEST_MIN_REQUESTS, seed: int = LOAD_TEST_SEED) -> Workload:
    """The requests a load test of `workload`'s length mix sends: its first `requests` requests vLLM admits
    (a prompt ≥ max_model_len is refused at any rate), on Poisson arrivals at 1 request/s, as
    `vllm bench serve --request-rate` sends them (`profile_capacity` then scales the rate).

    Why not the workload's own arrival times: a trace's simultaneous arrivals (Mooncake records groups of 10–16
    requests at one timestamp) stay simultaneous however far the trace is stretched, so a load test on them
    finds no rate low enough. Fewer than `minimum` admitted requests are sent again in order until there are
    `minimum`, each repeat with prefix-block ids of its own (another user's prompt, not a prefix-cache hit)."""
    admitted = np.flatnonzero(workload.prompt < max_model_len)[:requests]
    n = len(admitted)
    if n < 2:
        raise SimulationInputError(
            f"{workload.source}: a load test needs at least 2 requests shorter than max_model_len "
            f"({max_model_len:,} tokens); this traffic has {n}")
    copies = 1 if n >= minimum else -(-minimum // n)
    chosen = np.tile(admitted, copies)[:max(n, minimum)]
    hashes: tuple[tuple[int, ...], ...] = ()
    if workload.hashes:
        top = 1 + max((max(h) for h in workload.hashes if h), default=0)
        hashes = tuple(tuple(x + (k // n) * top for x in workload.hashes[i]) for k, i in enumerate(chosen))
    gaps = np.random.default_rng(seed).exponential(1.0, len(chosen))
    notes = (f"load test: {n} admitted requests sent again up to {len(chosen)}",) if copies > 1 else ()
    return Workload(workload.source, np.cumsum(gaps) - gaps[0], workload.prompt[chosen], workload.output[chosen],
                    hashes, workload.hash_block_tokens, notes)


def attainable_share(workload: Workload, fleet_config: FleetConfig, ttft: float, tpot: float) -> float:
    """Share of `workload`'s requests that meet the SLO when each is served alone on an idle replica: the most
    any number of replicas can attain (a prompt too long to prefill within the TTFT misses whatever the
    fleet). Target attainments are taken relative to it, so a mix with such prompts still has a capacity."""
    isolated = Workload(workload.source, np.arange(len(workload)) * ISOLATION_S, workload.prompt, workload.output,
                        workload.hashes, workload.hash_block_tokens)
    met = simulate(isolated, dataclasses.replace(fleet_config, initial_replicas=1)).met(ttft, tpot)
    return float(met.mean()) if len(met) else math.nan


def load_test_capacity(workload: Workload, fleet_config: FleetConfig, ttft: float, tpot: float, *,
                       attainment: float = ATTAINMENT) -> float:
    """Requests/s one replica serves with `attainment` × the attainable share (`attainable_share`) of
    requests meeting the SLO, in a load test at `workload`'s length mix (`load_test_sample`): what a user
    measures before deploying, and what `benchmarks/autoscale.py` profiles each trace's training part with.

    Raises `SimulationInputError` when no request of the mix meets the SLO even alone (TTFT or TPOT below
    what this hardware does for these lengths), naming the SLO."""
    sample = load_test_sample(workload, fleet_config.engine.max_model_len)
    ceiling = attainable_share(sample, fleet_config, ttft, tpot)
    if not ceiling > 0:
        raise SimulationInputError(
            f"no request of this length mix meets the SLO (TTFT ≤ {ttft:g}s, TPOT ≤ {tpot:g}s) even served alone "
            "on an idle replica: raise the SLOs or choose a faster profile")
    return profile_capacity(sample, fleet_config, ttft, tpot, attainment=attainment * ceiling)


def request_work_s(prompt: float | np.ndarray, output: float | np.ndarray,
                   profile: StepProfile) -> float | np.ndarray:
    """GPU seconds a request adds to a busy replica's steps: its prompt tokens' prefill, and per output
    token one decode slot plus reading its KV (at its mean context). The fixed per-step cost is shared by
    the whole batch, so it is left out: this is the marginal work that decides how many requests fit."""
    context = prompt + output / 2
    return profile.prefill_token_s * prompt + output * (profile.decode_seq_s + profile.kv_token_s * context)


def mean_lengths(workload: Workload | None) -> tuple[float, float]:
    """Mean prompt and output tokens of `workload` (NaN, NaN without one)."""
    if workload is None or not len(workload):
        return math.nan, math.nan
    return float(np.mean(workload.prompt)), float(np.mean(workload.output))


def steady_concurrency(rate: float, prompt: float, output: float, profile: StepProfile) -> float:
    """Requests one replica holds (running + waiting) at `rate` requests/s of this mean shape, by Little's
    law: each request stays about `output` decode steps, and a second holds 1 / step time steps, where the
    steps share the second with the prefill and decode work the rate brings. NaN if the rate saturates it."""
    busy = rate * float(request_work_s(prompt, output, profile))
    if not (math.isfinite(busy) and 0 <= busy < 1) or profile.fixed_s <= 0:
        return math.nan
    steps_per_s = (1 - busy) / profile.fixed_s
    return rate * output / steps_per_s


def reference_lengths(context: PolicyContext) -> tuple[float, float]:
    """The mean prompt and output lengths `context.capacity_rps` was profiled at (the training part's);
    vLLM-typical 1000 / 250 without training data, so a policy still builds."""
    prompt, output = mean_lengths(context.training)
    if not (math.isfinite(prompt) and math.isfinite(output)):
        return 1000.0, 250.0
    return prompt, output


def capacity_at(context: PolicyContext, prompt: float, output: float) -> float:
    """Requests/s one replica serves at this mean shape: the profiled capacity scaled by how much GPU work
    a request of this shape takes compared with the profiled mix (Dynamo's planner re-reads its profile at
    the predicted ISL/OSL for the same reason). Falls back to the profiled capacity on unusable lengths."""
    ref_prompt, ref_output = reference_lengths(context)
    profile = context.fleet.profile
    ref = float(request_work_s(ref_prompt, ref_output, profile))
    if not (math.isfinite(prompt) and math.isfinite(output) and prompt > 0 and output > 0 and ref > 0):
        return context.capacity_rps
    return context.capacity_rps * ref / float(request_work_s(prompt, output, profile))


def concurrency_at_capacity(context: PolicyContext) -> float:
    """Requests one replica holds when it serves `capacity_rps` at the profiled mix: the per-pod
    concurrency a Knative-style target is expressed against. When the estimate saturates (the profile's
    fixed step cost is all there is), `capacity_rps` × mean output × TPOT SLO, the longest a request may
    decode within its SLO."""
    prompt, output = reference_lengths(context)
    value = steady_concurrency(context.capacity_rps, prompt, output, context.fleet.profile)
    if math.isfinite(value) and value > 0:
        return value
    return max(1.0, context.capacity_rps * output * context.tpot_slo_s)


def kv_usage_at_capacity(context: PolicyContext) -> float:
    """The KV-cache share (0–1) one replica fills at the profiled capacity: its concurrency there × the mean
    tokens a request holds (its prompt and half its output), over the cache's tokens. What a KV threshold
    is expressed against, as a rate threshold is against the profiled rate."""
    prompt, output = reference_lengths(context)
    engine = context.fleet.engine
    tokens = concurrency_at_capacity(context) * (prompt + output / 2)
    return min(1.0, tokens / (engine.kv_blocks * engine.block_size))
