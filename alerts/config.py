"""The one source of truth for llmobs rules and dashboards (kubernetes-mixin's ``config.libsonnet``).

Every threshold, SLO, label name, selector and the runbook URL pattern lives here. The rule generator
(``alerts/rules.py``) and the dashboard generator (``dashboards/build.py``) read only this object, so a
change here is a change everywhere; ``scripts/generate_rules.py`` and ``scripts/generate_dashboards.py``
rewrite the committed files and the drift tests fail until they are regenerated.

Override by building a new object: ``dataclasses.replace(DEFAULT, kv_cache_saturated_ratio=0.95)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BurnWindow:
    """One multi-window burn-rate alert: fires when both windows burn faster than ``factor``×budget."""

    long: str
    short: str
    factor: float
    for_: str
    severity: str


@dataclass(frozen=True)
class Config:
    # --- label names -----------------------------------------------------------------------------
    model_label: str = "model"
    endpoint_label: str = "endpoint"
    node_label: str = "node"
    gpu_label: str = "gpu_uuid"
    # Extra labels every aggregation keeps, e.g. ("cluster",) for a multi-cluster Prometheus.
    group_labels: tuple[str, ...] = ()

    # --- selectors ---------------------------------------------------------------------------------
    # Selects the llmobs exporter's own scrape job in `up{...}` (exporter down alert, fleet dashboard).
    exporter_selector: str = 'job="llmobs"'

    # --- rule files --------------------------------------------------------------------------------
    rule_interval: str = "30s"

    # --- runbooks ------------------------------------------------------------------------------------
    # One pattern for every alert; {anchor} is the GitHub heading anchor of the alert's runbook section.
    runbook_url_pattern: str = "https://github.com/llmobs/llmobs/blob/main/docs/runbooks.md#{anchor}"

    # --- serving thresholds --------------------------------------------------------------------------
    # Compared with the busiest replica's KV peak over the exporter's signal window
    # (`llmobs_kv_cache_utilization_max_ratio`, 60 s by default), not the instantaneous value: a saturated
    # vLLM's usage churns well below the threshold between batches, which would reset `for` every minute.
    kv_cache_saturated_ratio: float = 0.9
    kv_cache_saturated_for: str = "10m"

    queue_waiting_threshold: int = 20  # waiting requests summed over a model's replicas
    queue_building_for: str = "5m"  # also the window the rise is measured over

    # Latency SLOs: the share of requests within a latency threshold. The exporter applies each threshold
    # when it counts llmobs_<slo>_slo_good_total (`signals.ttft_slo_seconds`, `signals.tpot_slo_seconds`,
    # `signals.e2e_slo_seconds`, snapped to a bucket bound and exported as llmobs_<slo>_slo_threshold_seconds);
    # the *_slo_threshold_seconds here are only quoted in alert text and must match the exporter's settings.
    # TTFT: time to first token.
    ttft_slo_target: float = 0.99
    ttft_slo_threshold_seconds: float = 1.0
    # TPOT: a request's mean time per output token after the first (vLLM's per-request histogram). 0.1 s
    # (10 tokens/s per stream, faster than anyone reads) is also the ITL alert's floor below.
    tpot_slo_target: float = 0.99
    tpot_slo_threshold_seconds: float = 0.1
    # E2E: whole-request latency. 30 s is the p99 the LlmobsE2ELatencyHigh alert holds it to (a 99 %
    # target within 30 s is the same promise, as an error budget).
    e2e_slo_target: float = 0.99
    e2e_slo_threshold_seconds: float = 30.0
    # The multi-window, multi-burn-rate set every latency SLO is alerted on (Google SRE workbook ch. 5).
    slo_burn_windows: tuple[BurnWindow, ...] = (
        BurnWindow(long="1h", short="5m", factor=14.4, for_="2m", severity="critical"),
        BurnWindow(long="6h", short="30m", factor=6.0, for_="15m", severity="critical"),
        BurnWindow(long="3d", short="6h", factor=1.0, for_="3h", severity="warning"),
    )

    # ITL degradation: p90 above an absolute floor AND `itl_degradation_factor` × its own 1-day mean.
    itl_quantile: str = "0.9"
    itl_floor_seconds: float = 0.1
    itl_degradation_factor: float = 2.0
    itl_baseline_window: str = "1d"
    itl_degradation_for: str = "10m"

    e2e_p99_threshold_seconds: float = 30.0
    e2e_p99_for: str = "10m"

    preemption_storm_per_second: float = 1.0
    preemption_storm_for: str = "5m"

    error_reasons: tuple[str, ...] = ("error", "abort")
    error_ratio_threshold: float = 0.05
    error_ratio_for: str = "10m"

    # --- targets and exporter ------------------------------------------------------------------------
    target_down_for: str = "2m"
    expected_series_missing_for: str = "15m"
    exporter_down_for: str = "5m"
    scrape_cycle_slow_seconds: float = 10.0
    scrape_cycle_slow_for: str = "10m"

    # --- GPU -----------------------------------------------------------------------------------------
    gpu_error_window: str = "10m"
    # XIDs that mean the GPU or its memory is broken (fell off the bus, DBE, row-remap failure,
    # uncontained ECC, NVLink, GSP); other XIDs are warnings (often application faults, e.g. 13, 31).
    gpu_xid_critical: tuple[str, ...] = ("48", "63", "64", "74", "79", "92", "94", "95", "119", "120")
    # Reasons as the NVML catalogue names them (src/llmobs/sources/gpu/fields.yaml). sw_power_cap is left
    # out on purpose: a GPU at its power limit under full load is normal; so are idle/app-clock reasons.
    gpu_throttle_reasons: tuple[str, ...] = ("hw_slowdown", "hw_thermal", "sw_thermal", "hw_power_brake")
    gpu_throttle_for: str = "10m"
    # vLLM preallocates gpu_memory_utilization (0.9 by default) of the card: "near full" is above that.
    gpu_memory_full_ratio: float = 0.97
    gpu_memory_full_for: str = "15m"

    # --- feedback ------------------------------------------------------------------------------------
    feedback_negative_floor: float = 0.2
    feedback_spike_factor: float = 2.0
    feedback_baseline_window: str = "1d"
    feedback_spike_for: str = "15m"

    # --- autoscaling ---------------------------------------------------------------------------------
    scaler_stale_seconds: float = 300.0
    scaler_stale_for: str = "2m"
    forecast_wape_threshold: float = 0.5
    forecast_wape_for: str = "1h"

    # --- the scaling chain (exporter with `kubernetes.watch_autoscalers: true`) ----------------------------
    # A scale-up is given twice the measured cold start (p90 of pod created → Ready over the window), or
    # twice the default while none was measured.
    cold_start_quantile: float = 0.9
    cold_start_default_seconds: float = 300.0
    autoscaler_inert_for: str = "10m"
    scale_up_not_ready_for: str = "2m"
    queue_not_draining_window: str = "10m"  # the queue's rise is measured over it
    queue_not_draining_for: str = "5m"
    scale_up_lookback: str = "1h"  # a scale-up this recent counts as "after scale-up"
    scaler_fallback_for: str = "2m"

    # --- dashboards ----------------------------------------------------------------------------------
    dashboard_uid_prefix: str = "llmobs-"
    dashboard_tags: tuple[str, ...] = ("llmobs", "vllm")
    dashboard_refresh: str = "30s"
    dashboard_time_from: str = "now-6h"
    # Metric used to fill the model/endpoint/node variables (every serving signal has these labels).
    variable_source_metric: str = "llmobs_requests_running"

    # --- helpers -------------------------------------------------------------------------------------
    def by(self, *labels: str) -> str:
        """`cluster, model, ...`: the grouping clause for an aggregation at the given level."""
        return ", ".join([*self.group_labels, *labels])

    @property
    def by_model(self) -> str:
        return self.by(self.model_label)

    def runbook_url(self, alertname: str) -> str:
        return self.runbook_url_pattern.format(anchor=runbook_anchor(alertname))


def runbook_anchor(alertname: str) -> str:
    """GitHub's anchor for a `## AlertName` heading: lower case, spaces to dashes."""
    return alertname.lower().replace(" ", "-")


DEFAULT = Config()
