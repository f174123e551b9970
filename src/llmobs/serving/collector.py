"""Renders the current FleetState as `llmobs_*` metric families (a prometheus_client custom collector).

The metric table below is the public contract documented in docs/metrics.md: names, types and labels
change only with a migration note. The collector reads one immutable state per scrape of /metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmobs import __version__
from llmobs.signals.types import QUANTILES, Distribution, ModelEndpointSignals
from llmobs.state import StateHolder

SIGNAL_LABELS = ("model", "endpoint", "node", "gpu_model")
TARGET_LABELS = ("endpoint", "node", "gpu_model")

# (metric name, help, getter) for plain per model × endpoint gauges.
_GAUGES: tuple[tuple[str, str, Callable[[ModelEndpointSignals], float | None]], ...] = (
    ("llmobs_kv_cache_utilization_ratio", "KV-cache blocks in use (0-1).", lambda s: s.kv_cache_utilization),
    ("llmobs_kv_cache_utilization_max_ratio", "Max KV-cache utilization over the signal window (0-1).",
     lambda s: s.kv_cache_utilization_max),
    ("llmobs_kv_cache_headroom_ratio", "Free KV-cache fraction (1 - utilization).",
     lambda s: s.kv_cache_headroom),
    ("llmobs_kv_cache_capacity_tokens", "KV-cache capacity in tokens (num_gpu_blocks x block_size).",
     lambda s: s.kv_cache_capacity_tokens),
    ("llmobs_requests_running", "Requests in the running batch.", lambda s: s.requests_running),
    ("llmobs_requests_waiting", "Requests waiting in the queue.", lambda s: s.requests_waiting),
    ("llmobs_requests_swapped", "Swapped requests (V0 engines).", lambda s: s.requests_swapped),
    ("llmobs_request_rate", "Finished requests per second over the window.", lambda s: s.request_rate),
    ("llmobs_prompt_tokens_rate", "Prompt tokens per second over the window.", lambda s: s.prompt_tokens_rate),
    ("llmobs_generation_tokens_rate", "Generated tokens per second over the window.",
     lambda s: s.generation_tokens_rate),
    ("llmobs_preemption_rate", "Preemptions per second over the window.", lambda s: s.preemption_rate),
    ("llmobs_prefix_cache_hit_ratio", "Prefix-cache hit ratio over the window (tokens).",
     lambda s: s.prefix_cache_hit_ratio),
    ("llmobs_prompt_length_tokens_mean", "Mean prompt length over the window.", lambda s: s.prompt_length.mean),
    ("llmobs_generation_length_tokens_mean", "Mean generation length over the window.",
     lambda s: s.generation_length.mean),
    ("llmobs_lora_adapters_running", "LoRA adapters with running requests.", lambda s: s.lora_adapters_running),
    ("llmobs_lora_adapters_waiting", "LoRA adapters with waiting requests.", lambda s: s.lora_adapters_waiting),
)

_DISTRIBUTIONS: tuple[tuple[str, str, Callable[[ModelEndpointSignals], Distribution]], ...] = (
    ("llmobs_ttft_seconds", "Time to first token quantiles over the window.", lambda s: s.ttft),
    ("llmobs_itl_seconds", "Inter-token latency quantiles over the window.", lambda s: s.itl),
    ("llmobs_e2e_latency_seconds", "End-to-end request latency quantiles over the window.",
     lambda s: s.e2e_latency),
    ("llmobs_queue_time_seconds", "Queue time quantiles over the window.", lambda s: s.queue_time),
    ("llmobs_prompt_length_tokens", "Prompt length quantiles over the window.", lambda s: s.prompt_length),
    ("llmobs_generation_length_tokens", "Generation length quantiles over the window.",
     lambda s: s.generation_length),
)

# (metric name without _total, help, totals key) for reset-adjusted counters.
_TOTALS: tuple[tuple[str, str, str], ...] = (
    ("llmobs_prompt_tokens", "Prompt tokens, reset-adjusted across vLLM restarts.", "prompt_tokens"),
    ("llmobs_generation_tokens", "Generated tokens, reset-adjusted.", "generation_tokens"),
    ("llmobs_preemptions", "Preemptions, reset-adjusted.", "preemptions"),
    ("llmobs_ttft_slo_requests", "Requests with a TTFT observation (reset-adjusted).", "ttft_slo_requests"),
    ("llmobs_ttft_slo_good", "Requests with TTFT at or under the SLO threshold (reset-adjusted).",
     "ttft_slo_good"),
)


def _label_values(s: ModelEndpointSignals) -> list[str]:
    a = s.attribution
    return [a.model, a.endpoint, a.node, a.gpu_model]


def _quantile_label(q: float) -> str:
    return f"{q:g}"


class FleetCollector(Collector):
    """Yields llmobs' families from the holder's current state on every collect()."""

    def __init__(self, holder: StateHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Metric]:
        state = self.holder.current
        yield from self._self_metrics(state)
        yield from self._target_metrics(state)
        yield from self._signal_metrics(state.signals)

    def _self_metrics(self, state) -> Iterator[Metric]:
        info = GaugeMetricFamily("llmobs_build_info", "llmobs build information.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        yield GaugeMetricFamily("llmobs_scrape_cycle_duration_seconds",
                                "Wall time of the last full scrape cycle.", value=state.cycle_duration_seconds)
        yield GaugeMetricFamily("llmobs_targets", "Configured scrape targets.", value=len(state.targets))
        yield GaugeMetricFamily("llmobs_signal_window_seconds", "Signal window in use.",
                                value=state.window_seconds)

    def _target_metrics(self, state) -> Iterator[Metric]:
        up = GaugeMetricFamily("llmobs_target_up", "1 if the last scrape succeeded.", labels=TARGET_LABELS)
        duration = GaugeMetricFamily("llmobs_scrape_duration_seconds", "Duration of the last scrape.",
                                     labels=TARGET_LABELS)
        failures = GaugeMetricFamily("llmobs_target_consecutive_failures", "Failed scrapes in a row.",
                                     labels=TARGET_LABELS)
        last_ok = GaugeMetricFamily("llmobs_target_last_success_timestamp_seconds",
                                    "Unix time of the last good scrape.", labels=TARGET_LABELS)
        errors = CounterMetricFamily("llmobs_scrape_errors", "Failed scrapes by kind.",
                                     labels=[*TARGET_LABELS, "kind"])
        skipped = CounterMetricFamily("llmobs_parse_skipped_lines", "Page lines skipped by the parser.",
                                      labels=[*TARGET_LABELS, "reason"])
        missing = GaugeMetricFamily("llmobs_vllm_expected_series_missing",
                                    "1 per expected canonical vLLM series the endpoint does not expose.",
                                    labels=[*TARGET_LABELS, "series"])
        resets = CounterMetricFamily("llmobs_counter_resets", "vLLM counter resets seen (restarts).",
                                     labels=TARGET_LABELS)
        dropped = CounterMetricFamily("llmobs_series_dropped",
                                      "Samples dropped by the cardinality guard, by reason.",
                                      labels=[*TARGET_LABELS, "reason"])
        for h in state.targets:
            lv = [h.endpoint, h.labels.get("node", ""), h.labels.get("gpu_model", h.labels.get("gpu", ""))]
            up.add_metric(lv, 1.0 if h.up else 0.0)
            duration.add_metric(lv, h.scrape_duration_seconds)
            failures.add_metric(lv, h.consecutive_failures)
            if h.last_success_time is not None:
                last_ok.add_metric(lv, h.last_success_time)
            for kind, n in sorted(h.errors_by_kind.items()):
                errors.add_metric([*lv, kind], n)
            for reason, n in sorted(h.skipped_lines.items()):
                skipped.add_metric([*lv, reason], n)
            for series in h.missing_series:
                missing.add_metric([*lv, series], 1.0)
            resets.add_metric(lv, h.counter_resets)
            for reason, n in sorted(h.series_dropped.items()):
                dropped.add_metric([*lv, reason], n)
        yield from (up, duration, failures, last_ok, errors, skipped, missing, resets, dropped)

    def _signal_metrics(self, signals: tuple[ModelEndpointSignals, ...]) -> Iterator[Metric]:
        for name, help_text, get in _GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=SIGNAL_LABELS)
            for s in signals:
                value = get(s)
                if value is not None:
                    family.add_metric(_label_values(s), float(value))
            yield family
        for name, help_text, get in _DISTRIBUTIONS:
            family = GaugeMetricFamily(name, help_text, labels=[*SIGNAL_LABELS, "quantile"])
            for s in signals:
                d = get(s)
                for q in QUANTILES:
                    family.add_metric([*_label_values(s), _quantile_label(q)], d.quantiles.get(q, math.nan))
            yield family
        waiting = GaugeMetricFamily("llmobs_requests_waiting_by_reason", "Queued requests by reason.",
                                    labels=[*SIGNAL_LABELS, "reason"])
        finished = GaugeMetricFamily("llmobs_finished_requests_rate", "Finished requests/s by reason.",
                                     labels=[*SIGNAL_LABELS, "reason"])
        requests_total = CounterMetricFamily("llmobs_requests", "Finished requests by reason, reset-adjusted.",
                                             labels=[*SIGNAL_LABELS, "reason"])
        for s in signals:
            lv = _label_values(s)
            for reason, v in sorted(s.requests_waiting_by_reason.items()):
                waiting.add_metric([*lv, reason], v)
            for reason, v in sorted(s.finished_rate_by_reason.items()):
                finished.add_metric([*lv, reason], v)
            for key, v in sorted(s.totals.items()):
                if key.startswith("requests:"):
                    requests_total.add_metric([*lv, key.partition(":")[2]], v)
        yield from (waiting, finished, requests_total)
        for name, help_text, key in _TOTALS:
            family = CounterMetricFamily(name, help_text, labels=SIGNAL_LABELS)
            for s in signals:
                if key in s.totals:
                    family.add_metric(_label_values(s), s.totals[key])
            yield family
