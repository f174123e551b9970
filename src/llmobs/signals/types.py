"""Value types the signal stage produces and every later stage (exporter, forecast, scaler) reads.

They are plain frozen dataclasses so that a snapshot handed to a server thread can never be changed
under it: the pipeline builds a new one each cycle and swaps a reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import sub as _minus
from typing import Final

from llmobs.signals.histogram import histogram_quantiles

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
"""Quantiles llmobs exports for every latency and length distribution."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where a series comes from: the public label contract (`model`, `endpoint`, `node`, `gpu_model`)."""

    model: str
    endpoint: str
    node: str = ""
    gpu_model: str = ""


@dataclass(frozen=True, slots=True)
class Distribution:
    """Quantiles (from histogram bucket deltas) and mean over the signal window.

    `quantiles` maps 0.5/0.9/0.99 to a value, NaN when no observation fell in the window (PromQL
    gives NaN there too; a dashboard shows a gap rather than a made-up zero).
    """

    quantiles: dict[float, float]
    mean: float
    count: float


@dataclass(frozen=True, slots=True)
class CumulativeHistogram:
    """A vLLM histogram as observed since llmobs started its series, for export as a histogram (OTLP).

    `cumulative` holds `le`-cumulative counts at `bounds` (vLLM's own bucket bounds, ascending, last +Inf):
    the observations vLLM made after `start_time`, which is the scrape where llmobs first saw the series or
    saw its bucket layout change. Counts are reset-adjusted (a vLLM restart adds on rather than going back),
    so they never decrease while `start_time` stays the same.
    """

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    count: float
    sum: float
    start_time: float


HistogramPoint = tuple[tuple[float, ...], tuple[float, ...], float, float]
"""A histogram as the signal tracker holds it at one scrape, reset-adjusted: (bounds, cumulative, count, sum),
indexed by BOUNDS, CUMULATIVE, COUNT and SUM (a plain tuple: see llmobs.signals.derive.AdjustedHistogram)."""
BOUNDS: Final = 0
CUMULATIVE: Final = 1
COUNT: Final = 2
SUM: Final = 3


def window_distribution(first: HistogramPoint | None, last: HistogramPoint) -> Distribution:
    """Quantiles and mean of the observations between two scrapes of a histogram, as PromQL's
    `histogram_quantile` over `increase()`; NaN without an earlier scrape of the same bucket layout."""
    bounds, cumulative, count, total = last
    if first is None or first[BOUNDS] != bounds:
        return Distribution(dict.fromkeys(QUANTILES, math.nan), math.nan, 0.0)
    delta = list(map(_minus, cumulative, first[CUMULATIVE]))  # same bounds, so same lengths
    count -= first[COUNT]
    total -= first[SUM]
    quantiles = dict(zip(QUANTILES, histogram_quantiles(QUANTILES, bounds, delta), strict=True))
    mean = total / count if count > 0 and math.isfinite(total) else math.nan
    return Distribution(quantiles, mean, max(count, 0.0))


@dataclass(frozen=True, slots=True)
class WindowHistogram:
    """A histogram's first and last scrape in the signal window, turned into a Distribution when read."""

    first: HistogramPoint | None
    last: HistogramPoint

    def distribution(self) -> Distribution:
        """Quantiles and mean of the window's observations (see window_distribution)."""
        return window_distribution(self.first, self.last)


class SinceStartHistograms(Mapping[str, CumulativeHistogram]):
    """`ModelEndpointSignals.histograms` as the signal tracker builds it: each histogram's observations since
    its baseline scrape, computed when read. Only the OTLP export reads them (three per endpoint per push),
    so building them all on every cycle for every endpoint would be wasted work.

    `latest` and `baselines` must not change afterwards (the tracker hands over its own copies)."""

    __slots__ = ("_baselines", "_latest")

    def __init__(self, latest: Mapping[str, HistogramPoint],
                 baselines: Mapping[str, tuple[float, HistogramPoint]]) -> None:
        self._latest = latest
        self._baselines = baselines

    def __getitem__(self, canonical: str) -> CumulativeHistogram:
        bounds, cumulative, count, total = self._latest[canonical]
        start, (_, base_cumulative, base_count, base_sum) = self._baselines[canonical]
        since = tuple(map(max, repeat(0.0), map(_minus, cumulative, base_cumulative)))  # same bounds
        return CumulativeHistogram(bounds, since, max(0.0, count - base_count), total - base_sum, start)

    def __iter__(self) -> Iterator[str]:
        return iter(self._latest)

    def __len__(self) -> int:
        return len(self._latest)


