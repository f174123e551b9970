"""Every metric llmobs exports, as data: one row per series (name, type, unit, labels, help, OTLP name).

Why one table: the same quantity used to be declared in each Prometheus collector, again in the OTLP
mapping and again by hand in docs/metrics.md, and the copies drifted. Every collector (exporter, agent,
feedback, forecast, scaler) now builds its families from these rows (llmobs.metric_families), the OTLP
mapping reads its names and units from them, and scripts/generate_metrics_doc.py writes docs/metrics.md
from them. A row also names the other names its quantity goes by: the `ModelEndpointSignals` field it
renders and the KEDA `signal` that serves it (`llmobs_requests_waiting` = field `requests_waiting` = signal
`queue_depth` = KEDA metric `llmobs-queue-depth-<model>` = OTLP `llmobs.requests.waiting`).

This module is pure data at the bottom of the import graph: it imports nothing from llmobs and no
Prometheus or OpenTelemetry library, so any layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MetricType = Literal["gauge", "counter"]

SIGNAL_LABELS: tuple[str, ...] = ("model", "endpoint", "node", "gpu_model")
"""Labels of every per model × endpoint signal."""
TARGET_LABELS: tuple[str, ...] = ("endpoint", "node", "gpu_model")
"""Labels of every per scrape target series."""
GPU_LABELS: tuple[str, ...] = ("node", "gpu", "gpu_uuid", "gpu_model", "gpu_instance")
"""Labels of every per-GPU series the node agent exports."""
ENDPOINT_INFO_LABELS: tuple[str, ...] = ("model", "endpoint", "namespace", "pod", "node", "gpu_model", "gpu_uuid")


@dataclass(frozen=True, slots=True)
class Otlp:
    """How a series goes out over OTLP (llmobs.serving.otlp)."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()  # this family's label → OTel attribute renames
    constant: tuple[tuple[str, str], ...] = ()  # attributes added to every point
    description: str = ""  # for an OTel name several series share; else the series' help


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported series. `name` is the name PromQL selects (counters end in `_total`)."""

    name: str
    type: MetricType
    unit: str  # UCUM, as OTel writes it: `s`, `By`, `1` (ratio), `{request}`
    labels: tuple[str, ...]
    help: str  # the exposition's HELP text
    section: str  # the docs/metrics.md section (the exporting component)
    doc: str = ""  # the reference's longer meaning (label values, caveats); the help when empty
    otlp: Otlp | None = None
    signal_field: str | None = None  # ModelEndpointSignals attribute (dotted); for a counter, its `totals` key
    keda_signal: str | None = None  # the scaler's `signal` metadata value serving the same quantity
    vllm_series: str = ""  # the vLLM series it is derived from (canonical ← aliases), for the reference

    @property
    def family_name(self) -> str:
        """The name prometheus_client's metric families take (counters without `_total`)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name

    @property
    def otlp_name(self) -> str | None:
        """The OpenTelemetry metric name, None for a series llmobs does not push over OTLP."""
        return self.otlp.name if self.otlp else None

    @property
    def keda_metric(self) -> str | None:
        """The external metric name KEDA sees for a trigger on `<model>` (llmobs.serving.scaler.metadata adds a
        hash where the model name is not a slug or the query is not the plain one: selectors, another aggregate, a
        forecast horizon)."""
        return f"llmobs-{self.keda_signal.replace('_', '-')}-<model>" if self.keda_signal else None


def _g(name: str, unit: str, labels: tuple[str, ...], help: str, section: str, **kw: Any) -> MetricSpec:
    return MetricSpec(name, "gauge", unit, labels, help, section, **kw)


def _c(name: str, unit: str, labels: tuple[str, ...], help: str, section: str, **kw: Any) -> MetricSpec:
    return MetricSpec(name, "counter", unit, labels, help, section, **kw)


_Q = (*SIGNAL_LABELS, "quantile")
_R = (*SIGNAL_LABELS, "reason")
_INPUT = (("gen_ai.token.type", "input"),)
_OUTPUT = (("gen_ai.token.type", "output"),)
_KV = "`vllm:kv_cache_usage_perc` ← `vllm:gpu_cache_usage_perc`"
_SUCCESS = "`vllm:request_success_total`"
_TPOT = "`vllm:request_time_per_output_token_seconds` buckets"
_E2E = "`vllm:e2e_request_latency_seconds` buckets"

