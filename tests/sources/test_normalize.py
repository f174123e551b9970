"""Normalization: every vLLM release's names map to one canonical set; engines combine; drift is reported."""

from __future__ import annotations

import math

import pytest

from llmobs.sources.aliases import default_alias_table, parse_alias_table
from llmobs.sources.normalize import normalize
from llmobs.sources.textformat import parse_text


def scrape(text: str):
    return normalize(parse_text(text).samples, time=0.0)


def test_real_vllm_032_page_maps_every_expected_series(fixture_page: str) -> None:
    result = scrape(fixture_page)
    assert result.missing == ()
    tiny = result.models["tiny"]
    assert tiny.counters["request_success"] == {"stop": 2.0, "length": 6.0, "abort": 0.0, "error": 0.0,
                                                 "repetition": 0.0}
    assert tiny.counter("prompt_tokens") == 64.0
    assert tiny.gauge("kv_cache_usage") == 0.0
    assert tiny.gauges["requests_waiting_by_reason"] == {"capacity": 0.0, "deferred": 0.0}
    # cache_config_info: num_gpu_blocks=4096 x block_size=128
    assert tiny.kv_capacity_tokens == 4096 * 128
    ttft = tiny.histograms["ttft"]
    assert ttft.bounds[0] == 0.001 and math.isinf(ttft.bounds[-1])
    assert ttft.count == 8.0 and ttft.cumulative[-1] == 8.0
    # prompt-length buckets come from the page (they depend on --max-model-len), not from a table
    assert tiny.histograms["prompt_length"].bounds[:-1] == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


V0_PAGE = """\
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.42
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="m"} 3
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 5
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 7
# TYPE vllm:gpu_prefix_cache_queries counter
vllm:gpu_prefix_cache_queries_total{model_name="m"} 100
# TYPE vllm:gpu_prefix_cache_hits counter
vllm:gpu_prefix_cache_hits_total{model_name="m"} 25
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{model_name="m"} 4
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{le="0.01",model_name="m"} 1
vllm:time_per_output_token_seconds_bucket{le="0.05",model_name="m"} 3
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 4
vllm:time_per_output_token_seconds_count{model_name="m"} 4
vllm:time_per_output_token_seconds_sum{model_name="m"} 0.1
"""


def test_old_names_map_to_canonical() -> None:
    result = scrape(V0_PAGE)
    m = result.models["m"]
    assert m.gauge("kv_cache_usage") == pytest.approx(0.42)
    assert m.gauge("requests_swapped") == 3
    assert m.counter("prefix_cache_queries") == 100 and m.counter("prefix_cache_hits") == 25
    assert m.counter("preemptions") == 4
    assert m.histograms["itl"].cumulative == (1, 3, 4)
    # what this old page lacks is reported, what it has under old names is not
    assert "itl" not in result.missing and "kv_cache_usage" not in result.missing
    assert "ttft" in result.missing and "request_success" in result.missing


def test_old_and_new_name_on_one_page_are_not_double_counted() -> None:
    page = """\
vllm:gpu_cache_usage_perc{model_name="m"} 0.9
vllm:kv_cache_usage_perc{model_name="m"} 0.5
vllm:gpu_prefix_cache_hits_total{model_name="m"} 10
vllm:prefix_cache_hits_total{model_name="m"} 10
"""
    m = scrape(page).models["m"]
    assert m.gauge("kv_cache_usage") == 0.5  # the newest name wins
    assert m.counter("prefix_cache_hits") == 10


def test_engines_are_combined_per_endpoint() -> None:
    page = """\
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6
vllm:num_requests_waiting{engine="0",model_name="m"} 2
vllm:num_requests_waiting{engine="1",model_name="m"} 3
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 10
vllm:request_success_total{engine="1",finished_reason="stop",model_name="m"} 5
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0",model_name="m"} 1
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 2
vllm:e2e_request_latency_seconds_bucket{engine="1",le="1.0",model_name="m"} 3
vllm:e2e_request_latency_seconds_bucket{engine="1",le="+Inf",model_name="m"} 3
vllm:e2e_request_latency_seconds_count{engine="0",model_name="m"} 2
vllm:e2e_request_latency_seconds_count{engine="1",model_name="m"} 3
"""
    m = scrape(page).models["m"]
    assert m.gauge("kv_cache_usage") == pytest.approx(0.4)  # utilization: mean over equal-size engines
    assert m.gauge("requests_waiting") == 5
    assert m.counters["request_success"] == {"stop": 15}
    assert m.histograms["e2e_latency"].cumulative == (4, 5)
    assert m.histograms["e2e_latency"].count == 5


def test_lora_requests_info_counts_adapters_of_newest_series() -> None:
    page = """\
vllm:lora_requests_info{max_lora="4",running_lora_adapters="a,b",waiting_lora_adapters=""} 1700000000.0
vllm:lora_requests_info{max_lora="4",running_lora_adapters="a,b,c",waiting_lora_adapters="d"} 1700000100.0
vllm:num_requests_running{model_name="m"} 1
"""
    m = scrape(page).models["m"]
    assert (m.lora_running, m.lora_waiting) == (3, 1)


def test_histogram_without_inf_bucket_is_ignored_not_guessed() -> None:
    page = 'vllm:time_to_first_token_seconds_bucket{le="1.0",model_name="m"} 3\n' \
           'vllm:num_requests_running{model_name="m"} 1\n'
    assert "ttft" not in scrape(page).models["m"].histograms


