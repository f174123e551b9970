"""A simulated vLLM replica: a queue in front of a batch with a finite, block-allocated KV cache.

Why a model and not random numbers: the demo, the dashboards and the autoscaling work must show the
causal chain SREs care about — a burst fills the KV cache, admission stops, the queue grows, TTFT
rises, preemptions appear — and fall back afterwards. The model is deliberately simple and cheap: it
advances lazily (only when its page is read) in coarse ticks, so a thousand replicas cost little.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from llmobs.demo.histogram import (
    ITERATION_TOKENS_BUCKETS,
    ITL_BUCKETS,
    PREEMPTION_BUCKETS,
    REQUEST_TIME_BUCKETS,
    TTFT_BUCKETS,
    SimHistogram,
    one_two_five_buckets,
)

FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")


@dataclass(slots=True)
class ReplicaSpec:
    """Capacity and speed of a simulated replica (numbers shaped like an 8B model on one GPU)."""

    kv_blocks: int = 2048
    block_size: int = 16
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 8192  # vLLM's chunked-prefill budget per engine step (its GPU default)
    max_model_len: int = 8192
    prefill_tokens_per_second: float = 12_000.0
    base_itl_seconds: float = 0.018
    itl_per_running_seconds: float = 0.0004
    prefix_hit_fraction: float = 0.3
    tick_seconds: float = 0.1


@dataclass(slots=True)
class _Request:
    arrival: float
    prompt: int
    output: int
    generated: float = 0.0
    admitted: float = -1.0
    first_token: float = -1.0
    prefill_done: float = -1.0
    preemptions: int = 0


class SimulatedReplica:
    def __init__(self, model: str, spec: ReplicaSpec, start: float, seed: int = 0) -> None:
        self.model = model
        self.spec = spec
        self.clock = start
        self.rng = random.Random(seed)
        self.waiting: deque[_Request] = deque()
        self.running: list[_Request] = []
        self.used_blocks = 0
        self._created = start
        # The demo's replicas were serving before the demo began (llmobs did not watch them start): only a
        # restart is a start llmobs sees, as `process_start_time_seconds` on the page.
        self.process_start = start - 3600.0
        self._reset_metrics()

    def _reset_metrics(self) -> None:
        c, s = self._created, self.spec
        self.prompt_tokens = self.generation_tokens = 0.0
        self.preemptions = 0.0
        self.prefix_queries = self.prefix_hits = 0.0
        self.success = dict.fromkeys(FINISHED_REASONS, 0.0)
        lengths = one_two_five_buckets(s.max_model_len)
        self.h_ttft = SimHistogram(TTFT_BUCKETS, c)
        self.h_itl = SimHistogram(ITL_BUCKETS, c)
        self.h_tpot = SimHistogram(ITL_BUCKETS, c)
        self.h_e2e = SimHistogram(REQUEST_TIME_BUCKETS, c)
        self.h_queue = SimHistogram(REQUEST_TIME_BUCKETS, c)
        self.h_inference = SimHistogram(REQUEST_TIME_BUCKETS, c)
        self.h_prefill = SimHistogram(REQUEST_TIME_BUCKETS, c)
        self.h_decode = SimHistogram(REQUEST_TIME_BUCKETS, c)
        self.h_prompt = SimHistogram(lengths, c)
        self.h_generation = SimHistogram(lengths, c)
        self.h_preempt = SimHistogram(PREEMPTION_BUCKETS, c)
        self.h_iteration = SimHistogram(ITERATION_TOKENS_BUCKETS, c)

    def restart(self, now: float) -> None:
        """Simulate a vLLM restart: in-flight work is lost and every counter starts again at zero."""
        self.clock = now
        self._created = now
        self.process_start = now
        self.waiting.clear()
        self.running.clear()
        self.used_blocks = 0
        self._reset_metrics()

    def submit(self, arrival: float, prompt: int, output: int) -> None:
        prompt = max(1, min(prompt, self.spec.max_model_len - 1))
        output = max(1, min(output, self.spec.max_model_len - prompt))
        self.waiting.append(_Request(arrival, prompt, output))

    @property
    def kv_usage(self) -> float:
        return self.used_blocks / self.spec.kv_blocks

    def _blocks(self, r: _Request) -> int:
        return math.ceil((r.prompt + int(r.generated) + 1) / self.spec.block_size)

    def advance(self, now: float) -> None:
        """Run the model forward to `now` in ticks (lazy: called when the page is rendered)."""
        tick = self.spec.tick_seconds
        while self.clock + 1e-9 < now:
            step = min(tick, now - self.clock)
            self._step(self.clock, step)
            self.clock += step

    def _admit(self, t: float) -> None:
        s = self.spec
        while self.waiting and len(self.running) < s.max_num_seqs:
            r = self.waiting[0]
            if r.arrival > t:
                break
            need = self._blocks(r)
            if self.used_blocks + need > s.kv_blocks:
                break  # KV cache full: the queue builds
            self.waiting.popleft()
            self.used_blocks += need
            if r.admitted < 0:
                r.admitted = t
                self.h_queue.observe(t - r.arrival)
                hit = int(r.prompt * s.prefix_hit_fraction * self.rng.random() * 2)
                self.prefix_queries += r.prompt
                self.prefix_hits += min(hit, r.prompt)
                self.prompt_tokens += r.prompt
            r.prefill_done = t + (r.prompt + r.generated) / s.prefill_tokens_per_second
            self.running.append(r)

    def _step(self, t: float, dt: float) -> None:
        s = self.spec
        self._admit(t)
        itl = s.base_itl_seconds + s.itl_per_running_seconds * len(self.running)
        end = t + dt
        finished: list[_Request] = []
        step_tokens = 0  # as vLLM's iteration_tokens: whole prompts at their first token, plus generated tokens
        for r in self.running:
            start = max(t, r.prefill_done)
            if start >= end:
                continue
            if r.first_token < 0:
                r.first_token = start
                self.h_ttft.observe(start - r.arrival)
                step_tokens += r.prompt
            before = int(r.generated)
            r.generated = min(r.output, r.generated + (end - start) / itl)
            new_tokens = int(r.generated) - before
            step_tokens += new_tokens
            self.generation_tokens += new_tokens
            self.used_blocks += math.ceil((r.prompt + int(r.generated) + 1) / s.block_size) - math.ceil(
                (r.prompt + before + 1) / s.block_size)
            if r.generated >= r.output:
                finished.append(r)
        if step_tokens:  # the tick's engine steps (one per ITL), each observed with the tick's mean tokens
            steps = dt / itl
            self.h_iteration.observe(step_tokens / steps, steps)
        for r in finished:
            self._finish(r, end, itl)
        while self.used_blocks > s.kv_blocks and self.running:
            victim = self.running.pop()  # vLLM preempts the most recently scheduled request
            self.used_blocks -= self._blocks(victim)
            victim.preemptions += 1
            self.preemptions += 1
            self.waiting.appendleft(victim)

    def _finish(self, r: _Request, t: float, itl: float) -> None:
        self.running.remove(r)
        self.used_blocks -= self._blocks(r)
        self.used_blocks = max(self.used_blocks, 0)
        reason = "length" if self.rng.random() < 0.25 else "stop"
        self.success[reason] += 1
        if r.output > 1:
            self.h_itl.observe(itl, r.output - 1)
            self.h_tpot.observe(itl)
        self.h_e2e.observe(t - r.arrival)
        self.h_inference.observe(t - r.admitted)
        self.h_prefill.observe(max(r.first_token - r.admitted, 0.0))
        self.h_decode.observe(max(t - r.first_token, 0.0))
        self.h_prompt.observe(r.prompt)
        self.h_generation.observe(r.output)
        self.h_preempt.observe(r.preemptions)
