"""The cardinality guard against hostile pages: 100k series, 10k model names, exploding label values.

Each test serves a hostile page next to (or inside) a healthy one through an in-memory transport and
checks three things: llmobs' own state and exported series stay within the configured caps, the excess is
counted in `llmobs_series_dropped_total{reason}`, and the healthy series keep their exact values.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.pipeline import CardinalityLimits, ModelBudget, Pipeline
from llmobs.serving.collector import FleetCollector
from llmobs.sources.normalize import LabelValueBudget, SampleGuard, normalize
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.sources.textformat import parse_text
from llmobs.state import StateHolder

HEALTHY = """\
vllm:num_requests_running{model_name="m"} 3
vllm:num_requests_waiting{model_name="m"} 2
vllm:kv_cache_usage_perc{model_name="m"} 0.5
vllm:request_success_total{finished_reason="stop",model_name="m"} %d
"""


def transport(pages: dict[str, Callable[[int], str]]) -> httpx.MockTransport:
    """Serves pages[host](n) where n counts that host's scrapes (so counters can grow)."""
    seen: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        seen[host] = seen.get(host, 0) + 1
        return httpx.Response(200, text=pages[host](seen[host]), headers={"content-type": "text/plain"})

    return httpx.MockTransport(handler)


def exported(holder: StateHolder) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Family name -> samples as Prometheus would read them off the exporter's /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def dropped(holder: StateHolder, endpoint: str) -> dict[str, float]:
    return {labels["reason"]: v for labels, v in exported(holder).get("llmobs_series_dropped_total", [])
            if labels["endpoint"] == endpoint}


def pipeline_for(pages: dict[str, Callable[[int], str]], limits: CardinalityLimits,
                 max_response_bytes: int = 4 * 1024 * 1024) -> tuple[Pipeline, StateHolder]:
    holder = StateHolder()
    targets = [Target(f"http://{host}/metrics", host) for host in pages]
    scraper = Scraper(transport=transport(pages), max_response_bytes=max_response_bytes)
    return Pipeline(StaticTargetSource(targets), scraper, holder, limits=limits), holder


async def test_page_with_100k_series_is_cut_at_the_cap_and_counted() -> None:
    """The healthy series come first on the page, as vLLM writes its own families first; the 100k junk
    series after them are cut at the cap, and the count says how many, every scrape."""
    junk = "".join(f'vllm:num_requests_running{{model_name="m",engine="{i}"}} 1\n' for i in range(100_000))
    pages = {"hostile": lambda n: HEALTHY % (10 * n) + junk, "good": lambda n: HEALTHY % (10 * n)}
    pipeline, holder = pipeline_for(pages, CardinalityLimits(max_series_per_target=1_000),
                                    max_response_bytes=16 * 1024 * 1024)
    for _ in range(2):
        state = await pipeline.run_cycle()
    health = {h.endpoint: h for h in state.targets}
    assert health["hostile"].up and health["good"].up
    assert dropped(holder, "hostile") == {"series_limit": 2 * (100_004 - 1_000)}
    assert dropped(holder, "good") == {}
    signals = {s.attribution.endpoint: s for s in state.signals}
    # 996 of the junk running=1 series were admitted (engines are summed), the healthy gauges are exact.
    assert signals["hostile"].requests_running == 3 + 996
    assert signals["good"].requests_running == 3
    assert signals["hostile"].requests_waiting == signals["good"].requests_waiting == 2


