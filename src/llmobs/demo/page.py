"""Renders a simulated replica as a vLLM 0.32 `/metrics` page (same families, labels, bucket layout).

tests/demo/test_demo_page.py checks this against the real page captured from vLLM 0.32.0.
"""

from __future__ import annotations

from typing import Protocol

from llmobs.demo.histogram import SimHistogram
from llmobs.demo.replica import SimulatedReplica


def _fmt(v: float) -> str:
    return repr(float(v))


class PageWriter:
    """Writes samples with labels sorted by name, as prometheus_client (and so vLLM) does."""

    def __init__(self, base: dict[str, str]) -> None:
        self.base = base
        self.lines: list[str] = []
        self._label_text: dict[tuple[tuple[str, str], ...], str] = {}  # a page repeats few label sets

    def _labels(self, extra: dict[str, str] | None) -> str:
        key = tuple(extra.items()) if extra else ()
        text = self._label_text.get(key)
        if text is None:
            merged = {**self.base, **extra} if extra else self.base
            text = self._label_text[key] = ",".join(f'{k}="{merged[k]}"' for k in sorted(merged))
        return text

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, extra: dict[str, str] | None = None) -> None:
        self.lines.append(f"{name}{{{self._labels(extra)}}} {_fmt(value)}")

    def gauge(self, name: str, help_text: str, value: float) -> None:
        self.family(name, "gauge", help_text)
        self.sample(name, value)

    def counter(self, name: str, help_text: str, values: dict[str, float] | float, created: float,
                by: str | None = None) -> None:
        items = list(values.items()) if isinstance(values, dict) else [("", values)]
        self.family(f"{name}_total", "counter", help_text)
        for sub, v in items:
            self.sample(f"{name}_total", v, {by: sub} if by else None)
        self.family(f"{name}_created", "gauge", help_text)
        for sub, _ in items:
            self.sample(f"{name}_created", created, {by: sub} if by else None)

    def histogram(self, name: str, help_text: str, h: SimHistogram) -> None:
        self.family(name, "histogram", help_text)
        for bound, cum in zip((*h.bounds, float("inf")), h.cumulative(), strict=True):
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            self.sample(f"{name}_bucket", cum, {"le": le})
        self.sample(f"{name}_count", h.count)
        self.sample(f"{name}_sum", h.sum)
        self.family(f"{name}_created", "gauge", help_text)
        self.sample(f"{name}_created", h.created)


class PageStats(Protocol):
    """The counters and histograms a page shows: the demo replica's, or the request-level simulator's."""

    prompt_tokens: float
    generation_tokens: float
    preemptions: float
    prefix_queries: float
    prefix_hits: float
    success: dict[str, float]
    h_ttft: SimHistogram
    h_itl: SimHistogram
    h_tpot: SimHistogram
    h_e2e: SimHistogram
    h_queue: SimHistogram
    h_inference: SimHistogram
    h_prefill: SimHistogram
    h_decode: SimHistogram
    h_prompt: SimHistogram
    h_generation: SimHistogram
    h_preempt: SimHistogram


def render_replica(r: SimulatedReplica) -> str:
    s = r.spec
    return render_page(r.model, r._created, running=len(r.running), waiting=len(r.waiting), kv_usage=r.kv_usage,
                       block_size=s.block_size, kv_blocks=s.kv_blocks, r=r, iteration_tokens=r.h_iteration,
                       process_start=r.process_start)


def render_page(model: str, created: float, *, running: int, waiting: int, kv_usage: float, block_size: int,
                kv_blocks: int, r: PageStats, iteration_tokens: SimHistogram | None = None,
                process_start: float | None = None) -> str:
    """One vLLM 0.32 page from a replica's state (gauges) and its counters and histograms (`r`); tokens per engine
    step and the process start where the caller keeps them."""
    w = PageWriter({"engine": "0", "model_name": model})
    w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", running)
    w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting)
    w.family("vllm:num_requests_waiting_by_reason", "gauge", "Number of waiting requests by reason.")
    w.sample("vllm:num_requests_waiting_by_reason", waiting, {"reason": "capacity"})
    w.sample("vllm:num_requests_waiting_by_reason", 0.0, {"reason": "deferred"})
    w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", min(kv_usage, 1.0))
    w.counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
              r.prefix_queries, created)
    w.counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
              r.prefix_hits, created)
    w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", r.preemptions, created)
    w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", r.prompt_tokens, created)
    # As vLLM 0.32 splits them: computed here, or read from the local prefix cache (no KV connector here).
    cached = min(r.prefix_hits, r.prompt_tokens)
    w.counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
              {"local_compute": r.prompt_tokens - cached, "local_cache_hit": cached, "external_kv_transfer": 0.0},
              created, by="source")
    w.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", cached, created)
    w.counter("vllm:external_prefix_cache_queries", "External prefix cache queries from KV connector "
              "cross-instance cache sharing, in terms of number of queried tokens.", 0.0, created)
    w.counter("vllm:external_prefix_cache_hits", "External prefix cache hits from KV connector cross-instance "
              "cache sharing, in terms of number of cached tokens.", 0.0, created)
    w.family("vllm:engine_sleep_state", "gauge", "Engine sleep state; awake = 0 means engine is sleeping; "
             "awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means "
             "sleep level 2.")
    for state, value in (("awake", 1.0), ("weights_offloaded", 0.0), ("discard_all", 0.0)):
        w.sample("vllm:engine_sleep_state", value, {"sleep_state": state})
    w.counter("vllm:generation_tokens", "Number of generation tokens processed.", r.generation_tokens, created)
    w.counter("vllm:request_success", "Count of successfully processed requests.", r.success, created,
              by="finished_reason")
    w.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", r.h_prompt)
    w.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", r.h_generation)
    w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", r.h_ttft)
    w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", r.h_itl)
    w.histogram("vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.", r.h_tpot)
    w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", r.h_e2e)
    w.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                r.h_queue)
    w.histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.",
                r.h_inference)
    w.histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
                r.h_prefill)
    w.histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
                r.h_decode)
    if iteration_tokens is not None:
        w.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", iteration_tokens)
    w.histogram("vllm:request_num_preemptions", "Histogram of the number of times a request was preempted.",
                r.h_preempt)
    if process_start is not None:
        w.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        w.lines.append(f"process_start_time_seconds {_fmt(process_start)}")
    w.family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig")
    w.lines.append(
        f'vllm:cache_config_info{{block_size="{block_size}",cache_dtype="auto",enable_prefix_caching="True",'
        f'engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="{kv_blocks}"}} 1.0'
    )
    w.lines.append("")
    return "\n".join(w.lines)
