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

MetricType = Literal["gauge", "counter", "histogram"]

SIGNAL_LABELS: tuple[str, ...] = ("model", "endpoint", "node", "gpu_model")
"""Labels of every per model × endpoint signal."""
TARGET_LABELS: tuple[str, ...] = ("endpoint", "node", "gpu_model")
"""Labels of every per scrape target series."""
GPU_LABELS: tuple[str, ...] = ("node", "gpu", "gpu_uuid", "gpu_model", "gpu_instance")
"""Labels of every per-GPU series the node agent exports."""
ENDPOINT_INFO_LABELS: tuple[str, ...] = ("model", "endpoint", "namespace", "pod", "node", "gpu_model", "gpu_uuid")
DOOR_LABELS: tuple[str, ...] = ("model", "door", "door_kind")
"""Labels of every per model × door series (`model` is the replicas' name, after the door's `model_map`)."""
DOOR_HEALTH_LABELS: tuple[str, ...] = ("door", "door_kind")


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
_RES = (*SIGNAL_LABELS, "resource")
_SAT = ("`vllm:kv_cache_usage_perc`, `vllm:num_requests_running`, `vllm:iteration_tokens_total` and the target's "
        "scheduler limits")
_S = (*SIGNAL_LABELS, "source")
_T = (*SIGNAL_LABELS, "tier")
_P = (*SIGNAL_LABELS, "position")
ROLE_LABELS: tuple[str, ...] = (*SIGNAL_LABELS, "role")
"""Labels of the prefill/decode disaggregation series: the signal labels and the endpoint's `role`."""
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
           "without a restart, a NaN/±Inf/negative value, KV usage outside 0–1: held or dropped, never exported), "
           "`bad_bucket` (a histogram bucket whose `le` is missing or not a number, or every bucket of a histogram "
           "without its +Inf bucket: that histogram is absent, not guessed); counted per scrape, so a steady excess "
           "grows it every cycle",
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
    _g("llmobs_lora_adapters_max", "{adapter}", SIGNAL_LABELS, "LoRA adapter slots (vLLM's --max-loras).",
       "serving", doc="LoRA adapters vLLM can hold at once (the `max_lora` label); absent without LoRA",
       vllm_series="`vllm:lora_requests_info`", signal_field="lora_adapters_max",
       otlp=Otlp("llmobs.lora_adapters.max")),
    # Families only some vLLM releases or configurations expose: no series where the page lacks them.
    _g("llmobs_prefill_time_seconds", "s", _Q, "Per-request prefill phase time quantiles over the window.",
       "serving", doc="time a request spent in the PREFILL phase; absent where the page lacks the histogram",
       vllm_series="`vllm:request_prefill_time_seconds`", signal_field="prefill_time",
       otlp=Otlp("llmobs.request.prefill_time")),
    _g("llmobs_decode_time_seconds", "s", _Q, "Per-request decode phase time quantiles over the window.",
       "serving", doc="time a request spent in the DECODE phase; absent where the page lacks the histogram",
       vllm_series="`vllm:request_decode_time_seconds`", signal_field="decode_time",
       otlp=Otlp("llmobs.request.decode_time")),
    _g("llmobs_inference_time_seconds", "s", _Q, "Per-request running (prefill + decode) time quantiles.",
       "serving", doc="time a request spent RUNNING (prefill + decode) over the window; absent where the page "
                      "lacks the histogram", vllm_series="`vllm:request_inference_time_seconds`",
       signal_field="inference_time", otlp=Otlp("llmobs.request.inference_time")),
    _g("llmobs_iteration_tokens", "{token}", _Q, "Tokens scheduled per engine step, quantiles over the window.",
       "serving", doc="prompt + generation tokens scheduled per engine step (the batch size in tokens)",
       vllm_series="`vllm:iteration_tokens_total`", signal_field="iteration_tokens",
       otlp=Otlp("llmobs.engine.iteration_tokens")),
    _g("llmobs_iteration_tokens_mean", "{token}", SIGNAL_LABELS, "Mean tokens scheduled per engine step.",
       "serving", doc="mean prompt + generation tokens per engine step over the window (NaN with no step)",
       vllm_series="`vllm:iteration_tokens_total`", signal_field="iteration_tokens_mean",
       otlp=Otlp("llmobs.engine.iteration_tokens.mean")),
    _g("llmobs_engine_sleeping", "1", SIGNAL_LABELS, "Share of the endpoint's vLLM engines asleep (0-1).",
       "serving", doc="share of the endpoint's engines asleep (sleep mode level 1 or 2): 1 - the engines' mean "
                      "`awake`; a value outside 0–1 is dropped and counted in `llmobs_series_dropped_total`",
       vllm_series="`vllm:engine_sleep_state{sleep_state=\"awake\"}`", signal_field="engine_sleeping",
       otlp=Otlp("llmobs.engine.sleeping")),
    _g("llmobs_prompt_tokens_by_source_rate", "{token}/s", _S, "Prompt tokens per second by source.", "serving",
       doc="prompt tokens/s by `source`: `local_compute`, `local_cache_hit`, `external_kv_transfer`",
       vllm_series="`vllm:prompt_tokens_by_source_total`", signal_field="prompt_tokens_by_source_rate",
       otlp=Otlp("llmobs.prompt_tokens.by_source.rate", labels=(("source", "llmobs.token_source"),))),
    _g("llmobs_prompt_tokens_cached_rate", "{token}/s", SIGNAL_LABELS, "Cached prompt tokens per second.",
       "serving", doc="prompt tokens/s served from a cache (local + external)",
       vllm_series="`vllm:prompt_tokens_cached_total`", signal_field="prompt_tokens_cached_rate",
       otlp=Otlp("llmobs.prompt_tokens.cached.rate")),
    _g("llmobs_prompt_tokens_cached_ratio", "1", SIGNAL_LABELS, "Share of prompt tokens served from a cache.",
       "serving", doc="cached ÷ all prompt tokens over the window (0–1; NaN with no prompt tokens)",
       vllm_series="`vllm:prompt_tokens_cached_total`, `vllm:prompt_tokens_total`",
       signal_field="prompt_tokens_cached_ratio", otlp=Otlp("llmobs.prompt_tokens.cached.ratio")),
    _g("llmobs_prompt_tokens_cached_by_tier_rate", "{token}/s", _T, "Cached prompt tokens per second by tier.",
       "serving", doc="cached prompt tokens/s by the cache `tier` that supplied them: `device`, `host`, `disk`, "
                      "`p2p`, `external_unspecified` (vLLM's `source` label)",
       vllm_series="`vllm:prompt_tokens_cached_by_source_total`", signal_field="prompt_tokens_cached_by_source_rate",
       otlp=Otlp("llmobs.prompt_tokens.cached.by_tier.rate", labels=(("tier", "llmobs.cache_tier"),))),
    _g("llmobs_external_prefix_cache_hit_ratio", "1", SIGNAL_LABELS,
       "KV-connector (external) prefix-cache hit ratio over the window (tokens).", "serving",
       doc="external (KV connector: LMCache, NIXL, ...) prefix-cache hits ÷ queries over the window",
       vllm_series="`vllm:external_prefix_cache_{hits,queries}_total`", signal_field="external_prefix_cache_hit_ratio",
       otlp=Otlp("llmobs.external_prefix_cache.hit_ratio")),
    _g("llmobs_estimated_flops_per_gpu_rate", "{flop}/s", SIGNAL_LABELS, "vLLM's estimated FLOP/s per GPU.",
       "serving", doc="vLLM's own estimate of floating point operations per second per GPU (the MFU numerator)",
       vllm_series="`vllm:estimated_flops_per_gpu_total`", signal_field="estimated_flops_per_gpu_rate",
       otlp=Otlp("llmobs.estimated.flops_per_gpu.rate")),
    _g("llmobs_estimated_read_bytes_per_gpu_rate", "By/s", SIGNAL_LABELS, "vLLM's estimated memory read B/s per GPU.",
       "serving", vllm_series="`vllm:estimated_read_bytes_per_gpu_total`",
       signal_field="estimated_read_bytes_per_gpu_rate", otlp=Otlp("llmobs.estimated.read_bytes_per_gpu.rate")),
    _g("llmobs_estimated_write_bytes_per_gpu_rate", "By/s", SIGNAL_LABELS,
       "vLLM's estimated memory write B/s per GPU.", "serving",
       vllm_series="`vllm:estimated_write_bytes_per_gpu_total`", signal_field="estimated_write_bytes_per_gpu_rate",
       otlp=Otlp("llmobs.estimated.write_bytes_per_gpu.rate")),
    _g("llmobs_admission_rejections_rate", "{request}/s", _R, "Requests rejected by a queue limit per second.",
       "serving", doc="admission attempts rejected per second by `reason` (`max_num_queued_reqs`, "
                      "`max_num_queued_tokens`)", vllm_series="`vllm:admission_rejections_total`",
       signal_field="admission_rejections_rate",
       otlp=Otlp("llmobs.admission_rejections.rate", labels=(("reason", "llmobs.rejection_reason"),))),
    _g("llmobs_kv_block_lifetime_seconds", "s", _Q, "KV-cache block lifetime quantiles over the window.",
       "serving", doc="time a KV-cache block lived, allocation to free (vLLM `--kv-cache-metrics`); absent "
                      "without the histogram", vllm_series="`vllm:kv_block_lifetime_seconds`",
       signal_field="kv_block_lifetime", otlp=Otlp("llmobs.kv_block.lifetime")),
    _g("llmobs_kv_block_idle_before_evict_seconds", "s", _Q,
       "Idle time of evicted KV-cache blocks before eviction, quantiles over the window.", "serving",
       doc="time an evicted KV-cache block sat unused before it was evicted (vLLM `--kv-cache-metrics`); "
           "absent without the histogram", vllm_series="`vllm:kv_block_idle_before_evict_seconds`",
       signal_field="kv_block_idle_before_evict", otlp=Otlp("llmobs.kv_block.idle_before_evict")),
    _g("llmobs_spec_decode_acceptance_ratio", "1", SIGNAL_LABELS,
       "Speculative decoding: accepted ÷ proposed draft tokens over the window.", "serving",
       doc="accepted ÷ proposed draft tokens over the window (0–1; NaN with no draft); absent without "
           "speculative decoding", vllm_series="`vllm:spec_decode_num_accepted_tokens_total`, "
                                              "`vllm:spec_decode_num_draft_tokens_total`",
       signal_field="spec_decode_acceptance_ratio", otlp=Otlp("llmobs.spec_decode.acceptance_ratio")),
    _g("llmobs_spec_decode_mean_acceptance_length", "{token}", SIGNAL_LABELS,
       "Speculative decoding: tokens per verification step (1 + accepted per draft).", "serving",
       doc="mean tokens a speculative step yields over the window: 1 + accepted tokens per draft (NaN with no "
           "draft)", vllm_series="`vllm:spec_decode_num_accepted_tokens_total`, `vllm:spec_decode_num_drafts_total`",
       signal_field="spec_decode_mean_acceptance_length", otlp=Otlp("llmobs.spec_decode.mean_acceptance_length")),
    _g("llmobs_spec_decode_acceptance_by_position", "1", _P,
       "Speculative decoding: share of drafts whose token at `position` was accepted.", "serving",
       doc="share of drafts whose token at draft `position` (0 = first) was accepted, over the window",
       vllm_series="`vllm:spec_decode_num_accepted_tokens_per_pos_total`, `vllm:spec_decode_num_drafts_total`",
       signal_field="spec_decode_acceptance_by_position",
       otlp=Otlp("llmobs.spec_decode.acceptance_by_position", labels=(("position", "llmobs.draft_position"),))),
    # Prefill/decode disaggregation: the only series with a `role` label (prefill | decode | mixed, from the
    # target's config or pod label; "unknown" while the page contradicts it).
    _g("llmobs_kv_transfer_time_seconds", "s", (*ROLE_LABELS, "quantile"),
       "KV-connector (NIXL) transfer time quantiles over the window.", "serving",
       doc="time of a KV transfer between prefill and decode instances (NIXL connector); absent without it",
       vllm_series="`vllm:nixl_xfer_time_seconds`", signal_field="kv_transfer_time",
       otlp=Otlp("llmobs.kv_transfer.time", labels=(("role", "llmobs.disaggregation_role"),))),
    _g("llmobs_kv_transfer_bytes_rate", "By/s", ROLE_LABELS, "KV-connector (NIXL) bytes transferred per second.",
       "serving", doc="KV bytes moved per second between prefill and decode instances (NIXL connector)",
       vllm_series="`vllm:nixl_bytes_transferred`", signal_field="kv_transfer_bytes_rate",
       otlp=Otlp("llmobs.kv_transfer.bytes.rate", labels=(("role", "llmobs.disaggregation_role"),))),
    _g("llmobs_kv_transfer_failed_rate", "{transfer}/s", ROLE_LABELS,
       "KV-connector (NIXL) failed transfers per second.", "serving",
       vllm_series="`vllm:nixl_num_failed_transfers_total`", signal_field="kv_transfer_failed_rate",
       otlp=Otlp("llmobs.kv_transfer.failed.rate", labels=(("role", "llmobs.disaggregation_role"),))),
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
    _c("llmobs_engine_sleep_transitions_total", "{transition}", SIGNAL_LABELS,
       "Changes of the endpoint's awake share seen between scrapes.", "serving",
       doc="times the engines' awake share (`llmobs_engine_sleeping`) changed from one scrape to the next, "
           "counted since llmobs started tracking the endpoint; a sleep and wake within one scrape interval is "
           "not seen. A climbing count is a flapping sleep state (sleep mode toggled by an orchestrator)",
       vllm_series="`vllm:engine_sleep_state{sleep_state=\"awake\"}`", signal_field="engine_sleep_transitions",
       otlp=Otlp("llmobs.engine.sleep_transitions")),
    _c("llmobs_disaggregation_role_conflicts_total", "{scrape}", SIGNAL_LABELS,
       "Scrapes whose page contradicted the target's configured disaggregation role.", "serving",
       doc="scrapes whose page contradicted the configured `role` (a prefill node receiving KV, a decode node "
           "doing its own prefill, or a role that is not prefill/decode/mixed); present only for a target given "
           "a role. While contradicted, the `role` label of the KV-transfer series reads `unknown`",
       vllm_series="`vllm:prompt_tokens_by_source_total`, `vllm:nixl_xfer_time_seconds`",
       signal_field="disaggregation_role_conflicts", otlp=Otlp("llmobs.disaggregation.role_conflicts")),
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
    # Saturation: which scheduler limit binds (llmobs.signals.saturation; docs/configuration.md, "Saturation").
    _g("llmobs_saturation_ratio", "1", _RES, "Window-average use of a vLLM scheduler limit (0-1), by resource.",
       "serving",
       doc="window-average use of each scheduler limit, 0–1, by `resource`: `kv` (mean KV-cache usage), `batch` "
           "(mean running requests ÷ the target's `max_num_seqs`), `prefill` (share of scrapes with a request "
           "running × mean tokens per engine step ÷ the target's `max_num_batched_tokens`, capped at 1); a "
           "resource whose inputs are missing has no series (`llmobs_saturation_unknown` says why)",
       vllm_series=_SAT, signal_field="saturation.ratios",
       otlp=Otlp("llmobs.saturation.ratio", labels=(("resource", "llmobs.resource"),))),
    _g("llmobs_saturation_binding_ratio", "1", SIGNAL_LABELS,
       "The largest saturation ratio, when all three are known (0-1).", "serving",
       doc="the largest of the three `llmobs_saturation_ratio`s, only when all three are known (else absent): "
           "how close the endpoint is to the limit that binds it", vllm_series=_SAT,
       signal_field="saturation.binding_ratio", keda_signal="saturation",
       otlp=Otlp("llmobs.saturation.binding_ratio")),
    _g("llmobs_bottleneck", "1", _RES, "1 on the resource that binds: kv, prefill, batch, none or unknown.",
       "serving",
       doc="1 on the `resource` that binds over the window: `kv`, `prefill` or `batch` (the largest ratio), "
           "`none` (every ratio under 0.5) or `unknown` (a ratio is unknown: no resource is named as fact)",
       vllm_series=_SAT, signal_field="saturation.bottleneck",
       otlp=Otlp("llmobs.bottleneck", labels=(("resource", "llmobs.resource"),))),
    _g("llmobs_spare_capacity_tokens_rate", "{token}/s", SIGNAL_LABELS,
       "Tokens/s the endpoint could add before its binding resource is full (linear extrapolation).", "serving",
       doc="tokens/s (prompt + generated) the endpoint could add at the current mix before its binding resource "
           "is full: T × (1 − r) ÷ r for throughput T and binding ratio r; 0 at r = 1, absent when r = 0 or the "
           "bottleneck is unknown", vllm_series=_SAT, signal_field="saturation.spare_tokens_per_second",
       otlp=Otlp("llmobs.spare_capacity.token.rate")),
    _g("llmobs_saturation_unknown", "1", _R, "1 per reason a saturation ratio is unknown.", "serving",
       doc="1 per `reason` a saturation ratio cannot be computed: `max_num_seqs_unknown`, "
           "`max_num_batched_tokens_unknown` (set them on the target), `no_iteration_tokens`, "
           "`no_kv_cache_usage`, `no_requests_running` (the page lacks the series), `iteration_tokens_implausible`, "
           "`no_engine_steps` (requests ran but no engine step emitted a token in the window)",
       vllm_series=_SAT, signal_field="saturation.unknown",
       otlp=Otlp("llmobs.saturation.unknown", labels=(("reason", "llmobs.saturation_unknown_reason"),))),
)

