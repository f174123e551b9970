"""The cardinality guard against hostile pages: 100k series, 10k model names, exploding label values.

Each test serves a hostile page next to (or inside) a healthy one on loopback (tests/pageserver.py) and
checks three things: llmobs' own state and exported series stay within the configured caps, the excess is
counted in `llmobs_series_dropped_total{reason}`, and the healthy series keep their exact values.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.pipeline import CardinalityLimits, ModelBudget, Pipeline
from llmobs.serving.collector import FleetCollector
from llmobs.sources.normalize import LabelValueBudget, SampleGuard, normalize
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource
from llmobs.sources.textformat import parse_text
from llmobs.state import StateHolder
from tests.conftest import FIXTURE_PAGE
from tests.pageserver import PageServer

HEALTHY = """\
vllm:num_requests_running{model_name="m"} 3
vllm:num_requests_waiting{model_name="m"} 2
vllm:kv_cache_usage_perc{model_name="m"} 0.5
vllm:request_success_total{finished_reason="stop",model_name="m"} %d
"""


def healthy_page(model: str) -> Callable[[int], str]:
    return lambda n: (HEALTHY % (10 * n)).replace('model_name="m"', f'model_name="{model}"')


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


@contextlib.asynccontextmanager
async def pipeline_for(pages: dict[str, Callable[[int], str]], limits: CardinalityLimits,
                       max_response_bytes: int = 4 * 1024 * 1024) -> AsyncIterator[tuple[Pipeline, StateHolder]]:
    """A pipeline scraping `pages[name](n)` (n counts that name's scrapes, so counters can grow) on loopback."""
    holder = StateHolder()
    async with PageServer(pages) as server:
        scraper = Scraper(max_response_bytes=max_response_bytes)
        pipeline = Pipeline(StaticTargetSource(server.targets()), scraper, holder, limits=limits)
        pipeline.server = server  # type: ignore[attr-defined]  # for tests that change the targets
        try:
            yield pipeline, holder
        finally:
            await pipeline.scraper.aclose()


async def test_page_with_100k_series_is_cut_at_the_cap_and_counted() -> None:
    """The healthy series come first on the page, as vLLM writes its own families first; the 100k junk
    series after them are cut at the cap, and the count says how many, every scrape."""
    junk = "".join(f'vllm:num_requests_running{{model_name="m",engine="{i}"}} 1\n' for i in range(100_000))
    pages = {"hostile": lambda n: HEALTHY % (10 * n) + junk, "good": lambda n: HEALTHY % (10 * n)}
    async with pipeline_for(pages, CardinalityLimits(max_series_per_target=1_000),
                            max_response_bytes=16 * 1024 * 1024) as (pipeline, holder):
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
    """The fleet-wide cap alone (the per-target cap raised out of the way)."""
    many = "".join(f'vllm:num_requests_running{{model_name="model-{i}"}} 1\n' for i in range(10_000))
    pages = {"good": lambda n: HEALTHY % (10 * n), "hostile": lambda n: many}
    limits = CardinalityLimits(max_models=50, max_models_per_target=20_000)
    async with pipeline_for(pages, limits) as (pipeline, holder):
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
        server = pipeline.server  # type: ignore[attr-defined]
        server.pages["good"] = lambda n: HEALTHY % (10 * n) + 'vllm:num_requests_running{model_name="late"} 7\n'
        pipeline.source = StaticTargetSource([server.target("good")])
        for _ in range(2):
            state = await pipeline.run_cycle()
    assert {s.attribution.model for s in state.signals} == {"m", "late"}
    assert len(pipeline.models) == 2


async def test_a_target_over_the_per_target_model_cap_cannot_take_the_fleet_budget() -> None:
    """A target exposing far more models than the fleet budget, scraped before healthy ones (discovery's
    order is arbitrary): it is down with error kind `model_limit`, holds no slot of the fleet budget, and
    the targets after it are up with their own models."""
    many = "".join(f'vllm:num_requests_running{{model_name="model-{i}"}} 1\n' for i in range(5_000))
    pages = {"hostile": lambda n: many, **{f"good{i}": healthy_page(f"m{i}") for i in range(3)}}
    async with pipeline_for(pages, CardinalityLimits(max_models=100, max_models_per_target=64)) as (
            pipeline, holder):
        for _ in range(2):
            state = await pipeline.run_cycle()
    health = {h.endpoint: h for h in state.targets}
    assert not health["hostile"].up and health["hostile"].last_error_kind == "model_limit"
    assert health["hostile"].errors_by_kind == {"model_limit": 2}
    assert "max_models_per_target" in health["hostile"].last_error
    assert all(health[f"good{i}"].up and not health[f"good{i}"].errors_by_kind for i in range(3))
    assert {s.attribution.model for s in state.signals} == {"m0", "m1", "m2"}
    assert len(pipeline.models) == 3
    errors = {labels["endpoint"]: (labels["kind"], v) for labels, v in exported(holder)["llmobs_scrape_errors_total"]}
    assert errors == {"hostile": ("model_limit", 2.0)}


async def test_a_full_fleet_budget_is_named_as_the_error_not_parse() -> None:
    """A healthy target whose models cannot be admitted because the fleet budget is full is down with error
    kind `model_limit` (the budget), not `parse` ("page has no vLLM series")."""
    pages = {f"good{i}": healthy_page(f"m{i}") for i in range(3)}
    async with pipeline_for(pages, CardinalityLimits(max_models=2)) as (pipeline, _):
        state = await pipeline.run_cycle()
    health = {h.endpoint: h for h in state.targets}
    assert health["good0"].up and health["good1"].up
    assert not health["good2"].up and health["good2"].last_error_kind == "model_limit"
    assert "signals.max_models" in health["good2"].last_error


async def test_exploding_label_values_are_capped_and_steady_values_keep_their_slots() -> None:
    """A target that writes a fresh finished_reason per scrape (say, a request id) cannot push out the
    values it had, and llmobs exports at most `max_label_values` reasons for it."""

    def page(n: int) -> str:
        fresh = "".join(f'vllm:request_success_total{{finished_reason="req-{n}-{i}",model_name="m"}} 1\n'
                        for i in range(5_000))
        return HEALTHY % (10 * n) + fresh

    async with pipeline_for({"hostile": page}, CardinalityLimits(max_label_values=100)) as (pipeline, holder):
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

    text = (FIXTURE_PAGE).read_text()
    limits = CardinalityLimits()
    samples = parse_text(text).samples
    assert len(samples) < limits.max_series_per_target
    guarded = normalize(samples, 0.0, guard=SampleGuard("u", LabelValueBudget(limits.max_label_values),
                                                        ModelBudget(limits.max_models)))
    plain = normalize(samples, 0.0)
    assert guarded.dropped == {}
    assert guarded.models == plain.models
