"""The vLLM families llmobs used to skip: read from the real vLLM 0.32.0 page, absent where a page lacks them,
and unharmed by labels a future vLLM may add.

Expected values are read off tests/fixtures/vllm-0.32.0-cpu-metrics.txt by hand (quoted next to each assert).
Variants of the page are that text with a few values or labels edited; no family or label name is invented.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.serving.collector import FleetCollector
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.types import Attribution, ModelEndpointSignals
from llmobs.sources.aliases import default_alias_table
from llmobs.sources.normalize import HistogramSnapshot, ModelScrape, normalize
from llmobs.sources.textformat import parse_text
from llmobs.state import FleetState, StateHolder

NEW_FAMILIES = ("vllm:request_prefill_time_seconds", "vllm:request_decode_time_seconds",
                "vllm:request_inference_time_seconds", "vllm:iteration_tokens_total", "vllm:prompt_tokens_by_source",
                "vllm:prompt_tokens_cached", "vllm:external_prefix_cache", "vllm:engine_sleep_state",
                "vllm:estimated_", "vllm:admission_rejections")
# Exported families that exist only where the page has their vLLM family.
OPTIONAL_EXPORTS = ("llmobs_prefill_time_seconds", "llmobs_decode_time_seconds", "llmobs_inference_time_seconds",
                    "llmobs_iteration_tokens", "llmobs_iteration_tokens_mean", "llmobs_engine_sleeping",
                    "llmobs_prompt_tokens_by_source_rate", "llmobs_prompt_tokens_cached_rate",
                    "llmobs_prompt_tokens_cached_ratio", "llmobs_prompt_tokens_cached_by_tier_rate",
                    "llmobs_external_prefix_cache_hit_ratio", "llmobs_estimated_flops_per_gpu_rate",
                    "llmobs_estimated_read_bytes_per_gpu_rate", "llmobs_estimated_write_bytes_per_gpu_rate",
                    "llmobs_admission_rejections_rate", "llmobs_engine_sleep_transitions_total")


def _model(page: str, time: float = 0.0) -> ModelScrape:
    return normalize(parse_text(page).samples, time).models["tiny"]


def _fresh(scrape: ModelScrape) -> ModelScrape:
    """The same endpoint just after vLLM started: every counter and histogram at zero, gauges as they are."""
    zero = {c: dict.fromkeys(subs, 0.0) for c, subs in scrape.counters.items()}
    hists = {c: HistogramSnapshot(h.bounds, (0.0,) * len(h.bounds), 0.0, 0.0) for c, h in scrape.histograms.items()}
    return dataclasses.replace(scrape, counters=zero, histograms=hists)


def _signals(page: str) -> ModelEndpointSignals:
    """Signals over a 10 s window from a freshly started vLLM to `page`: the window holds the whole page."""
    scrape = _model(page)
    tracker = ModelEndpointTracker(Attribution("tiny", "e"), 60)
    tracker.observe(_fresh(scrape), 0.0)
    tracker.observe(scrape, 10.0)
    signals = tracker.signals()
    assert signals is not None
    return signals


def _set(page: str, series: str, value: float) -> str:
    """`page` with the sample line starting `series` (name and labels as on the page) set to `value`."""
    edited, n = re.subn(rf"^{re.escape(series)} \S+$", f"{series} {value}", page, flags=re.M)
    assert n == 1, series
    return edited


def _without(page: str, *prefixes: str) -> str:
    return "\n".join(line for line in page.splitlines()
                     if not any(line.startswith(p) or line.startswith(f"# HELP {p}") or line.startswith(f"# TYPE {p}")
                                for p in prefixes)) + "\n"


def test_the_real_page_feeds_every_new_canonical_series(fixture_page: str) -> None:
    ms = _model(fixture_page)
    # vllm:request_prefill_time_seconds_count 8.0, _sum 0.06463507599983132
    assert ms.histograms["prefill_time"].count == 8.0
    assert ms.histograms["prefill_time"].sum == pytest.approx(0.06463507599983132)
    assert ms.histograms["decode_time"].sum == pytest.approx(0.7275438839998287)
    assert ms.histograms["inference_time"].sum == pytest.approx(0.79217895999966)
    # vllm:iteration_tokens_total_count 34.0, _sum 295.0; buckets le=1,8,16,...,16384,+Inf
    it = ms.histograms["iteration_tokens"]
    assert (it.count, it.sum) == (34.0, 295.0)
    assert it.bounds[:3] == (1.0, 8.0, 16.0) and it.cumulative[:3] == (0.0, 31.0, 32.0)
    assert ms.counters["prompt_tokens_by_source"] == {"local_compute": 64.0, "local_cache_hit": 0.0,
                                                      "external_kv_transfer": 0.0}
    assert set(ms.counters["prompt_tokens_cached_by_source"]) == {"device", "host", "p2p", "disk",
                                                                  "external_unspecified"}
    assert ms.gauges["engine_sleep_state"] == {"awake": 1.0, "weights_offloaded": 0.0, "discard_all": 0.0}
    # admission_rejections carries no `engine` label on the page; its reasons are kept apart
    assert ms.counters["admission_rejections"] == {"max_num_queued_reqs": 0.0, "max_num_queued_tokens": 0.0}
    for c in ("prompt_tokens_cached", "external_prefix_cache_queries", "external_prefix_cache_hits",
              "estimated_flops_per_gpu", "estimated_read_bytes_per_gpu", "estimated_write_bytes_per_gpu"):
        assert ms.counters[c] == {"": 0.0}, c
    # families no signal reads (request_num_preemptions, request_params_n, mm_cache_*) are not routed at all:
    # they would cost every scrape of every endpoint for nothing
    assert not {"request_preemptions", "params_n"} & set(ms.histograms)


def test_new_series_are_not_expected_so_an_older_page_reports_nothing_missing(fixture_page: str) -> None:
    """Families that vary by release or configuration must not read as a broken build when absent."""
    page = _without(fixture_page, *NEW_FAMILIES)
    assert normalize(parse_text(page).samples, 0.0).missing == ()
    table = default_alias_table()
    assert not {"prefill_time", "iteration_tokens", "engine_sleep_state", "spec_decode_drafts"} & set(table.expected)


def test_signals_from_the_real_page_match_it_by_hand(fixture_page: str) -> None:
    s = _signals(fixture_page)
    # iteration_tokens: 34 steps, 295 tokens; 31 steps in (1, 8] so the median interpolates there
    assert s.iteration_tokens is not None and s.iteration_tokens.count == 34.0
    assert s.iteration_tokens_mean == pytest.approx(295 / 34)
    assert s.iteration_tokens.quantiles[0.5] == pytest.approx(1 + 7 * 17 / 31)
    assert 32.0 < s.iteration_tokens.quantiles[0.99] <= 64.0  # the 34th step is in (32, 64]
    # all 8 prefills in the first bucket (le=0.3)
    assert s.prefill_time is not None and s.prefill_time.mean == pytest.approx(0.06463507599983132 / 8)
    assert 0.0 < s.prefill_time.quantiles[0.99] <= 0.3
    assert s.decode_time is not None and s.decode_time.mean == pytest.approx(0.7275438839998287 / 8)
    assert s.inference_time is not None and s.inference_time.count == 8.0
    assert s.engine_sleeping == 0.0  # sleep_state="awake" 1.0
    assert s.prompt_tokens_by_source_rate == {"local_compute": 6.4, "local_cache_hit": 0.0,
                                              "external_kv_transfer": 0.0}
    assert s.prompt_tokens_cached_rate == 0.0 and s.prompt_tokens_cached_ratio == 0.0  # 0 of 64 cached
    assert math.isnan(s.external_prefix_cache_hit_ratio)  # no external query in the window: no share
    assert s.estimated_flops_per_gpu_rate == 0.0
    assert s.admission_rejections_rate == {"max_num_queued_reqs": 0.0, "max_num_queued_tokens": 0.0}


def test_cached_prompt_tokens_share_and_tiers(fixture_page: str) -> None:
    page = _set(fixture_page, 'vllm:prompt_tokens_cached_total{engine="0",model_name="tiny"}', 16.0)
    page = _set(page, 'vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="tiny",source="device"}', 12.0)
    page = _set(page, 'vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="tiny",source="p2p"}', 4.0)
    page = _set(page, 'vllm:external_prefix_cache_queries_total{engine="0",model_name="tiny"}', 40.0)
    page = _set(page, 'vllm:external_prefix_cache_hits_total{engine="0",model_name="tiny"}', 4.0)
    page = _set(page, 'vllm:admission_rejections_total{model_name="tiny",reason="max_num_queued_reqs"}', 5.0)
    page = _set(page, 'vllm:estimated_flops_per_gpu_total{engine="0",model_name="tiny"}', 2.0e12)
    s = _signals(page)
    assert s.prompt_tokens_cached_ratio == pytest.approx(16 / 64)  # prompt_tokens_total 64
    assert s.prompt_tokens_cached_rate == pytest.approx(1.6)
    assert s.prompt_tokens_cached_by_source_rate["device"] == pytest.approx(1.2)
    assert s.prompt_tokens_cached_by_source_rate["p2p"] == pytest.approx(0.4)
    assert s.external_prefix_cache_hit_ratio == pytest.approx(0.1)
    assert s.admission_rejections_rate["max_num_queued_reqs"] == pytest.approx(0.5)
    assert s.estimated_flops_per_gpu_rate == pytest.approx(2.0e11)


def test_a_cached_count_above_the_prompt_count_is_not_reported_as_a_share_above_one(fixture_page: str) -> None:
    page = _set(fixture_page, 'vllm:prompt_tokens_cached_total{engine="0",model_name="tiny"}', 640.0)
    assert _signals(page).prompt_tokens_cached_ratio == 1.0


@pytest.mark.parametrize(("awake", "offloaded", "discard", "sleeping"),
                         [("0.0", "1.0", "0.0", 1.0), ("0.0", "0.0", "1.0", 1.0), ("1.0", "0.0", "0.0", 0.0)])
def test_engine_sleep_levels(fixture_page: str, awake: str, offloaded: str, discard: str, sleeping: float) -> None:
    page = _set(fixture_page, 'vllm:engine_sleep_state{engine="0",model_name="tiny",sleep_state="awake"}', awake)
    page = _set(page, 'vllm:engine_sleep_state{engine="0",model_name="tiny",sleep_state="weights_offloaded"}',
                offloaded)
    page = _set(page, 'vllm:engine_sleep_state{engine="0",model_name="tiny",sleep_state="discard_all"}', discard)
    assert _signals(page).engine_sleeping == sleeping


def test_one_of_two_engines_asleep_is_half(fixture_page: str) -> None:
    second = [line.replace('engine="0"', 'engine="1"').replace("} 1.0", "} 0.0")
              for line in fixture_page.splitlines() if line.startswith("vllm:engine_sleep_state{")]
    assert _signals(fixture_page + "\n".join(second) + "\n").engine_sleeping == 0.5


def test_an_impossible_sleep_state_is_dropped_and_counted_not_reported(fixture_page: str) -> None:
    page = _set(fixture_page, 'vllm:engine_sleep_state{engine="0",model_name="tiny",sleep_state="awake"}', 3.0)
    tracker = ModelEndpointTracker(Attribution("tiny", "e"), 60)
    tracker.observe(_model(page), 0.0)
    tracker.observe(_model(page), 10.0)
    signals = tracker.signals()
    assert signals is not None and signals.engine_sleeping is None
    assert tracker.take_implausible() == 2  # one bad sample per scrape


def test_a_page_without_the_families_has_no_new_series(fixture_page: str) -> None:
    """Absent, not 0 and not NaN: a release without a family must not plot as an idle or broken engine."""
    s = _signals(_without(fixture_page, *NEW_FAMILIES))
    assert (s.prefill_time, s.decode_time, s.inference_time, s.iteration_tokens) == (None,) * 4
    assert (s.iteration_tokens_mean, s.engine_sleeping, s.prompt_tokens_cached_rate, s.prompt_tokens_cached_ratio,
            s.external_prefix_cache_hit_ratio, s.estimated_flops_per_gpu_rate) == (None,) * 6
    assert s.prompt_tokens_by_source_rate == s.prompt_tokens_cached_by_source_rate == s.admission_rejections_rate == {}
    exposed = _exposition(s)
    for name in OPTIONAL_EXPORTS:
        assert not re.search(rf"^{name}{{", exposed, re.M), name
    assert re.search(r"^llmobs_queue_time_seconds\{", exposed, re.M)  # the families it has still are


def test_a_page_with_only_some_of_the_families(fixture_page: str) -> None:
    s = _signals(_without(fixture_page, "vllm:request_decode_time_seconds", "vllm:prompt_tokens_cached_total"))
    assert s.prefill_time is not None and s.decode_time is None
    assert s.prompt_tokens_cached_ratio is None and s.prompt_tokens_cached_rate is None
    assert s.prompt_tokens_cached_by_source_rate  # a separate family, still on the page
    exposed = _exposition(s)
    assert re.search(r"^llmobs_prefill_time_seconds\{", exposed, re.M)
    assert not re.search(r"^llmobs_decode_time_seconds\{", exposed, re.M)


def test_a_future_vllm_adding_a_label_is_summed_away(fixture_page: str) -> None:
    """Each series split in two by a label this vLLM does not have (`lora`): the sums are the page's values."""
    split = []
    for line in fixture_page.splitlines():
        if line.startswith(("vllm:request_prefill_time_seconds", "vllm:prompt_tokens_by_source_total",
                            "vllm:iteration_tokens_total")):
            name_labels, value = line.rsplit(" ", 1)
            half = float(value) / 2
            split += [f'{name_labels[:-1]},lora="{a}"}} {half}' for a in ("a", "b")]
        elif line.startswith("vllm:engine_sleep_state"):  # a gauge per engine: both halves carry the value
            name_labels, value = line.rsplit(" ", 1)
            split += [f'{name_labels[:-1]},lora="{a}"}} {value}' for a in ("a", "b")]
        else:
            split.append(line)
    future = _model("\n".join(split) + "\n")
    today = _model(fixture_page)
    assert future.histograms["prefill_time"] == today.histograms["prefill_time"]
    assert future.histograms["iteration_tokens"] == today.histograms["iteration_tokens"]
    assert future.counters["prompt_tokens_by_source"] == today.counters["prompt_tokens_by_source"]
    assert future.gauges["engine_sleep_state"] == today.gauges["engine_sleep_state"]