@dataclass(frozen=True, slots=True)
class ModelEndpointSignals:
    """Everything llmobs derives for one model served on one endpoint, over one window."""

    attribution: Attribution
    window_seconds: float
    kv_cache_utilization: float
    kv_cache_utilization_max: float
    kv_cache_capacity_tokens: float | None
    requests_running: float
    requests_waiting: float
    requests_waiting_by_reason: dict[str, float]
    requests_swapped: float | None
    request_rate: float
    prompt_tokens_rate: float
    generation_tokens_rate: float
    preemption_rate: float
    finished_rate_by_reason: dict[str, float]
    prefix_cache_hit_ratio: float
    ttft: Distribution
    itl: Distribution
    e2e_latency: Distribution
    queue_time: Distribution
    prompt_length: Distribution
    generation_length: Distribution
    lora_adapters_running: int
    lora_adapters_waiting: int
    # Reset-adjusted monotonic totals: safe to rate() in Prometheus across vLLM restarts.
    totals: dict[str, float] = field(default_factory=dict)
    # Every vLLM histogram of the endpoint (by canonical name: ttft, itl, tpot, e2e_latency, ...) since llmobs
    # started its series; exported over OTLP as histograms, not on /metrics. (The tracker hands over a
    # SinceStartHistograms, which computes each one when read.)
    histograms: Mapping[str, CumulativeHistogram] = field(default_factory=dict)
    # The bucket bound each latency SLO's good count is taken at: the configured threshold snapped to the
    # page's nearest bound (so what "good" means is visible); None when the page lacks the histogram.
    ttft_slo_threshold_seconds: float | None = None
    tpot_slo_threshold_seconds: float | None = None
    e2e_slo_threshold_seconds: float | None = None
    # Which scheduler limit binds (llmobs.signals.saturation); None where the tracker did not compute it.
    saturation: Saturation | None = None
    # Signals of vLLM families not every release or configuration exposes. None (so no exported series) when
    # the page lacks the family; NaN when it has it but the window saw no traffic to divide by.
    # The windows of such histograms (prefill_time, decode_time, inference_time, iteration_tokens,
    # kv_block_lifetime, kv_block_idle_before_evict, kv_transfer_time): their quantiles are computed when read
    # (the properties below), not on every cycle for every endpoint.
    windows: dict[str, WindowHistogram] = field(default_factory=dict)
    engine_sleeping: float | None = None  # share of the endpoint's engines asleep (0–1)
    prompt_tokens_by_source_rate: dict[str, float] = field(default_factory=dict)
    prompt_tokens_cached_rate: float | None = None
    prompt_tokens_cached_ratio: float | None = None  # cached ÷ all prompt tokens over the window (0–1)
    prompt_tokens_cached_by_source_rate: dict[str, float] = field(default_factory=dict)
    external_prefix_cache_hit_ratio: float | None = None
    estimated_flops_per_gpu_rate: float | None = None
    estimated_read_bytes_per_gpu_rate: float | None = None
    estimated_write_bytes_per_gpu_rate: float | None = None
    admission_rejections_rate: dict[str, float] = field(default_factory=dict)
    lora_adapters_max: int | None = None  # adapter slots (vLLM's --max-loras)
    # Speculative decoding (present only with a speculative config): accepted ÷ proposed draft tokens, the mean
    # tokens a verification step yields (1 + accepted per draft), and the share of drafts accepted at each
    # draft position ("0" is the first proposed token).
    spec_decode_acceptance_ratio: float | None = None
    spec_decode_mean_acceptance_length: float | None = None
    spec_decode_acceptance_by_position: dict[str, float] = field(default_factory=dict)
    # Prefill/decode disaggregation (KV-connector transfers; NIXL). `disaggregation_role` is the `role` label of
    # these series: the configured role (prefill | decode | mixed), or "unknown" while the page contradicts it.
    kv_transfer_bytes_rate: float | None = None
    kv_transfer_failed_rate: float | None = None
    disaggregation_role: str = "mixed"

    def _window_distribution(self, canonical: str) -> Distribution | None:
        window = self.windows.get(canonical)
        return None if window is None else window.distribution()

    @property
    def prefill_time(self) -> Distribution | None:
        """Time requests spent in the PREFILL phase over the window."""
        return self._window_distribution("prefill_time")

    @property
    def decode_time(self) -> Distribution | None:
        """Time requests spent in the DECODE phase over the window."""
        return self._window_distribution("decode_time")

    @property
    def inference_time(self) -> Distribution | None:
        """Time requests spent RUNNING (prefill + decode) over the window."""
        return self._window_distribution("inference_time")

    @property
    def iteration_tokens(self) -> Distribution | None:
        """Tokens scheduled per engine step over the window."""
        return self._window_distribution("iteration_tokens")

    @property
    def iteration_tokens_mean(self) -> float | None:
        """Mean tokens scheduled per engine step over the window (NaN with no step)."""
        d = self._window_distribution("iteration_tokens")
        return None if d is None else d.mean

    @property
    def kv_block_lifetime(self) -> Distribution | None:
        """How long KV-cache blocks lived, allocation to free, over the window (vLLM --kv-cache-metrics)."""
        return self._window_distribution("kv_block_lifetime")

    @property
    def kv_block_idle_before_evict(self) -> Distribution | None:
        """How long evicted KV-cache blocks sat unused before eviction, over the window."""
        return self._window_distribution("kv_block_idle_before_evict")

    @property
    def kv_transfer_time(self) -> Distribution | None:
        """KV-connector (NIXL) transfer time over the window."""
        return self._window_distribution("kv_transfer_time")

    @property
    def kv_cache_headroom(self) -> float:
        """Fraction of the KV cache still free (1 - utilization), clamped to [0, 1]."""
        return min(1.0, max(0.0, 1.0 - self.kv_cache_utilization))


# --- saturation: which scheduler resource binds (signals.saturation computes it) -------------------------------

SATURATION_RESOURCES: tuple[str, ...] = ("kv", "prefill", "batch")
"""The resources whose use llmobs compares with their limit, in the order a tie is named."""


@dataclass(frozen=True, slots=True)
class Saturation:
    """How close one endpoint's model is to each scheduler limit over the window, and which one binds.

    `ratios` holds the resources whose ratio could be computed (0–1); a resource missing there is unknown,
    and `unknown` says why (one reason per missing input, e.g. `max_num_seqs_unknown`). `bottleneck` is a
    resource name, `none` (every ratio below the binding floor: nothing is near a limit) or `unknown` (some
    ratio is unknown, so naming the largest known one could be wrong).
    """

    ratios: dict[str, float]
    bottleneck: str
    spare_tokens_per_second: float | None
    unknown: tuple[str, ...] = ()

    @property
    def binding_ratio(self) -> float:
        """The largest ratio when every ratio is known (the KEDA `saturation` signal), else NaN."""
        if self.bottleneck == "unknown" or not self.ratios:
            return math.nan
        return max(self.ratios.values())