_EXPORTER = (
    _g("llmobs_build_info", "1", ("version",), "llmobs build information.", "exporter",
       doc="1; over OTLP the version is the resource's `service.version` instead"),
    _g("llmobs_scrape_cycle_duration_seconds", "s", (), "Wall time of the last full scrape cycle.", "exporter",
       doc="wall time of the last full scrape cycle over all targets", otlp=Otlp("llmobs.scrape_cycle.duration")),
    _g("llmobs_targets", "{target}", (), "Configured scrape targets.", "exporter", otlp=Otlp("llmobs.targets")),
    _g("llmobs_signal_window_seconds", "s", (), "Signal window in use.", "exporter",
       otlp=Otlp("llmobs.signal_window")),
    MetricSpec("llmobs_replica_cold_start_seconds", "histogram", "s", ("model", "start", "stage"),
               "Measured replica cold starts: from start to stage.", "exporter",
               doc="one observation per replica llmobs saw start: `start` = `pod_created` (Kubernetes discovery) or "
                   "`process_start` (the page's `process_start_time_seconds`), `stage` = `ready` (the pod's Ready "
                   "condition) or `first_scrape` (the first good scrape); replicas already running when llmobs "
                   "started are not counted; the forecast horizon when `forecast.horizon_seconds` is not set"),
    _c("llmobs_replica_cold_starts_rejected_total", "{start}", ("model", "reason"),
       "Replica starts not measured, by reason.", "exporter",
       doc="`clock_skew` (a start after the instant it precedes, beyond 5 s), `too_long` (over 6 h), "
           "`not_finite`"),
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

_WATCH = ("`watch` (`pods/<ns>`, `pods`, `nodes`, `pods@<node>`, and with `watch_autoscalers` `hpas/<ns>`, "
          "`scaledobjects/<ns>`) of the discovery caches")
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
    # drain-aware scale-in (kubernetes.pod_deletion_cost, llmobs.serving.deletion_cost)
    _g("llmobs_pod_deletion_cost", "1", ("namespace", "pod"),
       "controller.kubernetes.io/pod-deletion-cost llmobs last wrote on the pod.", "attribution",
       doc="1,000 per request running or waiting + 100 per 10 % of KV cache in use; the ReplicaSet deletes the "
           "lowest first on scale-in; only with `kubernetes.pod_deletion_cost.enabled`"),
    _c("llmobs_pod_deletion_cost_patches_total", "{patch}", ("result",),
       "Pod-deletion-cost annotation writes, by result.", "attribution",
       doc="`ok`, `forbidden` (RBAC: writes pause), `not_found` (pod gone), `conflict`, `invalid`, `throttled` "
           "(429) and `error` (5xx, connection; writes pause)"),
)