_TARGET = (
    _g("llmobs_target_up", "1", TARGET_LABELS, "1 if the last scrape succeeded.", "target",
       doc="1 when the last scrape of the target succeeded and parsed", otlp=Otlp("llmobs.target.up")),
    _g("llmobs_scrape_duration_seconds", "s", TARGET_LABELS, "Duration of the last scrape.", "target",
       doc="duration of the last scrape (fetch + parse)", otlp=Otlp("llmobs.scrape.duration")),
    _g("llmobs_target_consecutive_failures", "{scrape}", TARGET_LABELS, "Failed scrapes in a row.", "target",
       otlp=Otlp("llmobs.target.consecutive_failures")),
    _g("llmobs_target_last_success_timestamp_seconds", "s", TARGET_LABELS, "Unix time of the last good scrape.",
       "target", otlp=Otlp("llmobs.target.last_success_time")),
    _c("llmobs_scrape_errors_total", "{scrape}", (*TARGET_LABELS, "kind"), "Failed scrapes by kind.", "target",
       doc="failed scrapes by kind: `timeout`, `connect`, `http_status`, `content_type`, `too_large`, `empty`, "
           "`parse`, `error`", otlp=Otlp("llmobs.scrape.errors", labels=(("kind", "error.type"),))),
    _c("llmobs_parse_skipped_lines_total", "{line}", (*TARGET_LABELS, "reason"), "Page lines skipped by the parser.",
       "target", doc="page lines the parser skipped, by reason",
       otlp=Otlp("llmobs.parse.skipped_lines", labels=(("reason", "llmobs.skip_reason"),))),
    _g("llmobs_vllm_expected_series_missing", "1", (*TARGET_LABELS, "series"),
       "1 per expected canonical vLLM series the endpoint does not expose.", "target",
       doc="1 per canonical vLLM series this endpoint does not expose (version drift)",
       otlp=Otlp("llmobs.vllm.expected_series_missing", labels=(("series", "llmobs.vllm.series"),),
                 description="1 per expected vLLM series the endpoint does not expose.")),
    _c("llmobs_counter_resets_total", "{reset}", TARGET_LABELS, "vLLM counter resets seen (restarts).", "target",
       doc="vLLM counter resets seen on this endpoint (restarts); rates stay non-negative across them",
       otlp=Otlp("llmobs.counter_resets")),
    _c("llmobs_series_dropped_total", "{sample}", (*TARGET_LABELS, "reason"),
       "Samples dropped by the cardinality guard or the plausibility checks, by reason.", "target",
       doc="samples the cardinality guard dropped from this endpoint's pages, by reason: `series_limit` (beyond "
           "`scrape.max_series_per_target` samples on one page), `model_limit` (a model beyond `signals.max_models` "
           "distinct models fleet-wide), `label_value_limit` (an `le` or `finished_reason`/`reason` value beyond "
           "`scrape.max_label_values` distinct values on this target), `implausible` (a counter that fell a little "
           "without a restart, a NaN/±Inf/negative value, KV usage outside 0–1: held or dropped, never exported); "
           "counted per scrape, so a steady excess grows it every cycle",
       otlp=Otlp("llmobs.series.dropped", labels=(("reason", "llmobs.drop_reason"),))),
)