async def test_10k_model_names_fill_the_fleet_cap_first_come_and_slots_free_when_targets_go() -> None:
    many = "".join(f'vllm:num_requests_running{{model_name="model-{i}"}} 1\n' for i in range(10_000))
    pages = {"good": lambda n: HEALTHY % (10 * n), "hostile": lambda n: many}
    pipeline, holder = pipeline_for(pages, CardinalityLimits(max_models=50))
    for _ in range(2):
        state = await pipeline.run_cycle()
    models = {s.attribution.model for s in state.signals}
    assert len(models) == 50 and "m" in models  # the good target came first and kept its slot
    assert len(pipeline.models) == 50
    assert dropped(holder, "hostile") == {"model_limit": 2 * (10_000 - 49)}
    assert dropped(holder, "good") == {}
    assert len({labels["model"] for labels, _ in exported(holder)["llmobs_requests_running"]}) == 50
    [good] = [s for s in state.signals if s.attribution.endpoint == "good"]
    assert good.requests_running == 3 and good.request_rate > 0

    # The hostile target goes away: its 49 slots are freed, so a new model elsewhere is admitted.
    pages2 = {"good": lambda n: HEALTHY % (10 * n) + 'vllm:num_requests_running{model_name="late"} 7\n'}
    pipeline.source = StaticTargetSource([Target("http://good/metrics", "good")])
    pipeline.scraper = Scraper(transport=transport(pages2))
    for _ in range(2):
        state = await pipeline.run_cycle()
    assert {s.attribution.model for s in state.signals} == {"m", "late"}
    assert len(pipeline.models) == 2


async def test_exploding_label_values_are_capped_and_steady_values_keep_their_slots() -> None:
    """A target that writes a fresh finished_reason per scrape (say, a request id) cannot push out the
    values it had, and llmobs exports at most `max_label_values` reasons for it."""

    def page(n: int) -> str:
        fresh = "".join(f'vllm:request_success_total{{finished_reason="req-{n}-{i}",model_name="m"}} 1\n'
                        for i in range(5_000))
        return HEALTHY % (10 * n) + fresh

    pipeline, holder = pipeline_for({"hostile": page}, CardinalityLimits(max_label_values=100))
    for _ in range(3):
        state = await pipeline.run_cycle()
    [s] = state.signals
    assert "stop" in s.finished_rate_by_reason
    assert len(s.finished_rate_by_reason) <= 100
    # First scrape: "stop" + 99 fresh values admitted; every later fresh value is refused.
    assert dropped(holder, "hostile") == {"label_value_limit": (5_000 - 99) + 5_000 + 5_000}
    reasons = {labels["reason"] for labels, _ in exported(holder)["llmobs_requests_total"]}
    assert "stop" in reasons and len(reasons) <= 100
    # "stop" grows by 10 per 5 s-less cycle; its rate is positive and its total reset-adjusted and exact.
    assert s.totals["requests:stop"] == 30


def test_exploding_le_keeps_a_valid_coarser_histogram() -> None:
    """Beyond the `le` cap, the excess buckets go but +Inf stays, so the histogram is still usable and its
    count exact; the kept buckets are real cumulative counts at their bounds."""
    lines = [f'vllm:time_to_first_token_seconds_bucket{{le="{i / 1000:g}",model_name="m"}} {i}' for i in range(1, 3000)]
    lines += ['vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 3000',
              'vllm:time_to_first_token_seconds_count{model_name="m"} 3000',
              'vllm:time_to_first_token_seconds_sum{model_name="m"} 4500']
    guard = SampleGuard("http://x/metrics", LabelValueBudget(64), ModelBudget(10))
    scrape = normalize(parse_text("\n".join(lines) + "\n").samples, 0.0, guard=guard)
    h = scrape.models["m"].histograms["ttft"]
    assert len(h.bounds) == 64 + 1 and h.bounds[-1] == float("inf")
    assert h.count == 3000 and h.cumulative[-1] == 3000
    assert all(c == round(b * 1000) for b, c in zip(h.bounds[:-1], h.cumulative[:-1], strict=True))
    assert scrape.dropped == {"label_value_limit": 2999 - 64}


def test_a_real_vllm_page_is_untouched_by_the_default_limits() -> None:
    """The defaults must never bite a real page: vLLM 0.32's page loses nothing."""
    from pathlib import Path

    text = (Path(__file__).parent / "fixtures" / "vllm-0.32.0-cpu-metrics.txt").read_text()
    limits = CardinalityLimits()
    samples = parse_text(text).samples
    assert len(samples) < limits.max_series_per_target
    guarded = normalize(samples, 0.0, guard=SampleGuard("u", LabelValueBudget(limits.max_label_values),
                                                        ModelBudget(limits.max_models)))
    plain = normalize(samples, 0.0)
    assert guarded.dropped == {}
    assert guarded.models == plain.models