_DOOR = (
    _g("llmobs_door_request_rate", "{request}/s", DOOR_LABELS,
       "Requests/s the door answered for the model over the signal window (served or refused).", "door",
       doc="requests/s the door (router, proxy, endpoint picker) answered for the model over the signal window, "
           "served or refused: the demand a model at zero replicas still has", keda_signal="door_request_rate"),
    _g("llmobs_door_rejected_rate", "{request}/s", DOOR_LABELS,
       "Requests/s the door refused for want of a backend over the signal window.", "door",
       doc="requests/s the door refused for want of a backend (no replica, or none answering)"),
    _g("llmobs_door_pending_requests", "{request}", DOOR_LABELS,
       "Requests the door holds without a backend's answer yet.", "door",
       doc="requests the door holds right now without a backend's answer; absent where the door kind does not "
           "export it (LiteLLM; the vLLM router under round robin)", keda_signal="door_pending"),
    _g("llmobs_door_latency_seconds", "s", (*DOOR_LABELS, "quantile"),
       "Door-side request latency quantiles over the signal window.", "door",
       doc="door-side request latency over the signal window, `quantile` 0.5/0.9/0.99 (NaN with no request in "
           "the window); absent where the door exports no latency histogram"),
    _c("llmobs_door_requests_total", "{request}", DOOR_LABELS,
       "Requests the door answered for the model (reset-adjusted).", "door",
       doc="requests the door answered for the model since llmobs first saw it, carried across door restarts"),
    _c("llmobs_door_rejected_total", "{request}", DOOR_LABELS,
       "Requests the door refused for want of a backend (reset-adjusted).", "door"),
    _g("llmobs_door_up", "1", DOOR_HEALTH_LABELS, "1 if the last scrape of the door succeeded and was read.", "door",
       doc="1 when the last scrape of the door succeeded and was read; an idle door (LiteLLM before its first "
           "request) is up with no per-model series"),
    _c("llmobs_door_problems_total", "{event}", (*DOOR_HEALTH_LABELS, "reason"),
       "Failed door scrapes and unusable door samples, by reason.", "door",
       doc="failed scrapes by the scrape error kind (`timeout`, `connect`, `http_status`, ...), pages naming too "
           "many models (`model_limit`), and samples "
           "not used (`missing_model`: no model label and no `model` on the target; `bad_value`; `bad_bucket`; "
           "`implausible`)"),
)