def test_spec_decode_kv_residency_and_nixl_names_are_in_the_table() -> None:
    """A synthetic page written ONLY from names and labels in vLLM's source (vllm/v1/spec_decode/metrics.py,
    vllm/v1/metrics/loggers.py, the NIXL connector's NixlPromMetrics); no real page with them is in
    tests/fixtures, so they stay canonical-only and this checks only that such a page is routed to them."""
    page = "\n".join([
        '# TYPE vllm:spec_decode_num_drafts counter',
        'vllm:spec_decode_num_drafts_total{engine="0",model_name="tiny"} 10.0',
        '# TYPE vllm:spec_decode_num_accepted_tokens_per_pos counter',
        'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="tiny",position="0"} 7.0',
        'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="tiny",position="1"} 3.0',
        '# TYPE vllm:kv_block_lifetime_seconds histogram',
        'vllm:kv_block_lifetime_seconds_bucket{engine="0",le="1.0",model_name="tiny"} 2.0',
        'vllm:kv_block_lifetime_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 3.0',
        'vllm:kv_block_lifetime_seconds_count{engine="0",model_name="tiny"} 3.0',
        'vllm:kv_block_lifetime_seconds_sum{engine="0",model_name="tiny"} 4.5',
        '# TYPE vllm:nixl_num_failed_transfers counter',
        'vllm:nixl_num_failed_transfers_total{engine="0",model_name="tiny"} 2.0',
    ]) + "\n"
    ms = _model(page)
    assert ms.counters["spec_decode_drafts"] == {"": 10.0}
    assert ms.counters["spec_decode_accepted_tokens_per_pos"] == {"0": 7.0, "1": 3.0}
    assert ms.histograms["kv_block_lifetime"].count == 3.0
    assert ms.counters["kv_transfer_failed"] == {"": 2.0}


