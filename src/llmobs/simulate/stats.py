"""One simulated replica's vLLM counters and histograms, kept as vLLM keeps them, for its /metrics page."""

from __future__ import annotations

from llmobs.demo.histogram import (
    ITL_BUCKETS,
    PREEMPTION_BUCKETS,
    REQUEST_TIME_BUCKETS,
    TTFT_BUCKETS,
    SimHistogram,
    one_two_five_buckets,
)
from llmobs.demo.replica import FINISHED_REASONS


class ReplicaStats:
    """Satisfies `llmobs.demo.page.PageStats`: the demo's page renderer writes these as a vLLM 0.32 page."""

    def __init__(self, created: float, max_model_len: int) -> None:
        self.prompt_tokens = 0.0
        self.generation_tokens = 0.0
        self.preemptions = 0.0
        self.prefix_queries = 0.0
        self.prefix_hits = 0.0
        self.success = dict.fromkeys(FINISHED_REASONS, 0.0)
        lengths = one_two_five_buckets(max_model_len)
        self.h_ttft = SimHistogram(TTFT_BUCKETS, created)
        self.h_itl = SimHistogram(ITL_BUCKETS, created)
        self.h_tpot = SimHistogram(ITL_BUCKETS, created)
        self.h_e2e = SimHistogram(REQUEST_TIME_BUCKETS, created)
        self.h_queue = SimHistogram(REQUEST_TIME_BUCKETS, created)
        self.h_inference = SimHistogram(REQUEST_TIME_BUCKETS, created)
        self.h_prefill = SimHistogram(REQUEST_TIME_BUCKETS, created)
        self.h_decode = SimHistogram(REQUEST_TIME_BUCKETS, created)
        self.h_prompt = SimHistogram(lengths, created)
        self.h_generation = SimHistogram(lengths, created)
        self.h_preempt = SimHistogram(PREEMPTION_BUCKETS, created)