# The scaling chain: what the autoscaler did with the recommendation (llmobs.sources.kubernetes.autoscalers).
_SO = ("model", "scaledobject")
_CHAIN = (
    _g("llmobs_hpa_desired_replicas", "{replica}", (*_SO, "hpa"),
       "The HPA's status.desiredReplicas for a model's ScaledObject.", "chain",
       doc="`status.desiredReplicas` of the HPA KEDA created for the ScaledObject (`namespace/name`) whose "
           "llmobs trigger names the model; absent while that HPA does not exist or has not computed it"),
    _g("llmobs_hpa_current_replicas", "{replica}", (*_SO, "hpa"),
       "The HPA's status.currentReplicas for a model's ScaledObject.", "chain"),
    _g("llmobs_hpa_last_scale_timestamp_seconds", "s", (*_SO, "hpa"),
       "Unix time the HPA last changed the replica count (status.lastScaleTime).", "chain",
       doc="`status.lastScaleTime`; absent while the HPA never scaled"),
    _g("llmobs_hpa_condition", "1", (*_SO, "hpa", "condition", "status"),
       "1 for the HPA condition's current status, 0 for the others.", "chain",
       doc="`condition` = `AbleToScale`, `ScalingActive`, `ScalingLimited` (as the HPA controller writes them); "
           "`status` = `True`, `False`, `Unknown`, one series each"),
    _g("llmobs_scaledobject_condition", "1", (*_SO, "condition", "status"),
       "1 for the ScaledObject condition's current status, 0 for the others.", "chain",
       doc="`condition` = `Ready`, `Active`, `Fallback`, `Paused` (as KEDA writes them); `status` = `True`, "
           "`False`, `Unknown`, one series each"),
    _g("llmobs_scaledobject_failing_triggers", "{trigger}", _SO,
       "Triggers KEDA's status.health reports as not Happy.", "chain"),
    _g("llmobs_scaledobject_unknown_model", "1", _SO,
       "1 per ScaledObject trigger naming a model llmobs does not see.", "chain",
       doc="the trigger's `metadata.model` matches no model llmobs scrapes or discovers: the scaler answers "
           "for a model with no data, so the HPA never moves (a typo or label mismatch)"),
    _g("llmobs_replicas", "{replica}", ("model",), "Pods of the model, Ready or not.", "chain",
       doc="discovered pods (label selector) that name the model in `kubernetes.model_label`, Ready or not, "
           "not terminating"),
    _g("llmobs_replicas_ready", "{replica}", ("model",), "Pods of the model that are Ready.", "chain"),
    _g("llmobs_replicas_not_ready_since_timestamp_seconds", "s", ("model",),
       "Unix time the longest non-Ready pod of the model last changed readiness.", "chain",
       doc="the earliest Ready-condition `lastTransitionTime` among the model's non-Ready pods (their "
           "creation time when absent); absent while every pod is Ready"),
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
    *_TARGET, *_SERVING, *_EXPORTER, *_FEEDBACK, *_FORECAST, *_SCALER, *_GPU, *_ATTRIBUTION, *_DOOR,
    *_CHAIN)
"""Every series llmobs exports, in docs/metrics.md's order."""

_BY_NAME: dict[str, MetricSpec] = {}
for _spec in CATALOGUE:
    _BY_NAME[_spec.name] = _BY_NAME[_spec.family_name] = _spec
del _spec


def metric(name: str) -> MetricSpec:
    """The row of `name`, as PromQL selects it or as its family is named (`llmobs_requests_total` or
    `llmobs_requests`; a histogram's `_bucket`, `_sum` and `_count` series too); KeyError for a name llmobs
    does not export."""
    if not isinstance(name, str):
        raise TypeError(f"metric takes a series or family name, a str, not {type(name).__name__}")
    spec = _BY_NAME.get(name)
    if spec is None:
        base, _, suffix = name.rpartition("_")
        spec = _BY_NAME.get(base) if suffix in ("bucket", "sum", "count") else None
        if spec is None or spec.type != "histogram":
            raise KeyError(name)
    return spec


def section(key: str) -> tuple[MetricSpec, ...]:
    """The rows one component exports, in catalogue order."""
    return tuple(s for s in CATALOGUE if s.section == key)