_SERVING = (
    _g("llmobs_kv_cache_utilization_ratio", "1", SIGNAL_LABELS, "KV-cache blocks in use (0-1).", "serving",
       doc="KV-cache blocks in use, 0–1", vllm_series=_KV, signal_field="kv_cache_utilization",
       keda_signal="kv_utilization", otlp=Otlp("llmobs.kv_cache.utilization")),
    _g("llmobs_kv_cache_utilization_max_ratio", "1", SIGNAL_LABELS,
       "Max KV-cache utilization over the signal window (0-1).", "serving",
       doc="max utilization seen over the window", vllm_series=_KV, signal_field="kv_cache_utilization_max",
       otlp=Otlp("llmobs.kv_cache.utilization.max")),
    _g("llmobs_kv_cache_headroom_ratio", "1", SIGNAL_LABELS, "Free KV-cache fraction (1 - utilization).", "serving",
       doc="1 − utilization", vllm_series=_KV, signal_field="kv_cache_headroom",
       otlp=Otlp("llmobs.kv_cache.headroom")),
    _g("llmobs_kv_cache_capacity_tokens", "{token}", SIGNAL_LABELS,
       "KV-cache capacity in tokens (num_gpu_blocks x block_size).", "serving",
       doc="num_gpu_blocks × block_size", vllm_series="`vllm:cache_config_info`",
       signal_field="kv_cache_capacity_tokens", otlp=Otlp("llmobs.kv_cache.capacity")),
    _g("llmobs_requests_running", "{request}", SIGNAL_LABELS, "Requests in the running batch.", "serving",
       doc="requests in the running batch", vllm_series="`vllm:num_requests_running`",
       signal_field="requests_running", keda_signal="requests_running", otlp=Otlp("llmobs.requests.running")),
    _g("llmobs_requests_waiting", "{request}", SIGNAL_LABELS, "Requests waiting in the queue.", "serving",
       doc="requests queued", vllm_series="`vllm:num_requests_waiting`", signal_field="requests_waiting",
       keda_signal="queue_depth", otlp=Otlp("llmobs.requests.waiting")),
    _g("llmobs_requests_waiting_by_reason", "{request}", _R, "Queued requests by reason.", "serving",
       doc="queued requests by reason (`capacity`, `deferred`)", vllm_series="`vllm:num_requests_waiting_by_reason`",
       signal_field="requests_waiting_by_reason",
       otlp=Otlp("llmobs.requests.waiting.by_reason", labels=(("reason", "llmobs.waiting_reason"),))),
    _g("llmobs_requests_swapped", "{request}", SIGNAL_LABELS, "Swapped requests (V0 engines).", "serving",
       doc="swapped requests (V0 engines only)", vllm_series="`vllm:num_requests_swapped`",
       signal_field="requests_swapped", otlp=Otlp("llmobs.requests.swapped")),
    _g("llmobs_request_rate", "{request}/s", SIGNAL_LABELS, "Finished requests per second over the window.",
       "serving", doc="finished requests/s over the window", vllm_series=_SUCCESS, signal_field="request_rate",
       keda_signal="request_rate", otlp=Otlp("llmobs.request.rate")),
    _g("llmobs_finished_requests_rate", "{request}/s", _R, "Finished requests/s by reason.", "serving",
       doc="finished requests/s by `stop`/`length`/`abort`/`error`/…", vllm_series=_SUCCESS,
       signal_field="finished_rate_by_reason",
       otlp=Otlp("llmobs.request.finished.rate", labels=(("reason", "llmobs.finish_reason"),),
                 description="Finished requests per second by finish reason.")),
    _g("llmobs_prompt_tokens_rate", "{token}/s", SIGNAL_LABELS, "Prompt tokens per second over the window.",
       "serving", doc="prompt tokens/s", vllm_series="`vllm:prompt_tokens_total`", signal_field="prompt_tokens_rate",
       keda_signal="prompt_tokens_rate",
       otlp=Otlp("llmobs.token.rate", constant=_INPUT, description="Tokens per second over the window.")),
    _g("llmobs_generation_tokens_rate", "{token}/s", SIGNAL_LABELS, "Generated tokens per second over the window.",
       "serving", doc="generated tokens/s", vllm_series="`vllm:generation_tokens_total`",
       signal_field="generation_tokens_rate", keda_signal="generation_tokens_rate",
       otlp=Otlp("llmobs.token.rate", constant=_OUTPUT, description="Tokens per second over the window.")),
    _g("llmobs_preemption_rate", "{preemption}/s", SIGNAL_LABELS, "Preemptions per second over the window.",
       "serving", doc="preemptions/s", vllm_series="`vllm:num_preemptions_total` ← `vllm:num_preemptions`",
       signal_field="preemption_rate", otlp=Otlp("llmobs.preemption.rate")),
    _g("llmobs_prefix_cache_hit_ratio", "1", SIGNAL_LABELS, "Prefix-cache hit ratio over the window (tokens).",
       "serving", doc="prefix-cache hits ÷ queries over the window (tokens)",
       vllm_series="`vllm:prefix_cache_{hits,queries}_total` ← `vllm:gpu_prefix_cache_{hits,queries}_total`",
       signal_field="prefix_cache_hit_ratio", otlp=Otlp("llmobs.prefix_cache.hit_ratio")),
    _g("llmobs_ttft_seconds", "s", _Q, "Time to first token quantiles over the window.", "serving",
       doc="time to first token", vllm_series="`vllm:time_to_first_token_seconds`", signal_field="ttft",
       otlp=Otlp("llmobs.time_to_first_token")),
    _g("llmobs_itl_seconds", "s", _Q, "Inter-token latency quantiles over the window.", "serving",
       doc="inter-token latency",
       vllm_series="`vllm:inter_token_latency_seconds` ← `vllm:time_per_output_token_seconds`", signal_field="itl",
       otlp=Otlp("llmobs.time_per_output_token")),
    _g("llmobs_e2e_latency_seconds", "s", _Q, "End-to-end request latency quantiles over the window.", "serving",
       doc="end-to-end request latency", vllm_series="`vllm:e2e_request_latency_seconds`",
       signal_field="e2e_latency", otlp=Otlp("llmobs.request.duration")),
    _g("llmobs_queue_time_seconds", "s", _Q, "Queue time quantiles over the window.", "serving",
       doc="time spent waiting in the queue", vllm_series="`vllm:request_queue_time_seconds`",
       signal_field="queue_time", otlp=Otlp("llmobs.request.queue_time")),
    _g("llmobs_prompt_length_tokens", "{token}", _Q, "Prompt length quantiles over the window.", "serving",
       doc="prompt length", vllm_series="`vllm:request_prompt_tokens`", signal_field="prompt_length",
       otlp=Otlp("llmobs.request.prompt_length")),
    _g("llmobs_generation_length_tokens", "{token}", _Q, "Generation length quantiles over the window.", "serving",
       doc="generation length", vllm_series="`vllm:request_generation_tokens`", signal_field="generation_length",
       otlp=Otlp("llmobs.request.generation_length")),
    _g("llmobs_prompt_length_tokens_mean", "{token}", SIGNAL_LABELS, "Mean prompt length over the window.",
       "serving", vllm_series="`vllm:request_prompt_tokens`", signal_field="prompt_length.mean",
       otlp=Otlp("llmobs.request.prompt_length.mean")),
    _g("llmobs_generation_length_tokens_mean", "{token}", SIGNAL_LABELS, "Mean generation length over the window.",
       "serving", vllm_series="`vllm:request_generation_tokens`", signal_field="generation_length.mean",
       otlp=Otlp("llmobs.request.generation_length.mean")),
    _g("llmobs_lora_adapters_running", "{adapter}", SIGNAL_LABELS, "LoRA adapters with running requests.",
       "serving", vllm_series="`vllm:lora_requests_info`", signal_field="lora_adapters_running",
       otlp=Otlp("llmobs.lora_adapters.running")),
    _g("llmobs_lora_adapters_waiting", "{adapter}", SIGNAL_LABELS, "LoRA adapters with waiting requests.",
       "serving", vllm_series="`vllm:lora_requests_info`", signal_field="lora_adapters_waiting",
       otlp=Otlp("llmobs.lora_adapters.waiting")),
    _c("llmobs_requests_total", "{request}", _R, "Finished requests by reason, reset-adjusted.", "serving",
       doc="finished requests, reset-adjusted across vLLM restarts", vllm_series=_SUCCESS,
       signal_field="requests:<reason>",
       otlp=Otlp("llmobs.requests", labels=(("reason", "llmobs.finish_reason"),))),
    _c("llmobs_prompt_tokens_total", "{token}", SIGNAL_LABELS, "Prompt tokens, reset-adjusted across vLLM restarts.",
       "serving", doc="prompt tokens, reset-adjusted", vllm_series="`vllm:prompt_tokens_total`",
       signal_field="prompt_tokens",
       otlp=Otlp("llmobs.tokens", constant=_INPUT, description="Tokens, reset-adjusted.")),
    _c("llmobs_generation_tokens_total", "{token}", SIGNAL_LABELS, "Generated tokens, reset-adjusted.", "serving",
       doc="generated tokens, reset-adjusted", vllm_series="`vllm:generation_tokens_total`",
       signal_field="generation_tokens",
       otlp=Otlp("llmobs.tokens", constant=_OUTPUT, description="Tokens, reset-adjusted.")),
    _c("llmobs_preemptions_total", "{preemption}", SIGNAL_LABELS, "Preemptions, reset-adjusted.", "serving",
       vllm_series="`vllm:num_preemptions_total`", signal_field="preemptions", otlp=Otlp("llmobs.preemptions")),
    _c("llmobs_ttft_slo_requests_total", "{request}", SIGNAL_LABELS,
       "Requests with a TTFT observation (reset-adjusted).", "serving",
       doc="requests with a TTFT observation — the burn-rate alerts' denominator",
       vllm_series="`vllm:time_to_first_token_seconds` buckets", signal_field="ttft_slo_requests",
       otlp=Otlp("llmobs.ttft_slo.requests")),
    _c("llmobs_ttft_slo_good_total", "{request}", SIGNAL_LABELS,
       "Requests with TTFT at or under the SLO threshold (reset-adjusted).", "serving",
       doc="requests with TTFT at or under the SLO threshold (`signals.ttft_slo_seconds`, default 1 s; rounded to "
           "the nearest bucket bound on the page, `llmobs_ttft_slo_threshold_seconds`) — the burn-rate alerts' "
           "numerator",
       vllm_series="`vllm:time_to_first_token_seconds` buckets", signal_field="ttft_slo_good",
       otlp=Otlp("llmobs.ttft_slo.good")),
    _c("llmobs_tpot_slo_requests_total", "{request}", SIGNAL_LABELS,
       "Requests with a time-per-output-token observation (reset-adjusted).", "serving",
       doc="requests with a per-request time-per-output-token (TPOT) observation — the TPOT burn-rate alerts' "
           "denominator; absent where the page lacks the histogram (vLLM before 0.10)",
       vllm_series=_TPOT, signal_field="tpot_slo_requests", otlp=Otlp("llmobs.tpot_slo.requests")),
    _c("llmobs_tpot_slo_good_total", "{request}", SIGNAL_LABELS,
       "Requests with TPOT at or under the SLO threshold (reset-adjusted).", "serving",
       doc="requests whose mean time per output token after the first was at or under the SLO threshold "
           "(`signals.tpot_slo_seconds`, default 0.1 s; rounded to the nearest bucket bound on the page, "
           "`llmobs_tpot_slo_threshold_seconds`) — the "
           "TPOT burn-rate alerts' numerator. Per request, not per token: vLLM's per-token "
           "`inter_token_latency_seconds` would weight long answers by their length",
       vllm_series=_TPOT, signal_field="tpot_slo_good", otlp=Otlp("llmobs.tpot_slo.good")),
    _c("llmobs_e2e_slo_requests_total", "{request}", SIGNAL_LABELS,
       "Requests with an end-to-end latency observation (reset-adjusted).", "serving",
       doc="requests with an end-to-end latency observation — the E2E burn-rate alerts' denominator",
       vllm_series=_E2E, signal_field="e2e_slo_requests", otlp=Otlp("llmobs.e2e_slo.requests")),
    _c("llmobs_e2e_slo_good_total", "{request}", SIGNAL_LABELS,
       "Requests with end-to-end latency at or under the SLO threshold (reset-adjusted).", "serving",
       doc="requests whose end-to-end latency was at or under the SLO threshold (`signals.e2e_slo_seconds`, "
           "default 30 s; rounded to the nearest bucket bound on the page, `llmobs_e2e_slo_threshold_seconds`) — the "
           "E2E burn-rate alerts' numerator",
       vllm_series=_E2E, signal_field="e2e_slo_good", otlp=Otlp("llmobs.e2e_slo.good")),
    _g("llmobs_ttft_slo_threshold_seconds", "s", SIGNAL_LABELS,
       "TTFT bucket bound llmobs_ttft_slo_good_total counts at (the threshold snapped to the page).", "serving",
       doc="the bucket bound `llmobs_ttft_slo_good_total` is counted at: `signals.ttft_slo_seconds` snapped to "
           "the nearest finite bound on this endpoint's page (a histogram counts only at its bounds)",
       vllm_series="`vllm:time_to_first_token_seconds` buckets", signal_field="ttft_slo_threshold_seconds",
       otlp=Otlp("llmobs.ttft_slo.threshold")),
    _g("llmobs_tpot_slo_threshold_seconds", "s", SIGNAL_LABELS,
       "TPOT bucket bound llmobs_tpot_slo_good_total counts at (the threshold snapped to the page).", "serving",
       doc="the bucket bound `llmobs_tpot_slo_good_total` is counted at: `signals.tpot_slo_seconds` snapped to "
           "the nearest finite bound on this endpoint's page",
       vllm_series=_TPOT, signal_field="tpot_slo_threshold_seconds", otlp=Otlp("llmobs.tpot_slo.threshold")),
    _g("llmobs_e2e_slo_threshold_seconds", "s", SIGNAL_LABELS,
       "End-to-end bucket bound llmobs_e2e_slo_good_total counts at (the threshold snapped to the page).",
       "serving",
       doc="the bucket bound `llmobs_e2e_slo_good_total` is counted at: `signals.e2e_slo_seconds` snapped to "
           "the nearest finite bound on this endpoint's page",
       vllm_series=_E2E, signal_field="e2e_slo_threshold_seconds", otlp=Otlp("llmobs.e2e_slo.threshold")),
)