def _exposition(s: ModelEndpointSignals) -> str:
    holder = StateHolder()
    holder.publish(FleetState(time=10.0, signals=(s,), targets=()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    return generate_latest(registry).decode()


def test_a_flapping_sleep_state_is_counted(fixture_page: str) -> None:
    """Each scrape catches only one moment of a state an orchestrator toggles: the changes are counted."""
    asleep = _set(fixture_page, 'vllm:engine_sleep_state{engine="0",model_name="tiny",sleep_state="awake"}', 0.0)
    tracker = ModelEndpointTracker(Attribution("tiny", "e"), 60)
    for t, page in enumerate([fixture_page, asleep, fixture_page, fixture_page, asleep]):
        tracker.observe(_model(page), float(t))
    signals = tracker.signals()
    assert signals is not None and signals.engine_sleeping == 1.0
    assert signals.totals["engine_sleep_transitions"] == 3.0
    assert "engine_sleep_transitions" not in _signals(_without(fixture_page, "vllm:engine_sleep_state")).totals


@pytest.mark.parametrize(("max_lora", "expected"), [("4", 4), ("", None), ("four", None)])
def test_lora_adapter_slots(fixture_page: str, max_lora: str, expected: int | None) -> None:
    """`vllm:lora_requests_info`'s labels as vllm/v1/metrics/loggers.py sets them (the CPU page runs no LoRA);
    a `max_lora` that is not a count is left out rather than guessed."""
    info = ('# TYPE vllm:lora_requests_info gauge\n'
            f'vllm:lora_requests_info{{max_lora="{max_lora}",running_lora_adapters="a,b",'
            'waiting_lora_adapters="c"} 1700000000.0\n')
    s = _signals(fixture_page + info)
    assert (s.lora_adapters_running, s.lora_adapters_waiting, s.lora_adapters_max) == (2, 1, expected)
    assert bool(re.search(r"^llmobs_lora_adapters_max\{", _exposition(s), re.M)) == (expected is not None)