def test_nan_gauge_is_skipped() -> None:
    page = 'vllm:kv_cache_usage_perc{model_name="m"} NaN\nvllm:num_requests_running{model_name="m"} 1\n'
    assert math.isnan(scrape(page).models["m"].gauge("kv_cache_usage"))


def test_non_vllm_page_has_no_models() -> None:
    assert scrape("process_cpu_seconds_total 12\n").models == {}


def test_alias_table_rejects_bad_documents() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        parse_alias_table({"series": {"x": {"kind": "bogus", "names": ["a"]}}})
    with pytest.raises(ValueError, match="lists no names"):
        parse_alias_table({"series": {"x": {"kind": "gauge", "names": []}}})
    with pytest.raises(ValueError, match="not defined"):
        parse_alias_table({"series": {}, "expected": ["nope"]})


def test_default_alias_table_covers_issue_renames() -> None:
    specs = default_alias_table().by_canonical()
    assert specs["kv_cache_usage"].names == ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    assert "vllm:gpu_prefix_cache_queries_total" in specs["prefix_cache_queries"].names
    assert "vllm:time_per_output_token_seconds" in specs["itl"].names
    assert specs["requests_swapped"].names == ("vllm:num_requests_swapped",)


# ---------------------------------------------------------------- routing kept per layout (normalize's `layout`)
def _with_values(samples, values):
    from llmobs.sources.textformat import Sample

    return [Sample(s.name, s.labels, v, s.timestamp_ms) for s, v in zip(samples, values, strict=True)]


def _guard(owner: str = "t", max_values: int = 512, max_models: int = 1000):
    from llmobs.pipeline import ModelBudget
    from llmobs.sources.normalize import LabelValueBudget, SampleGuard

    return SampleGuard(owner, LabelValueBudget(max_values), ModelBudget(max_models))


def _two_engine_page(fixture_page: str) -> str:
    """The vLLM page with a second data-parallel engine (same series, engine="1"), and a second model."""
    lines = fixture_page.splitlines()
    extra = [line.replace('engine="0"', 'engine="1"') for line in lines if 'engine="0"' in line]
    other = [line.replace('model_name="tiny"', 'model_name="other"') for line in lines if 'model_name="tiny"' in line]
    return "\n".join(lines + extra + other) + "\n"


@pytest.mark.parametrize("max_values", [512, 5])
@pytest.mark.parametrize("engines", [1, 2])
def test_kept_routing_gives_exactly_a_fresh_routings_result(fixture_page: str, engines: int,
                                                            max_values: int) -> None:
    """Same page layout, changing values (NaN on some scrapes): reusing the layout's routing and routing
    every page afresh agree on every scrape, dropped counts included, also with a label-value budget that
    drops buckets."""
    import random

    text = fixture_page if engines == 1 else _two_engine_page(fixture_page)
    base = parse_text(text).samples
    fast, slow = _guard(max_values=max_values), _guard(max_values=max_values)
    token = object()
    rng = random.Random(7)
    for scrape_no in range(6):
        values = [s.value + rng.randrange(0, 50) * (scrape_no + 1) for s in base]
        if scrape_no == 3:
            values[rng.randrange(len(values))] = math.nan  # a NaN page is routed afresh, the kept one stays
        samples = _with_values(base, values)
        got = normalize(samples, float(scrape_no), guard=fast, layout=token)
        want = normalize(samples, float(scrape_no), guard=slow)
        assert repr(got) == repr(want), scrape_no
        assert fast.plan is not None
    assert fast.labels.admitted("le") == slow.labels.admitted("le")


def test_a_warm_page_normalizes_as_its_samples_do(fixture_page: str) -> None:
    """`normalize` given the parsed page itself (whose warm samples are never built on a routed layout) gives
    what it gives for the page's samples, info series (the KV cache's size) included."""
    from llmobs.sources.normalize import LabelValueBudget, SampleGuard
    from llmobs.sources.textformat import TextParser

    parser, guard = TextParser(), SampleGuard("t", LabelValueBudget(512))
    for scrape_no in range(4):
        text = fixture_page.replace(" 0.0\n", f" {scrape_no}.5\n")
        page = parser.parse(text)
        got = normalize(page, float(scrape_no), guard=guard, layout=page.layout)
        want = normalize(parse_text(text).samples, float(scrape_no))
        assert repr(got) == repr(want), scrape_no
    assert parser.last_path == "same_layout" and guard.plan is not None
    assert got.models["tiny"].kv_capacity_tokens is not None


def test_compiled_layout_is_not_kept_while_a_model_is_refused(fixture_page: str) -> None:
    from llmobs.pipeline import ModelBudget
    from llmobs.sources.normalize import LabelValueBudget, SampleGuard

    budget = ModelBudget(1)
    assert budget.admit("someone-else", "x")
    guard = SampleGuard("t", LabelValueBudget(512), budget)
    samples = parse_text(fixture_page).samples
    first = normalize(samples, 0.0, guard=guard, layout="L")
    assert guard.plan is None and first.dropped.get("model_limit")
    budget.release("x")  # the slot is freed: the next scrape admits the model
    second = normalize(samples, 1.0, guard=guard, layout="L")
    assert "tiny" in second.models and not second.dropped and guard.plan is not None