_EXPORTER = (
    _g("llmobs_build_info", "1", ("version",), "llmobs build information.", "exporter",
       doc="1; over OTLP the version is the resource's `service.version` instead"),
    _g("llmobs_scrape_cycle_duration_seconds", "s", (), "Wall time of the last full scrape cycle.", "exporter",
       doc="wall time of the last full scrape cycle over all targets", otlp=Otlp("llmobs.scrape_cycle.duration")),
    _g("llmobs_targets", "{target}", (), "Configured scrape targets.", "exporter", otlp=Otlp("llmobs.targets")),
    _g("llmobs_signal_window_seconds", "s", (), "Signal window in use.", "exporter",
       otlp=Otlp("llmobs.signal_window")),
)

_TTFT_CLASS = "`ttft` (`above_slo`, `below_slo`)"
_FEEDBACK = (
    _c("llmobs_feedback_total", "{event}", ("model", "app", "rating"),
       "Feedback events accepted, by model, app and normalised rating", "feedback",
       doc="feedback events accepted (replays excluded); durable across restarts and pruning"),
    _g("llmobs_feedback_window_events", "{event}", ("model",), "Feedback events received over the feedback window",
       "feedback"),
    _g("llmobs_feedback_window_negative_events", "{event}", ("model",),
       "Negative feedback events over the feedback window (sum across replicas, then divide)", "feedback",
       doc="negative events over the window (the ratio's numerator; sum across replicas before dividing)"),
    _g("llmobs_feedback_window_ttft_events", "{event}", ("model", "ttft"),
       "Feedback events with a client TTFT above / at-or-below the SLO, over the window", "feedback",
       doc=f"events over the window by client TTFT class, {_TTFT_CLASS} (the TTFT-split ratio's denominator)"),
    _g("llmobs_feedback_window_ttft_negative_events", "{event}", ("model", "ttft"),
       "Negative feedback events with a client TTFT above / at-or-below the SLO, over the window", "feedback",
       doc=f"negative events over the window by client TTFT class, {_TTFT_CLASS} (the TTFT-split ratio's "
           "numerator)"),
    _g("llmobs_feedback_negative_ratio", "1", ("model",),
       "Share of feedback events that are negative over the feedback window", "feedback",
       doc="negative ÷ all events over the window, 0–1"),
    _g("llmobs_feedback_negative_ratio_by_ttft", "1", ("model", "ttft"),
       "Negative share among events whose client TTFT was above vs at-or-below the TTFT SLO", "feedback",
       doc=f"by {_TTFT_CLASS}: negative share among events whose client `ttft_ms` was above vs at-or-below "
           "`feedback.ttft_slo_seconds` (default 1 s); events without `ttft_ms` are in neither"),
    _g("llmobs_feedback_coverage_ratio", "1", ("model",),
       "Feedback events per request served, over the feedback window", "feedback",
       doc="feedback events ÷ requests vLLM served for the model over the window (only when the exporter passes "
           "a served-requests source; `other` has none)"),
    _c("llmobs_feedback_rejected_total", "{request}", ("reason",), "Feedback requests rejected, by reason",
       "feedback",
       doc="rejected requests, by `reason` (`unauthenticated`, `forbidden`, `malformed_json`, `validation`, "
           "`too_large`, `batch_too_large`, `clock_skew`, `store_error`); in memory: resets on restart"),
    _c("llmobs_feedback_replays_total", "{event}", (), "Events acknowledged as replays of a stored (app, request_id)",
       "feedback"),
    _c("llmobs_feedback_pruned_total", "{event}", ("reason",), "Stored events deleted, by reason (retention, disk_cap)",
       "feedback", doc="stored events deleted by the retention window or the disk cap (`reason`: `retention`, "
                       "`disk_cap`)"),
    _g("llmobs_feedback_store_bytes", "By", (), "Size of the feedback database and its WAL on disk", "feedback"),
    _g("llmobs_feedback_store_events", "{event}", (), "Events held in the store", "feedback"),
    _g("llmobs_feedback_window_seconds", "s", (), "The feedback window the ratios use", "feedback",
       doc="the feedback window in use"),
)

