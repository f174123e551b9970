"""Derives serving signals for one model on one endpoint from its successive scrapes.

Pure computation: the tracker is fed normalized scrapes and keeps a time window of reset-adjusted
points; `signals()` computes rates, ratios and quantiles from the window's first and last point the
way PromQL's `rate` and `histogram_quantile` would. No I/O, no clock: time comes with each scrape.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any

from llmobs.signals.counters import (
    MAX_PLAUSIBLE_COUNT,
    HistogramResetAdjuster,
    ResetAdjuster,
    repair_histogram,
)
from llmobs.signals.saturation import IterationTokens, saturation
from llmobs.signals.types import (
    BOUNDS,
    COUNT,
    CUMULATIVE,
    QUANTILES,
    SUM,
    Attribution,
    Distribution,
    HistogramPoint,
    ModelEndpointSignals,
    SinceStartHistograms,
    WindowHistogram,
    window_distribution,
)
from llmobs.sources.normalize import ModelScrape
from llmobs.sources.targets import SchedulerLimits

DISTRIBUTIONS = ("ttft", "itl", "e2e_latency", "queue_time", "prompt_length", "generation_length")
COUNTERS = ("request_success", "prompt_tokens", "generation_tokens", "preemptions",
            "prefix_cache_queries", "prefix_cache_hits")
# Plausible range of each gauge. Those that count requests cannot be negative or infinite; KV usage is a
# fraction (outside [0, 1] the page is wrong, and clamping would invent a reading); any other gauge must be
# finite. A value outside its range (NaN included) is dropped and counted.
_ANY_FINITE = (-sys.float_info.max, sys.float_info.max)
# engine_sleep_state is 0/1 per engine, and a share of engines once combined.
_GAUGE_RANGES = {"kv_cache_usage": (0.0, 1.0), "engine_sleep_state": (0.0, 1.0), **dict.fromkeys(
    ("requests_running", "requests_waiting", "requests_swapped", "requests_waiting_by_reason"), (0.0, 1e12))}
SATURATION_HISTOGRAMS = ("iteration_tokens",)
"""Histograms the saturation ratios read (llmobs.signals.saturation): tokens per engine step."""
OPTIONAL_DISTRIBUTIONS = ("prefill_time", "decode_time", "inference_time", "iteration_tokens", "kv_block_lifetime",
                          "kv_block_idle_before_evict", "kv_transfer_time")
"""Histograms only some vLLM releases or configurations expose: their Distribution is None, not NaN, when the
page lacks them (and then they cost nothing: each is one dict lookup per cycle)."""
ROLES = ("prefill", "decode", "mixed")
"""Prefill/decode disaggregation roles a target may be given (config `role:` or the discovery pod label)."""
SLO_HISTOGRAMS: dict[str, str] = {"ttft": "ttft", "tpot": "tpot", "e2e": "e2e_latency"}
"""Latency SLO → the canonical vLLM histogram its good/total counts come from. Each holds one observation
per request (TPOT is vLLM's per-request `request_time_per_output_token_seconds`, not the per-token ITL
histogram), so good ÷ total is a share of requests."""


SINCE_START_HISTOGRAMS = frozenset((*DISTRIBUTIONS, *SLO_HISTOGRAMS.values()))
"""The histograms kept since their first scrape (`ModelEndpointSignals.histograms`, what the OTLP export reads
from): the optional families are windowed only, so they add no per-cycle copy."""
TRACKED_HISTOGRAMS = SINCE_START_HISTOGRAMS | {*OPTIONAL_DISTRIBUTIONS, *SATURATION_HISTOGRAMS,
                                               "kv_transfer_bytes"}
"""The histograms a tracker reset-adjusts and windows: those a signal or the OTLP histograms read. Any other
histogram on a page is passed over: adjusting it would cost every scrape of every endpoint for nothing."""


AdjustedHistogram = HistogramPoint
"""A histogram at one scrape, reset-adjusted: the plain tuple (bounds, cumulative, count, sum) with the BOUNDS,
CUMULATIVE, COUNT and SUM indices of llmobs.signals.types. Not a class: a window holds one per histogram per
scrape of every endpoint for a minute, and the garbage collector stops scanning a tuple of floats after its
first pass, while it keeps scanning every instance of a class (a large share of the exporter's GC time)."""


@dataclass(frozen=True, slots=True)
class WindowPoint:
    time: float
    counters: dict[str, dict[str, float]]
    histograms: dict[str, AdjustedHistogram]
    kv_cache_usage: float
    requests_running: float = math.nan  # the saturation's batch ratio and busy share average it over the window


def _nan_distribution() -> Distribution:
    return Distribution({q: math.nan for q in QUANTILES}, math.nan, 0.0)


_distribution = window_distribution


def _nearest_bound_index(bounds: tuple[float, ...], threshold: float) -> int | None:
    """The finite bucket bound closest to `threshold` (the lower one on a tie); None when there is none.

    A histogram counts observations only at its bounds, so an SLO threshold between two of them is
    counted at the nearest (exported as llmobs_<slo>_slo_threshold_seconds). A page with only the +Inf
    bucket has no bound to count at: its SLO series are left out rather than every request called good.
    """
    finite = [i for i, b in enumerate(bounds) if math.isfinite(b)]
    return min(finite, key=lambda i: abs(bounds[i] - threshold)) if finite else None


class ModelEndpointTracker:
    """Window of reset-adjusted scrapes of one model on one endpoint."""

    def __init__(self, attribution: Attribution, window_seconds: float, ttft_slo_seconds: float = 1.0,
                 tpot_slo_seconds: float = 0.1, e2e_slo_seconds: float = 30.0,
                 scheduler: SchedulerLimits | None = None, role: str = "mixed"):
        self.attribution = attribution
        self.scheduler = scheduler or SchedulerLimits()  # the saturation ratios' limits, where configured
        self.window_seconds = window_seconds
        # SLO (a SLO_HISTOGRAMS key) → the configured threshold, before snapping to a bucket bound.
        self.slo_seconds = {"ttft": ttft_slo_seconds, "tpot": tpot_slo_seconds, "e2e": e2e_slo_seconds}
        # SLO → (bucket bounds, index its threshold snaps to): bounds change only when vLLM restarts with others.
        self._slo_snapped: dict[str, tuple[tuple[float, ...], int | None]] = {}
        self._points: deque[WindowPoint] = deque()
        self._counter_adjusters: dict[tuple[str, str], ResetAdjuster] = {}
        self._hist_adjusters: dict[str, HistogramResetAdjuster] = {}
        # Per histogram: the scrape time and reset-adjusted value its exported series counts from.
        self._hist_baselines: dict[str, tuple[float, AdjustedHistogram]] = {}
        self._latest: ModelScrape | None = None
        self._gauges: dict[str, dict[str, float]] = {}
        self._kv_capacity: float | None = None
        # Samples not believed since the last `take_implausible()` (llmobs_series_dropped_total{reason}).
        self._implausible = 0
        # The engines' mean `awake` on the last page that had it, and how often it changed between pages:
        # a flapping sleep state shows as a climbing counter rather than as whichever value a scrape caught.
        self._last_awake: float | None = None
        self._sleep_transitions = 0
        # Prefill/decode disaggregation: the role the target was given, checked against each page (see
        # `_check_role`). A role that is not one of ROLES is never believed.
        self.role = role
        self._role_conflicts = 0
        self._role_contradicted = self._role_conflict_started = role not in ROLES

    @property
    def resets(self) -> int:
        """Counter resets seen (vLLM restarts), for the exporter's self-metrics."""
        return max((a.resets for a in self._counter_adjusters.values()), default=0)

    def take_implausible(self) -> int:
        """Samples dropped or held as implausible since the last call (counter decreases that are not
        restarts, NaN/±Inf/negative values, inconsistent histograms, KV usage outside [0, 1])."""
        n, self._implausible = self._implausible, 0
        return n

    def _plausible_gauges(self, scrape: ModelScrape) -> dict[str, dict[str, float]]:
        gauges: dict[str, dict[str, float]] = {}
        for canonical, per_sub in scrape.gauges.items():
            low, high = _GAUGE_RANGES.get(canonical, _ANY_FINITE)
            for v in per_sub.values():
                if not low <= v <= high:  # also NaN
                    break
            else:  # the usual case: all plausible, the page's own dict
                gauges[canonical] = per_sub
                continue
            kept = {sub: v for sub, v in per_sub.items() if low <= v <= high}
            self._implausible += len(per_sub) - len(kept)
            if kept:
                gauges[canonical] = kept
        return gauges

    def _gauge(self, canonical: str) -> float:
        values = self._gauges.get(canonical)
        return sum(values.values()) if values else math.nan

    def observe(self, scrape: ModelScrape, time: float) -> None:
        if self._points and time <= self._points[-1].time:
            return  # out-of-order or duplicate scrape: ignoring it keeps rates finite
        counters: dict[str, dict[str, float]] = {}
        for canonical, per_sub in scrape.counters.items():
            adjusted: dict[str, float] = {}
            for sub, raw in per_sub.items():
                adjuster = self._counter_adjusters.get((canonical, sub))
                if adjuster is None:
                    adjuster = self._counter_adjusters[(canonical, sub)] = ResetAdjuster()
                last = adjuster.last_raw
                if last is not None and last <= raw <= MAX_PLAUSIBLE_COUNT:  # the usual case, inline
                    adjuster.last_raw = raw
                    total = raw + adjuster.offset
                    if total < adjuster.last_total:  # one ulp below after a hold: never let a total fall
                        total = adjuster.last_total
                    adjusted[sub] = adjuster.last_total = total
                    continue
                before = adjuster.implausible
                value = adjuster.adjust(raw)
                self._implausible += adjuster.implausible - before
                if value is not None:
                    adjusted[sub] = value
                elif adjuster.last_raw is not None:  # keep the series at its last total, not a gap
                    adjusted[sub] = adjuster.last_total
            counters[canonical] = adjusted
        histograms: dict[str, AdjustedHistogram] = {}
        for canonical, h in scrape.histograms.items():
            if canonical not in TRACKED_HISTOGRAMS:
                continue
            cumulative, repaired = repair_histogram(h.cumulative, h.count)
            if cumulative is None:  # not a histogram a server can report: keep the last point's, counted
                self._implausible += 1
                previous = self._points[-1].histograms.get(canonical) if self._points else None
                if previous is not None and previous[BOUNDS] == h.bounds:
                    histograms[canonical] = previous
                continue
            self._implausible += repaired
            hist_adjuster = self._hist_adjusters.setdefault(canonical, HistogramResetAdjuster())
            before = hist_adjuster.implausible
            result = hist_adjuster.adjust(h.bounds, cumulative, h.count, h.sum)
            self._implausible += hist_adjuster.implausible - before
            if result is None:
                # Bucket layout changed: earlier points of this histogram cannot be subtracted.
                for p in self._points:
                    p.histograms.pop(canonical, None)
                result = (cumulative, h.count, h.sum)
            cumulative, count, total = result
            histograms[canonical] = (h.bounds, cumulative, count, total)
            if canonical in SINCE_START_HISTOGRAMS and (canonical not in self._hist_baselines
                                                        or self._hist_baselines[canonical][1][BOUNDS] != h.bounds):
                # a new dict, not an update: the signals already handed out keep the baselines they were given
                self._hist_baselines = {**self._hist_baselines, canonical: (time, histograms[canonical])}
        self._gauges = self._plausible_gauges(scrape)
        awake = self._gauges.get("engine_sleep_state", {}).get("awake")
        if awake is not None:
            self._sleep_transitions += self._last_awake is not None and awake != self._last_awake
            self._last_awake = awake
        if self.role != "mixed" and self._points:
            self._check_role(self._points[-1], counters, histograms)
        capacity = scrape.kv_capacity_tokens
        self._kv_capacity = capacity if capacity is not None and 0 < capacity <= 1e15 else None
        self._implausible += capacity is not None and self._kv_capacity is None
        self._points.append(WindowPoint(time, counters, histograms, self._gauge("kv_cache_usage"),
                                        self._gauge("requests_running")))
        self._latest = scrape
        # The oldest point is the base the window's deltas start from: the last one at or before the window's
        # start, so the window is covered whole. After a scrape gap longer than the window that base is from
        # before the gap, and a rate against it is the gap's average (pages at 0, 1000 and 1010 s, 60-s window:
        # 0.02 req/s where the last 10 s ran at 1): a base more than a window before the window's start gives
        # way to the next point once there is one, as Prometheus' rate() reads only the window's samples.
        window = self.window_seconds
        while len(self._points) > 2 and (self._points[1].time <= time - window
                                         or self._points[0].time < time - 2 * window):
            self._points.popleft()

    def _check_role(self, previous: WindowPoint, counters: dict[str, dict[str, float]],
                    histograms: dict[str, AdjustedHistogram]) -> None:
        """Compare the configured disaggregation role with what the page shows between two scrapes.

        A node that received prompt KV from another instance (vLLM's `external_kv_transfer` prompt tokens, or
        KV-connector transfers, which the decode side initiates) is acting as a decode node; one that computed
        prompt tokens itself and received none is doing its own prefill. So `prefill` + KV received, or
        `decode` + local prefill and nothing received, contradicts the configuration: counted (each such
        scrape), and the series' `role` reads "unknown" until a page agrees again. No traffic: no verdict."""
        before = previous.counters.get("prompt_tokens_by_source", {})
        now = counters.get("prompt_tokens_by_source", {})
        received = now.get("external_kv_transfer", 0.0) > before.get("external_kv_transfer", 0.0)
        local = now.get("local_compute", 0.0) > before.get("local_compute", 0.0)
        transfers, earlier = histograms.get("kv_transfer_time"), previous.histograms.get("kv_transfer_time")
        if transfers is not None and earlier is not None and transfers[COUNT] > earlier[COUNT]:
            received = True
        if self.role not in ROLES:
            contradicted = True
        elif received or local:
            contradicted = (self.role == "prefill" and received) or (self.role == "decode" and not received)
        else:
            return
        self._role_conflicts += contradicted
        self._role_conflict_started |= contradicted and not self._role_contradicted
        self._role_contradicted = contradicted

    def take_role_conflict_started(self) -> bool:
        """Whether a page contradicted the configured role after agreeing with it (or from the start) since
        the last call: the caller logs it once per episode, the counter counts every scrape."""
        started, self._role_conflict_started = self._role_conflict_started, False
        return started

    def _counter_delta(self, canonical: str, first: WindowPoint, last: WindowPoint) -> dict[str, float]:
        a = first.counters.get(canonical, {})
        return {sub: v - a.get(sub, v) for sub, v in last.counters.get(canonical, {}).items()}

    def _first_with_histogram(self, canonical: str) -> AdjustedHistogram | None:
        for p in self._points:
            h = p.histograms.get(canonical)
            if h is not None:
                return h
        return None

    def signals(self) -> ModelEndpointSignals | None:
        """Signals over the window; None until two scrapes exist (a rate needs two points)."""
        if len(self._points) < 2 or self._latest is None:
            return None
        first, last = self._points[0], self._points[-1]
        elapsed = last.time - first.time
        scrape = self._latest

        def rate(canonical: str) -> float:
            return sum(self._counter_delta(canonical, first, last).values()) / elapsed

        finished = {k: v / elapsed for k, v in self._counter_delta("request_success", first, last).items()}
        hits = sum(self._counter_delta("prefix_cache_hits", first, last).values())
        queries = sum(self._counter_delta("prefix_cache_queries", first, last).values())
        dists = {}
        for name in DISTRIBUTIONS:
            latest_h = last.histograms.get(name)
            dists[name] = (_distribution(self._first_with_histogram(name), latest_h)
                           if latest_h is not None else _nan_distribution())
        hists = last.histograms
        windows = {name: WindowHistogram(self._first_with_histogram(name), hists[name])
                   for name in OPTIONAL_DISTRIBUTIONS if name in hists}
        kv_values = [p.kv_cache_usage for p in self._points if not math.isnan(p.kv_cache_usage)]
        swapped = self._gauge("requests_swapped")
        slo_bounds = self._slo_bounds(last)
        return ModelEndpointSignals(
            attribution=self.attribution,
            window_seconds=elapsed,
            kv_cache_utilization=last.kv_cache_usage,
            kv_cache_utilization_max=max(kv_values) if kv_values else math.nan,
            kv_cache_capacity_tokens=self._kv_capacity,
            requests_running=self._gauge("requests_running"),
            requests_waiting=self._gauge("requests_waiting"),
            requests_waiting_by_reason=dict(self._gauges.get("requests_waiting_by_reason", {})),
            requests_swapped=None if math.isnan(swapped) else swapped,
            request_rate=sum(finished.values()),
            prompt_tokens_rate=rate("prompt_tokens"),
            generation_tokens_rate=rate("generation_tokens"),
            preemption_rate=rate("preemptions"),
            finished_rate_by_reason=finished,
            # hits ≤ queries on a sound page; a broken one must not make a ratio above 1
            prefix_cache_hit_ratio=min(1.0, hits / queries) if queries > 0 else math.nan,
            ttft=dists["ttft"],
            itl=dists["itl"],
            e2e_latency=dists["e2e_latency"],
            queue_time=dists["queue_time"],
            prompt_length=dists["prompt_length"],
            generation_length=dists["generation_length"],
            lora_adapters_running=scrape.lora_running,
            lora_adapters_waiting=scrape.lora_waiting,
            lora_adapters_max=scrape.lora_max,
            totals=self._totals(last, slo_bounds),
            histograms=self._since_start(last),
            ttft_slo_threshold_seconds=_bound(last, slo_bounds, "ttft"),
            tpot_slo_threshold_seconds=_bound(last, slo_bounds, "tpot"),
            e2e_slo_threshold_seconds=_bound(last, slo_bounds, "e2e"),
            saturation=saturation(
                kv_usage=[p.kv_cache_usage for p in self._points],
                running=[p.requests_running for p in self._points],
                iteration_tokens=self._iteration_tokens(last), limits=self.scheduler,
                tokens_rate=(rate("prompt_tokens") + rate("generation_tokens")
                             if {"prompt_tokens", "generation_tokens"} <= last.counters.keys() else math.nan)),
            windows=windows,
            engine_sleeping=self._engine_sleeping(),
            prompt_tokens_by_source_rate=self._rates_by(first, last, "prompt_tokens_by_source"),
            prompt_tokens_cached_rate=self._optional_rate(first, last, "prompt_tokens_cached"),
            prompt_tokens_cached_ratio=self._optional_ratio(first, last, "prompt_tokens_cached", "prompt_tokens"),
            prompt_tokens_cached_by_source_rate=self._rates_by(first, last, "prompt_tokens_cached_by_source"),
            external_prefix_cache_hit_ratio=self._optional_ratio(
                first, last, "external_prefix_cache_hits", "external_prefix_cache_queries"),
            estimated_flops_per_gpu_rate=self._optional_rate(first, last, "estimated_flops_per_gpu"),
            estimated_read_bytes_per_gpu_rate=self._optional_rate(first, last, "estimated_read_bytes_per_gpu"),
            estimated_write_bytes_per_gpu_rate=self._optional_rate(first, last, "estimated_write_bytes_per_gpu"),
            admission_rejections_rate=self._rates_by(first, last, "admission_rejections"),
            **(self._spec_decode(first, last) if "spec_decode_drafts" in last.counters else {}),
            **(self._disaggregation(first, last) if self.role != "mixed" or "kv_transfer_bytes" in hists
               or "kv_transfer_failed" in last.counters else {}),
        )

    def _iteration_tokens(self, last: WindowPoint) -> IterationTokens | None:
        """The window's delta of `vllm:iteration_tokens_total` (steps, tokens); None without the histogram."""
        latest = last.histograms.get("iteration_tokens")
        first = self._first_with_histogram("iteration_tokens")
        if latest is None or first is None:
            return None
        return IterationTokens(steps=latest[COUNT] - first[COUNT], tokens=latest[SUM] - first[SUM])

    def _spec_decode(self, first: WindowPoint, last: WindowPoint) -> dict[str, Any]:
        """Speculative-decoding acceptance over the window (vLLM's SpecDecodingProm counters). Shares are
        capped at 1 (a broken page must not report more accepted than proposed); NaN with no draft."""
        drafts = sum(self._counter_delta("spec_decode_drafts", first, last).values())
        proposed = sum(self._counter_delta("spec_decode_draft_tokens", first, last).values())
        accepted = sum(self._counter_delta("spec_decode_accepted_tokens", first, last).values())
        has_tokens = "spec_decode_draft_tokens" in last.counters and "spec_decode_accepted_tokens" in last.counters
        per_position = self._counter_delta("spec_decode_accepted_tokens_per_pos", first, last)
        return {
            "spec_decode_acceptance_ratio": (min(1.0, accepted / proposed) if proposed > 0 else math.nan)
            if has_tokens else None,
            "spec_decode_mean_acceptance_length": (1.0 + accepted / drafts if drafts > 0 else math.nan)
            if "spec_decode_accepted_tokens" in last.counters else None,
            "spec_decode_acceptance_by_position": {
                pos: min(1.0, n / drafts) if drafts > 0 else math.nan for pos, n in per_position.items()},
        }

    def _disaggregation(self, first: WindowPoint, last: WindowPoint) -> dict[str, Any]:
        """KV-connector transfer rates and the `role` label they carry (see `_check_role`)."""
        elapsed = last.time - first.time
        sent, start = last.histograms.get("kv_transfer_bytes"), first.histograms.get("kv_transfer_bytes")
        bytes_rate = None
        if sent is not None:
            bytes_rate = (sent[SUM] - start[SUM]) / elapsed if start is not None and start[BOUNDS] == sent[BOUNDS] \
                else math.nan
        return {
            "kv_transfer_bytes_rate": bytes_rate,
            "kv_transfer_failed_rate": self._optional_rate(first, last, "kv_transfer_failed"),
            "disaggregation_role": "unknown" if self._role_contradicted else self.role,
        }

    def _optional_rate(self, first: WindowPoint, last: WindowPoint, canonical: str) -> float | None:
        """Per-second increase of a counter over the window; None when the latest page lacks it."""
        if not last.counters.get(canonical):
            return None
        return sum(self._counter_delta(canonical, first, last).values()) / (last.time - first.time)

    def _rates_by(self, first: WindowPoint, last: WindowPoint, canonical: str) -> dict[str, float]:
        """Per-second increase of each value of a counter's `by` label; empty when the page lacks the counter."""
        elapsed = last.time - first.time
        return {sub: v / elapsed for sub, v in self._counter_delta(canonical, first, last).items()}

    def _optional_ratio(self, first: WindowPoint, last: WindowPoint, part: str, whole: str) -> float | None:
        """`part` ÷ `whole` increase over the window, capped at 1 (a broken page must not make a share above 1);
        NaN when `whole` did not grow, None when the latest page lacks either counter."""
        if not last.counters.get(part) or not last.counters.get(whole):
            return None
        den = sum(self._counter_delta(whole, first, last).values())
        num = sum(self._counter_delta(part, first, last).values())
        return min(1.0, num / den) if den > 0 else math.nan

    def _engine_sleeping(self) -> float | None:
        """Share of the endpoint's engines asleep: 1 - the engines' mean `awake` (vLLM sets awake 0 at sleep
        level 1 or 2). None when the page has no `awake` value (a release without the family, or a value out
        of [0, 1], which the gauge check dropped and counted)."""
        awake = self._gauges.get("engine_sleep_state", {}).get("awake")
        return None if awake is None else 1.0 - awake

    def _since_start(self, last: WindowPoint) -> SinceStartHistograms:
        """Each histogram's observations since its baseline scrape (see CumulativeHistogram), computed when read."""
        latest = {c: h for c, h in last.histograms.items() if c in SINCE_START_HISTOGRAMS}
        return SinceStartHistograms(latest, self._hist_baselines)

    def _slo_bounds(self, last: WindowPoint) -> dict[str, int]:
        """SLO → index of the bucket bound its threshold is counted at, for each SLO whose histogram the
        latest page carries with a finite bound. An SLO missing here has no series: a page without the
        histogram must not read as 100 % good or as 0 (the missing histogram itself is reported as
        llmobs_vllm_expected_series_missing)."""
        out: dict[str, int] = {}
        for slo, canonical in SLO_HISTOGRAMS.items():
            h = last.histograms.get(canonical)
            if h is None:
                continue
            snapped = self._slo_snapped.get(slo)
            bounds = h[BOUNDS]
            if snapped is None or snapped[0] != bounds:
                snapped = self._slo_snapped[slo] = (bounds, _nearest_bound_index(bounds, self.slo_seconds[slo]))
            if snapped[1] is not None:
                out[slo] = snapped[1]
        return out

    def _totals(self, last: WindowPoint, slo_bounds: dict[str, int]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for reason, v in last.counters.get("request_success", {}).items():
            totals[f"requests:{reason}"] = v
        for canonical in ("prompt_tokens", "generation_tokens", "preemptions"):
            values = last.counters.get(canonical)
            if values:
                totals[canonical] = sum(values.values())
        if self._last_awake is not None:
            totals["engine_sleep_transitions"] = float(self._sleep_transitions)
        if self.role != "mixed":
            totals["disaggregation_role_conflicts"] = float(self._role_conflicts)
        for slo, i in slo_bounds.items():
            h = last.histograms[SLO_HISTOGRAMS[slo]]
            totals[f"{slo}_slo_requests"] = h[COUNT]
            totals[f"{slo}_slo_good"] = h[CUMULATIVE][i]  # ≤ count: the adjusted buckets are capped at it
        return totals


def _bound(last: WindowPoint, slo_bounds: dict[str, int], slo: str) -> float | None:
    """The bucket bound `slo`'s good count is taken at (its threshold as counted), None without one."""
    i = slo_bounds.get(slo)
    return None if i is None else last.histograms[SLO_HISTOGRAMS[slo]][BOUNDS][i]
