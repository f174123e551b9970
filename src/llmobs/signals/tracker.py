"""Signals of one vLLM endpoint from its successive pages: one `ModelEndpointTracker` per model on it.

Why a facade over `derive.ModelEndpointTracker`: that tracker follows one model and is fed one model's
series; a program that scrapes an endpoint has whole pages, and a page may hold several models (a
multi-model server) or change them (a redeploy). `SignalTracker` routes each page's models to their
trackers, starts a tracker for a new model and forgets one that left, which is what the exporter's scrape
loop does per target. Pure, like the rest of `signals/`: the caller says when each page was read.
"""

from __future__ import annotations

import math

from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.types import Attribution, ModelEndpointSignals
from llmobs.sources.page import Page
from llmobs.sources.targets import SchedulerLimits


class SignalTracker:
    """Turns successive pages of one endpoint into `ModelEndpointSignals`, one per model.

    Rates, ratios and quantiles are computed over the last `window_seconds` of pages, the way PromQL's
    `rate` and `histogram_quantile` would; counters that go back (a vLLM restart) are carried on from their
    last value rather than read as negative rates. `endpoint`, `node` and `gpu_model` become the signals'
    `Attribution` labels. One tracker per endpoint: pages of two endpoints fed to one tracker would read as
    one endpoint restarting back and forth.
    """

    def __init__(self, endpoint: str = "", *, window_seconds: float = 60.0, ttft_slo_seconds: float = 1.0,
                 node: str = "", gpu_model: str = "", scheduler: SchedulerLimits | None = None) -> None:
        if not (math.isfinite(window_seconds) and window_seconds > 0):
            raise ValueError(f"window_seconds must be a positive number, not {window_seconds!r}")
        if not (math.isfinite(ttft_slo_seconds) and ttft_slo_seconds > 0):
            raise ValueError(f"ttft_slo_seconds must be a positive number, not {ttft_slo_seconds!r}")
        self.endpoint = endpoint
        self.node = node
        self.gpu_model = gpu_model
        self.scheduler = scheduler  # vLLM's max_num_seqs / max_num_batched_tokens, for the saturation ratios
        self.window_seconds = window_seconds
        self.ttft_slo_seconds = ttft_slo_seconds
        self.implausible_samples = 0
        """Samples not believed so far (counters that fell without a restart, NaN/±Inf/negative values,
        inconsistent histograms, KV usage outside [0, 1]): the exporter's
        `llmobs_series_dropped_total{reason="implausible"}`."""
        self._trackers: dict[str, ModelEndpointTracker] = {}

    @property
    def models(self) -> tuple[str, ...]:
        """The models being tracked, sorted."""
        return tuple(sorted(self._trackers))

    def observe(self, page: Page, now: float) -> list[ModelEndpointSignals]:
        """Feed the page read at `now` (seconds on any clock that does not go back: `time.time()`,
        `time.monotonic()`, a replay's timestamps) and return the signals of every model on it, sorted by
        model.

        A model's signals need two of its pages, so a model's first page returns nothing for it. A page
        no newer than the last one is ignored for the window (its signals are the last window's). A page
        without models (a failed or foreign scrape) changes nothing and returns `[]`; a model missing from
        a page that has others is forgotten, and starts a fresh window if it comes back.
        """
        if not isinstance(page, Page):  # page text, or a parser's own page, would fail deep in the tracker
            raise TypeError(f"observe takes a Page (llmobs.parse_page(text)), not {type(page).__name__}")
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, not {now!r}")
        if not page.models:
            return []
        for gone in self._trackers.keys() - page.models.keys():
            del self._trackers[gone]
        out = []
        for model in sorted(page.models):
            tracker = self._trackers.get(model)
            if tracker is None:
                attribution = Attribution(model, self.endpoint, self.node, self.gpu_model)
                tracker = self._trackers[model] = ModelEndpointTracker(attribution, self.window_seconds,
                                                                       self.ttft_slo_seconds,
                                                                       scheduler=self.scheduler)
            tracker.observe(page.models[model], now)
            self.implausible_samples += tracker.take_implausible()
            signals = tracker.signals()
            if signals is not None:
                out.append(signals)
        return out