_FORECAST = (
    _g("llmobs_forecast_request_rate", "{request}/s", ("model", "quantile"),
       "Forecast request rate (req/s) at now + horizon; quantile 0.5 = point, the other = upper band", "forecast",
       doc="forecast requests/s at now + horizon; `quantile` `0.5` = point forecast, `0.9` = upper band by default",
       keda_signal="forecast_request_rate"),
    _g("llmobs_forecast_horizon_seconds", "s", ("model",), "How far ahead the forecast looks", "forecast",
       doc="how far ahead the forecast looks (the replicas' cold start)"),
    _g("llmobs_forecast_wape_ratio", "1", ("model",),
       "WAPE of the forecaster in use on a rolling backtest of recent history (NaN while it falls back)", "forecast",
       doc="WAPE of the forecaster in use on a rolling backtest of recent history at the horizon, 0–1+ (NaN while "
           "falling back)"),
    _g("llmobs_forecast_last_value_wape_ratio", "1", ("model",),
       "WAPE of the last-value baseline on the same backtest, for comparison", "forecast"),
    _g("llmobs_forecast_fallback", "1", ("model",),
       "1 while the forecast falls back to last value (reason in llmobs_forecast_info)", "forecast"),
    _g("llmobs_forecast_trusted", "1", ("model",),
       "1 while the forecast's input passes the data-quality guard; 0 while the recommendation uses only its "
       "reactive floor", "forecast",
       doc="1 while the forecast's recent input passes the data-quality guard; 0 while `llmobs_desired_replicas` "
           "is the reactive floor alone (reason in `llmobs_forecast_fallbacks_total`)"),
    _c("llmobs_forecast_fallbacks_total", "{refresh}", ("model", "reason"),
       "Forecast refreshes whose recommendation fell back to the reactive floor, by reason", "forecast",
       doc="refreshes whose recommendation fell back to the reactive floor, by `reason` (`short_history`, "
           "`stale`, `invalid_sample`, `gap`, `partial_window`, `outlier`, `no_forecaster`); in memory: resets "
           "on restart"),
    _g("llmobs_forecast_info", "1", ("model", "forecaster", "reason"), "Forecaster in use and fallback reason",
       "forecast", doc="1; the forecaster in use (`llmobs_gbm`, `arima_3_1_0`, `moving_average_6`, `last_value`, …) "
                       "and the fallback reason (empty when none)"),
    _g("llmobs_desired_replicas", "{replica}", ("model",),
       "Replicas to run now: max(reactive floor, forecast upper quantile at now + cold start ÷ capacity per replica), "
       "stabilized",
       "forecast", keda_signal="desired_replicas",
       doc="replicas to run now: ceil(upper forecast ÷ (capacity per replica × target utilization)), never below "
           "the reactive floor ceil(current ÷ (capacity per replica × 0.8)) nor what current load needs (the floor "
           "alone while `llmobs_forecast_trusted` is 0), clamped to min/max, scale-down stabilized (only for models "
           "with a configured or learned capacity)"),
    _g("llmobs_forecast_capacity_per_replica", "{request}/s", ("model", "source"),
       "Requests/s one replica serves within the SLO, as the recommendation uses it", "forecast",
       doc="requests/s one replica serves within the SLO, as the recommendation uses it; `source` `configured` or "
           "`learned` (p90 of per-replica throughput over scrapes whose TTFT p90 met `latency_slo_seconds`)"),
    _g("llmobs_forecast_refresh_duration_seconds", "s", (), "Wall time of the last forecast refresh (all models)",
       "forecast", doc="wall time of the last refresh of all models (target < 0.2 s)"),
    _g("llmobs_forecast_refit_duration_seconds", "s", (), "Wall time of the last forecaster refit (one model)",
       "forecast", doc="wall time of the last forecaster refit (one model; every `refit_seconds`, default 600 s)"),
    _g("llmobs_forecast_last_refresh_timestamp_seconds", "s", (), "Unix time of the last forecast refresh",
       "forecast"),
)

