"""Which scheduler limit binds an endpoint: KV-cache blocks, the chunked-prefill token budget, or the batch.

vLLM's scheduler stops admitting work at whichever of three limits it reaches first: free KV-cache blocks,
`max_num_batched_tokens` (the tokens one engine step may schedule) or `max_num_seqs` (the requests one step
may run). Each ratio below is the window's average use of one limit, 0–1, so the three compare directly:

* `kv`: mean of `vllm:kv_cache_usage_perc` over the window's scrapes.
* `batch`: mean of `vllm:num_requests_running` over the window's scrapes ÷ `max_num_seqs`.
* `prefill`: busy share × step fullness. Step fullness is Δsum ÷ (Δcount × `max_num_batched_tokens`) of
  `vllm:iteration_tokens_total`, capped at 1. vLLM observes that histogram once per engine step that emits a
  token, with the step's generated tokens plus the whole prompt of each request whose prefill completed in
  it; steps that only carry chunks of unfinished prompts are not observed. Over a window the sum is still
  every computed token, and the steps left out are exactly the chunk-only steps, which a chunk fills to the
  budget. So the quotient is the mean tokens per step when every step emits a token, and reads high (capped
  at 1) only when chunk-only steps happened, that is when long prompts kept the budget full. Busy share is
  the share of the window's scrapes with a request running: a long prompt that fills every step it runs in
  but arrives once a minute leaves the engine idle most of the time, and must not read as saturated.
  A share of iterations at the budget (from the buckets) was rejected: vLLM's buckets are powers of two,
  too coarse to tell a step at the budget from one at half of it.

The bottleneck is the resource with the largest ratio (ties: kv, prefill, batch), `none` while every ratio is
below `BINDING_FLOOR`, and `unknown` when any ratio is unknown: the page lacks a series or the scheduler
limits are not configured (vLLM does not publish `max_num_seqs` or `max_num_batched_tokens`, and their
defaults depend on the vLLM version and the hardware, so none is assumed). Naming the largest of the known
ratios would state a guess as fact.

Spare capacity, in tokens/s, is a linear extrapolation at the current mix of prompts and outputs: the
binding resource at ratio r carries the observed throughput T (prompt + generated tokens/s), so it reaches
its limit at T ÷ r, leaving T × (1 − r) ÷ r. It is 0 at r = 1 and unknown when r = 0 (an idle window
says nothing about what the endpoint could serve) or when the bottleneck is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llmobs.signals.types import SATURATION_RESOURCES, Saturation
from llmobs.sources.targets import SchedulerLimits

BINDING_FLOOR = 0.5
"""Below this ratio no resource is near its limit: the bottleneck is `none` (the ratios still say which is
closest)."""


@dataclass(frozen=True, slots=True)
class IterationTokens:
    """`vllm:iteration_tokens_total` over the window: observations (engine steps that emitted a token) and the
    tokens they carried. None of the tracker's window when the page has no such histogram."""

    steps: float
    tokens: float


def _kv_mean(values: Sequence[float]) -> float | None:
    """Mean of the readings in [0, 1] (NaN and out-of-range ones left out); None without any."""
    total = sum(values)
    if not (values and total == total and min(values) >= 0.0 and max(values) <= 1.0):  # the tracker's usual case
        values = [v for v in values if 0.0 <= v <= 1.0]  # first: NaN fails the `total == total` test
        total = sum(values)
    return total / len(values) if values else None


def _running_mean_and_busy_share(values: Sequence[float]) -> tuple[float, float] | None:
    """Mean of the finite non-negative readings and the share of them above 0; None without any."""
    total = sum(values)
    if not (values and math.isfinite(total) and min(values) >= 0.0):
        values = [v for v in values if 0.0 <= v < math.inf]
        total = sum(values)
    if not values:
        return None
    return total / len(values), sum(map(bool, values)) / len(values)  # no NaN left: bool(v) is v > 0


def saturation(*, kv_usage: Sequence[float], running: Sequence[float], iteration_tokens: IterationTokens | None,
               limits: SchedulerLimits, tokens_rate: float) -> Saturation:
    """The saturation of one model on one endpoint over a window.

    `kv_usage` and `running` are the window's scrapes of `vllm:kv_cache_usage_perc` and
    `vllm:num_requests_running` (NaN where a scrape lacked the series); `iteration_tokens` is the window's
    delta of `vllm:iteration_tokens_total` (reset-adjusted by the tracker); `tokens_rate` the prompt +
    generated tokens/s over the window.
    """
    ratios: dict[str, float] = {}
    unknown: list[str] = []

    kv = _kv_mean(kv_usage)
    if kv is None:
        unknown.append("no_kv_cache_usage")
    else:
        ratios["kv"] = kv

    running_stats = _running_mean_and_busy_share(running)
    mean_running, busy = running_stats if running_stats is not None else (None, None)
    if running_stats is None:
        unknown.append("no_requests_running")
    if limits.max_num_seqs is None:
        unknown.append("max_num_seqs_unknown")
    elif mean_running is not None:
        ratios["batch"] = min(1.0, mean_running / limits.max_num_seqs)

    budget = limits.max_num_batched_tokens
    if budget is None:
        unknown.append("max_num_batched_tokens_unknown")
    if iteration_tokens is None:
        unknown.append("no_iteration_tokens")
    elif not (math.isfinite(iteration_tokens.tokens) and iteration_tokens.tokens >= 0
              and math.isfinite(iteration_tokens.steps) and iteration_tokens.steps >= 0):
        unknown.append("iteration_tokens_implausible")
    elif budget is not None and busy is not None:
        if iteration_tokens.steps > 0:
            fullness = min(1.0, iteration_tokens.tokens / (iteration_tokens.steps * budget))
            ratios["prefill"] = busy * fullness
        elif busy == 0:
            ratios["prefill"] = 0.0  # idle all window: no step ran
        else:  # running but no step emitted a token all window: one prompt longer than the window, or stuck
            unknown.append("no_engine_steps")

    if unknown:
        return Saturation(ratios, "unknown", None, tuple(unknown))
    top = max(ratios.values())
    bottleneck = next(r for r in SATURATION_RESOURCES if ratios[r] == top) if top >= BINDING_FLOOR else "none"
    return Saturation(ratios, bottleneck, spare_tokens_per_second(top, tokens_rate))


def spare_tokens_per_second(binding_ratio: float, tokens_rate: float) -> float | None:
    """T × (1 − r) ÷ r (see the module docstring); 0 at r ≥ 1, None at r = 0 or without a finite T."""
    if not (math.isfinite(tokens_rate) and tokens_rate >= 0 and math.isfinite(binding_ratio)):
        return None
    if binding_ratio >= 1.0:
        return 0.0
    if binding_ratio <= 0.0:
        return None
    return tokens_rate * (1.0 - binding_ratio) / binding_ratio
