"""Renders the current FleetState as `llmobs_*` metric families (a prometheus_client custom collector).

Names, types, labels and help are the metric catalogue's (llmobs.metrics_catalogue, the public contract
docs/metrics.md is generated from); the per model × endpoint rows name the ModelEndpointSignals field they
render, so a plain signal is exported by adding its catalogue row. The collector reads one immutable state
per scrape of /metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from operator import attrgetter
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from llmobs import __version__
from llmobs.metric_families import family, histogram_family
from llmobs.metrics_catalogue import ROLE_LABELS, SIGNAL_LABELS, MetricSpec, section
from llmobs.signals.coldstart import COLD_START_BUCKETS
from llmobs.signals.types import QUANTILES, ModelEndpointSignals
from llmobs.state import FleetState, StateHolder

_SERVING = section("serving")
# Per model × endpoint gauges read straight off a ModelEndpointSignals field.
_GAUGES: tuple[MetricSpec, ...] = tuple(s for s in _SERVING if s.type == "gauge" and s.labels == SIGNAL_LABELS
                                        and not (s.signal_field or "").startswith("saturation."))
# Window quantiles of a Distribution field.
_DISTRIBUTIONS: tuple[MetricSpec, ...] = tuple(s for s in _SERVING if s.labels == (*SIGNAL_LABELS, "quantile"))
# Reset-adjusted counters: `signal_field` is the key in ModelEndpointSignals.totals.
# Per model × endpoint gauges with one more label, read off a `dict[label value, float]` field (the
# families the loop in `_signal_metrics` fills by hand are left out).
_BY_LABEL: tuple[MetricSpec, ...] = tuple(
    s for s in _SERVING if s.type == "gauge" and len(s.labels) == len(SIGNAL_LABELS) + 1
    and s.labels[:-1] == SIGNAL_LABELS and s.labels[-1] not in ("quantile", "role")
    and s.name not in ("llmobs_requests_waiting_by_reason", "llmobs_finished_requests_rate")
    and not (s.signal_field or "").startswith("saturation."))  # _saturation_metrics renders those
# Prefill/decode disaggregation series: the signal labels plus `role` (ModelEndpointSignals.disaggregation_role).
_ROLE_GAUGES: tuple[MetricSpec, ...] = tuple(s for s in _SERVING if s.type == "gauge" and s.labels == ROLE_LABELS)
_ROLE_DISTRIBUTIONS: tuple[MetricSpec, ...] = tuple(s for s in _SERVING if s.labels == (*ROLE_LABELS, "quantile"))
_TOTALS: tuple[MetricSpec, ...] = tuple(s for s in _SERVING if s.type == "counter" and s.labels == SIGNAL_LABELS)


def _label_values(s: ModelEndpointSignals) -> list[str]:
    a = s.attribution
    return [a.model, a.endpoint, a.node, a.gpu_model]


def _field_getter(spec: MetricSpec) -> attrgetter[Any]:
    """The getter of the ModelEndpointSignals field a per-endpoint gauge or distribution reads."""
    if spec.signal_field is None:
        raise ValueError(f"{spec.name}: a per-endpoint serving metric must name its ModelEndpointSignals field")
    return attrgetter(spec.signal_field)


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
        yield from _door_metrics(state)

    def _self_metrics(self, state: FleetState) -> Iterator[Metric]:
        info = family("llmobs_build_info")
        info.add_metric([__version__], 1.0)
        yield info
        yield family("llmobs_scrape_cycle_duration_seconds", state.cycle_duration_seconds)
        yield family("llmobs_targets", len(state.targets))
        yield family("llmobs_signal_window_seconds", state.window_seconds)
        yield from self._cold_start_metrics(state)

    @staticmethod
    def _cold_start_metrics(state: FleetState) -> Iterator[Metric]:
        cold = histogram_family("llmobs_replica_cold_start_seconds")
        rejected = family("llmobs_replica_cold_starts_rejected_total")
        bounds = [f"{b:g}" for b in COLD_START_BUCKETS] + ["+Inf"]
        for model, summary in state.cold_starts.items():
            for h in summary.histograms:
                counts = [*h.bucket_counts, h.count]
                cold.add_metric([model, h.start, h.stage], list(zip(bounds, map(float, counts), strict=True)),
                                sum_value=h.sum)
            for reason, n in sorted(summary.rejected.items()):
                rejected.add_metric([model, reason], float(n))
        yield from (cold, rejected)

    def _target_metrics(self, state: FleetState) -> Iterator[Metric]:
        up = family("llmobs_target_up")
        duration = family("llmobs_scrape_duration_seconds")
        failures = family("llmobs_target_consecutive_failures")
        last_ok = family("llmobs_target_last_success_timestamp_seconds")
        errors = family("llmobs_scrape_errors_total")
        skipped = family("llmobs_parse_skipped_lines_total")
        missing = family("llmobs_vllm_expected_series_missing")
        resets = family("llmobs_counter_resets_total")
        dropped = family("llmobs_series_dropped_total")
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
        for spec in _GAUGES:
            gauge, get = family(spec), _field_getter(spec)
            for s in signals:
                value = get(s)
                if value is not None:
                    gauge.add_metric(_label_values(s), float(value))
            yield gauge
        for spec in _DISTRIBUTIONS:
            quantiles, get = family(spec), _field_getter(spec)
            for s in signals:
                d = get(s)
                if d is None:  # a histogram only some vLLM releases expose, absent from this page
                    continue
                for q in QUANTILES:
                    quantiles.add_metric([*_label_values(s), _quantile_label(q)], d.quantiles.get(q, math.nan))
            yield quantiles
        waiting = family("llmobs_requests_waiting_by_reason")
        finished = family("llmobs_finished_requests_rate")
        requests_total = family("llmobs_requests_total")
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
        for spec in _BY_LABEL:
            by_label, get = family(spec), _field_getter(spec)
            for s in signals:
                for value, v in sorted(get(s).items()):
                    by_label.add_metric([*_label_values(s), value], v)
            yield by_label
        yield from _role_metrics(signals)
        for spec in _TOTALS:
            total = family(spec)
            for s in signals:
                if spec.signal_field in s.totals:
                    total.add_metric(_label_values(s), s.totals[spec.signal_field])
            yield total
        yield from _saturation_metrics(signals)


def _saturation_metrics(signals: tuple[ModelEndpointSignals, ...]) -> Iterator[Metric]:
    """The saturation families (llmobs.signals.saturation): a ratio per known resource, the binding ratio and
    spare capacity only when known, 1 on the bottleneck, 1 per reason a ratio is unknown."""
    ratio = family("llmobs_saturation_ratio")
    binding = family("llmobs_saturation_binding_ratio")
    bottleneck = family("llmobs_bottleneck")
    spare = family("llmobs_spare_capacity_tokens_rate")
    unknown = family("llmobs_saturation_unknown")
    for s in signals:
        sat = s.saturation
        if sat is None:
            continue
        lv = _label_values(s)
        for resource, v in sorted(sat.ratios.items()):
            ratio.add_metric([*lv, resource], v)
        if not math.isnan(sat.binding_ratio):
            binding.add_metric(lv, sat.binding_ratio)
        bottleneck.add_metric([*lv, sat.bottleneck], 1.0)
        if sat.spare_tokens_per_second is not None:
            spare.add_metric(lv, sat.spare_tokens_per_second)
        for reason in sat.unknown:
            unknown.add_metric([*lv, reason], 1.0)
    yield from (ratio, binding, bottleneck, spare, unknown)


def _door_metrics(state: FleetState) -> Iterator[Metric]:
    """`llmobs_door_*`: per model × door demand, and each door's health."""
    rate, rejected, pending = (family("llmobs_door_request_rate"), family("llmobs_door_rejected_rate"),
                               family("llmobs_door_pending_requests"))
    latency, total, rejected_total = (family("llmobs_door_latency_seconds"), family("llmobs_door_requests_total"),
                                      family("llmobs_door_rejected_total"))
    for d in state.doors:
        lv = [d.model, d.door, d.kind]
        rate.add_metric(lv, d.request_rate)
        rejected.add_metric(lv, d.rejected_rate)
        if d.pending is not None:
            pending.add_metric(lv, d.pending)
        if d.latency is not None:
            for q in QUANTILES:
                latency.add_metric([*lv, _quantile_label(q)], d.latency.quantiles.get(q, math.nan))
        total.add_metric(lv, d.requests_total)
        rejected_total.add_metric(lv, d.rejected_total)
    up, problems = family("llmobs_door_up"), family("llmobs_door_problems_total")
    for h in state.door_health:
        up.add_metric([h.door, h.kind], 1.0 if h.up else 0.0)
        for reason, n in sorted(h.problems.items()):
            problems.add_metric([h.door, h.kind, reason], n)
    yield from (rate, rejected, pending, latency, total, rejected_total, up, problems)


def _role_metrics(signals: tuple[ModelEndpointSignals, ...]) -> Iterator[Metric]:
    """The disaggregation series, labelled with the endpoint's `role`; absent where the page lacks the family."""
    for spec in _ROLE_GAUGES:
        gauge, get = family(spec), _field_getter(spec)
        for s in signals:
            value = get(s)
            if value is not None:
                gauge.add_metric([*_label_values(s), s.disaggregation_role], float(value))
        yield gauge
    for spec in _ROLE_DISTRIBUTIONS:
        quantiles, get = family(spec), _field_getter(spec)
        for s in signals:
            d = get(s)
            if d is not None:
                for q in QUANTILES:
                    quantiles.add_metric([*_label_values(s), s.disaggregation_role, _quantile_label(q)],
                                         d.quantiles.get(q, math.nan))
        yield quantiles