_SCALER = (
    _c("llmobs_scaler_requests_total", "{request}", ("method", "code"), "Requests answered by the KEDA external scaler",
       "scaler",
       doc="calls answered by the KEDA external scaler and its metrics-api route, by `method` (`GetMetricSpec`, "
           "`GetMetrics`, `IsActive`, `StreamIsActive`, `StreamMetricSpec`, `metrics-api`) and `code` (gRPC status "
           "name: `OK`, `INVALID_ARGUMENT`, `NOT_FOUND`, `UNAVAILABLE`), the opt-in native front end's own answers "
           "included (it reports them each second); a stream counts once, when opened (in memory: resets on "
           "restart)"),
    _g("llmobs_scaler_last_update_timestamp_seconds", "s", ("model",),
       "Unix time the scaler's cached values were last recomputed", "scaler",
       doc="unix time the scaler's cached values for the model were last recomputed (every published scrape cycle, "
           "at least every scrape interval); its age growing means KEDA is being answered UNAVAILABLE"),
    _g("llmobs_scaler_triggers", "{trigger}", (), "Triggers the KEDA scaler remembers (bounded)", "scaler",
       doc="triggers the scaler remembers (parsed metadata of models it knows; at most 4,096)"),
    _c("llmobs_scaler_trigger_evictions_total", "{trigger}", (),
       "Triggers evicted from the scaler's bounded registry (least recently used first)", "scaler",
       doc="triggers evicted from that bounded registry, least recently used first: more distinct triggers than "
           "it holds (a very large fleet, or a client inventing them) (in memory: resets on restart)"),
)


def _gpu(name: str, unit: str, help: str, doc: str = "", extra: tuple[str, ...] = (),
         type: MetricType = "gauge") -> MetricSpec:
    return MetricSpec(name, type, unit, (*GPU_LABELS, *extra), help, "gpu", doc=doc)


