"""prometheus_client metric families built from the metric catalogue (llmobs.metrics_catalogue).

Why a helper: collectors name the series they fill and take its type, help and labels from the catalogue's
row, so a collector cannot export a name, label or help text the catalogue (and so docs/metrics.md) lacks.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from llmobs.metrics_catalogue import MetricSpec, metric

Family = GaugeMetricFamily | CounterMetricFamily


def family(spec: MetricSpec | str, value: float | None = None) -> Family:
    """An empty family for the catalogue row `spec` (or its name); with `value`, its one unlabelled sample."""
    if isinstance(spec, str):
        spec = metric(spec)
    if spec.type == "histogram":
        raise ValueError(f"{spec.name} is a histogram: use histogram_family()")
    labels = None if value is not None else list(spec.labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.family_name, spec.help, value=value, labels=labels)
    return GaugeMetricFamily(spec.name, spec.help, value=value, labels=labels)


def histogram_family(spec: MetricSpec | str) -> HistogramMetricFamily:
    """An empty histogram family for the catalogue row `spec` (or its name), labelled as the row says."""
    if isinstance(spec, str):
        spec = metric(spec)
    if spec.type != "histogram":
        raise ValueError(f"{spec.name} is a {spec.type}, not a histogram")
    return HistogramMetricFamily(spec.name, spec.help, labels=list(spec.labels))
