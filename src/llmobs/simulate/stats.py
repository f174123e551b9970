"""One simulated replica's vLLM counters and histograms, kept as vLLM keeps them, and its /metrics page."""

from __future__ import annotations

from itertools import accumulate

from llmobs.demo.histogram import (
    ITL_BUCKETS,
    PREEMPTION_BUCKETS,
    REQUEST_TIME_BUCKETS,
    TTFT_BUCKETS,
    SimHistogram,
    one_two_five_buckets,
)
from llmobs.demo.page import render_page
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


def _histograms(r: ReplicaStats) -> tuple[SimHistogram, ...]:
    """The histograms in the order `render_page` writes them (no iteration-tokens histogram here)."""
    return (r.h_prompt, r.h_generation, r.h_ttft, r.h_itl, r.h_tpot, r.h_e2e, r.h_queue, r.h_inference,
            r.h_prefill, r.h_decode, r.h_preempt)


def page_values(running: int, waiting: int, kv_usage: float, created: float, r: ReplicaStats) -> list[float]:
    """Every sample value of the replica's page, in the order `render_page` writes its sample lines."""
    cached = min(r.prefix_hits, r.prompt_tokens)
    out = [running, waiting, waiting, 0.0, min(kv_usage, 1.0),
           r.prefix_queries, created, r.prefix_hits, created, r.preemptions, created, r.prompt_tokens, created,
           r.prompt_tokens - cached, cached, 0.0, created, created, created, cached, created,
           0.0, created, 0.0, created, 1.0, 0.0, 0.0, r.generation_tokens, created,
           *r.success.values(), *([created] * len(r.success))]
    for h in _histograms(r):
        out.extend(accumulate(h.counts))
        out.extend((h.count, h.sum, h.created))
    out.append(1.0)  # cache_config_info
    return out


class PageTemplate:
    """A simulated replica's vLLM page with its values left out: rendering a page at every scrape of every
    replica is the simulator's main cost after the engine, and only the values change between scrapes.

    Built from `render_page`'s own output (every sample line's text before its value is kept), so the page
    `render` returns is that function's page, character for character (tests/simulate check it); values are
    written as `render_page` writes them (`repr(float(v))`). The page is kept as its text pieces with a slot
    after each sample line's text: `render` fills the slots and joins the pieces (a `str.format` of ~200
    fields would parse the template again at every scrape)."""

    __slots__ = ("_pieces", "lines")

    def __init__(self, model: str, block_size: int, kv_blocks: int, max_model_len: int) -> None:
        sample = ReplicaStats(0.0, max_model_len)
        text = render_page(model, 0.0, running=0, waiting=0, kv_usage=0.0, block_size=block_size,
                           kv_blocks=kv_blocks, r=sample)
        pieces = [""]  # text pieces at even indices, a value's slot at each odd one
        lines = 0
        for i, line in enumerate(text.split("\n")):
            if i:
                pieces[-1] += "\n"
            if line and not line.startswith("#"):
                pieces[-1] += line.rpartition(" ")[0] + " "
                pieces += ["", ""]
                lines += 1
            else:
                pieces[-1] += line
        self._pieces = pieces
        self.lines = lines
        if len(page_values(0, 0, 0.0, 0.0, sample)) != lines:
            raise RuntimeError("page_values does not match render_page's sample lines")  # a renderer change

    def render(self, running: int, waiting: int, kv_usage: float, created: float, r: ReplicaStats) -> str:
        pieces = self._pieces.copy()
        pieces[1::2] = map(repr, map(float, page_values(running, waiting, kv_usage, created, r)))
        return "".join(pieces)