_GPU = (
    _g("llmobs_nvml_up", "1", (), "1 when NVML is initialised (driver and library present).", "gpu",
       doc="1 when NVML is initialised; 0 without a driver/library (nothing else GPU is exported then)"),
    _gpu("llmobs_gpu_up", "1", "1 when the last collection read the GPU; 0 when it is lost.",
         "1 when the last collection read the GPU; 0 when NVML said GPU-lost/Unknown/ResetRequired"),
    _gpu("llmobs_gpu_info", "1", "1 per GPU or MIG instance; name and driver as labels.",
         extra=("name", "parent_gpu_uuid", "driver_version")),
    # The per-GPU fields below are read as src/llmobs/sources/gpu/fields.yaml says.
    _gpu("llmobs_gpu_utilization_ratio", "1", "Fraction of the last sample period a kernel ran on the GPU (0-1).",
         "fraction of time a kernel ran (0–1)"),
    _gpu("llmobs_gpu_memory_bandwidth_utilization_ratio", "1",
         "Fraction of the last sample period device memory was read or written (0-1).",
         "fraction of time device memory was read or written (0–1)"),
    _gpu("llmobs_gpu_memory_used_bytes", "By",
         "Framebuffer memory allocated by processes (driver-reserved memory excluded where the driver has NVML's v2 "
         "memory call).",
         "framebuffer memory allocated by processes (also per MIG instance); as nvidia-smi's Used, driver-reserved "
         "memory is not in it (NVML v2; drivers without it count it in)"),
    _gpu("llmobs_gpu_memory_reserved_bytes", "By",
         "Framebuffer memory reserved by the driver and firmware, not available to processes.",
         "framebuffer memory the driver and firmware reserve (616 MiB on an H200, driver 580); absent on drivers "
         "without NVML's v2 memory call"),
    _gpu("llmobs_gpu_memory_total_bytes", "By", "Framebuffer memory installed (or assigned to the MIG instance)."),
    _gpu("llmobs_gpu_power_watts", "W", "Power draw of the board.", "board power draw"),
    _gpu("llmobs_gpu_energy_joules_total", "J", "Energy the board consumed since the driver loaded.",
         "energy the board consumed since the driver loaded (NVML's total energy counter; Volta and newer, absent "
         "where NVML answers NotSupported; starts again at 0 when the driver reloads). Joules per generated token: "
         "see docs/gpu-and-kubernetes.md", type="counter"),
    _gpu("llmobs_gpu_power_limit_watts", "W", "Enforced power limit.", "enforced board power limit"),
    _gpu("llmobs_gpu_temperature_celsius", "Cel", "GPU core temperature.", "core temperature"),
    _gpu("llmobs_gpu_sm_clock_hertz", "Hz", "Current SM clock.", "current SM clock"),
    _gpu("llmobs_gpu_memory_clock_hertz", "Hz", "Current memory clock.", "current memory clock"),
    _gpu("llmobs_gpu_pcie_tx_bytes_per_second", "By/s", "PCIe transmit throughput over NVML's 20 ms sample.",
         "PCIe transmit throughput over NVML's 20 ms sample"),
    _gpu("llmobs_gpu_pcie_rx_bytes_per_second", "By/s", "PCIe receive throughput over NVML's 20 ms sample.",
         "PCIe receive throughput over NVML's 20 ms sample"),
    _gpu("llmobs_gpu_ecc_errors_total", "{error}", "ECC errors since the driver loaded (volatile counters).",
         "ECC errors since the driver loaded (volatile counters), by `type` (`uncorrected`, `corrected`)",
         extra=("type",), type="counter"),
    _gpu("llmobs_gpu_throttle_reasons", "1", "1 while the reason holds the clocks down.",
         "1 while the `reason` (`gpu_idle`, `applications_clocks_setting`, `sw_power_cap`, `hw_slowdown`, "
         "`sync_boost`, `sw_thermal`, `hw_thermal`, `hw_power_brake`, `display_clocks_setting`) holds the clocks "
         "down", extra=("reason",)),
    _gpu("llmobs_gpu_nvlink_errors_total", "{error}", "NVLink data-link errors, summed over the GPU's links.",
         "NVLink data-link errors summed over the GPU's links, by `type` (`crc_flit`, `crc_data`, `replay`, "
         "`recovery`); NVLink GPUs only", extra=("type",), type="counter"),
    _gpu("llmobs_gpu_nvlink_tx_bytes_total", "By",
         "NVLink data bytes transmitted per link (payload, without protocol overhead).",
         "NVLink payload bytes transmitted per active `link`", extra=("link",), type="counter"),
    _gpu("llmobs_gpu_nvlink_rx_bytes_total", "By",
         "NVLink data bytes received per link (payload, without protocol overhead).",
         "NVLink payload bytes received per active `link`", extra=("link",), type="counter"),
    _gpu("llmobs_gpu_xid_errors_total", "{event}", "XID error events seen since the agent started.",
         "XID critical-error events since the agent started (NVML event set; a series appears with its first event)",
         extra=("xid",), type="counter"),
    _gpu("llmobs_gpu_process_memory_bytes", "By", "GPU memory held by a compute process.",
         "memory held by a compute process; `pod` from its cgroup, `container` a 12-hex id, `model` from the pod's "
         "`llmobs.io/model` or the vLLM command line (empty when unknown)",
         extra=("pid", "namespace", "pod", "container", "model")),
    _c("llmobs_nvml_read_errors_total", "{call}", ("kind",), "Failed NVML calls by class.", "gpu",
       doc="failed NVML calls by `kind` (`not_supported`, `gpu_lost`, `other`); no GPU labels"),
    _g("llmobs_nvml_unsupported_queries", "{query}", ("node", "gpu_uuid"),
       "NVML queries this GPU answered NotSupported (no longer asked).", "gpu"),
    _g("llmobs_nvml_collection_duration_seconds", "s", (), "Wall time of the last NVML collection.", "gpu"),
)

_WATCH = "`watch` (`pods/<ns>`, `pods`, `nodes`, `pods@<node>`) of the discovery caches"
_ATTRIBUTION = (
    _g("llmobs_endpoint_info", "1", ENDPOINT_INFO_LABELS, "1 per GPU an endpoint serves a model on.", "attribution",
       doc="1 per GPU an endpoint serves a model on. The agent emits one row per (vLLM pod, GPU it holds memory on) "
           "with `endpoint` = `namespace/pod` (what discovery names the target); the central exporter emits one "
           "row per scraped (model, endpoint) with `gpu_uuid` empty unless the target's labels carry one. Join GPU "
           "series with `* on (node, gpu_uuid) group_left`, model signals with `on (model, endpoint)`"),
    _g("llmobs_gpu_cost_per_hour", "USD/h", ("gpu_model",), "Configured price of one GPU-hour (USD).", "attribution"),
    _g("llmobs_cost_per_1k_generated_tokens", "USD", ("model", "gpu_model"),
       "USD per 1,000 generated tokens over the signal window, by model and GPU type.", "attribution",
       doc="Σ(GPUs × $/GPU-h) ÷ (Σ generated tokens/s × 3.6) over the model's endpoints on that GPU type; GPUs per "
           "endpoint from the pod's `nvidia.com/gpu` limit (default 1); absent while nothing is generated or the "
           "price is unknown"),
    _c("llmobs_kubernetes_watch_lists_total", "{list}", ("watch",), "Kubernetes watch lists.", "attribution",
       doc=f"full lists (a rising count without `expired` means relists for another reason), per {_WATCH}"),
    _c("llmobs_kubernetes_watch_watches_total", "{watch}", ("watch",), "Kubernetes watch watches.", "attribution",
       doc=f"watch requests opened, per {_WATCH}"),
    _c("llmobs_kubernetes_watch_events_total", "{event}", ("watch",), "Kubernetes watch events.", "attribution",
       doc=f"watch events received, per {_WATCH}"),
    _c("llmobs_kubernetes_watch_bookmarks_total", "{event}", ("watch",), "Kubernetes watch bookmarks.", "attribution",
       doc=f"bookmarks received, per {_WATCH}"),
    _c("llmobs_kubernetes_watch_expired_total", "{event}", ("watch",), "Kubernetes watch expired.", "attribution",
       doc=f"watches expired (410 Gone, answered by a relist), per {_WATCH}"),
    _c("llmobs_kubernetes_watch_errors_total", "{error}", ("watch",), "Kubernetes watch errors.", "attribution",
       doc=f"failed requests (retried with backoff), per {_WATCH}"),
)


@dataclass(frozen=True, slots=True)
class OtlpHistogram:
    """A GenAI semantic-convention histogram sent over OTLP only (no Prometheus series; vLLM's own buckets)."""

    name: str
    unit: str
    description: str
    vllm_series: str


OTLP_HISTOGRAMS: dict[str, OtlpHistogram] = {
    "ttft": OtlpHistogram("gen_ai.server.time_to_first_token", "s",
                          "Time to generate first token for successful responses.",
                          "`vllm:time_to_first_token_seconds`"),
    "tpot": OtlpHistogram("gen_ai.server.time_per_output_token", "s",
                          "Time per output token generated after the first token for successful responses.",
                          "`vllm:request_time_per_output_token_seconds`"),
    "e2e_latency": OtlpHistogram("gen_ai.server.request.duration", "s",
                                 "Generative AI server request duration such as time-to-last byte or last "
                                 "output token.", "`vllm:e2e_request_latency_seconds`"),
}
"""Canonical vLLM histogram (vllm_aliases.yaml) → the semantic-convention metric llmobs.serving.otlp_histograms
sends."""


CATALOGUE: tuple[MetricSpec, ...] = (
    *_TARGET, *_SERVING, *_EXPORTER, *_FEEDBACK, *_FORECAST, *_SCALER, *_GPU, *_ATTRIBUTION)
"""Every series llmobs exports, in docs/metrics.md's order."""

_BY_NAME: dict[str, MetricSpec] = {}
for _spec in CATALOGUE:
    _BY_NAME[_spec.name] = _BY_NAME[_spec.family_name] = _spec
del _spec


def metric(name: str) -> MetricSpec:
    """The row of `name`, as PromQL selects it or as its family is named (`llmobs_requests_total` or
    `llmobs_requests`); KeyError for a name llmobs does not export."""
    return _BY_NAME[name]


def section(key: str) -> tuple[MetricSpec, ...]:
    """The rows one component exports, in catalogue order."""
    return tuple(s for s in CATALOGUE if s.section == key)
