"""Pages that real vLLM releases served (tests/fixtures/vllm-<version>-cpu-metrics.txt, saved by
scripts/save_vllm_page.py) read through llmobs' public `parse_page`: whichever release wrote the page, the
signals a user relies on come out under the same canonical names and agree with the page's own numbers, read
by an independent parser (prometheus_client's). Families a release does not have are absent, never zero.

The 0.11.0 page was served with `--show-hidden-metrics-for-version=0.10`, so it carries both names of the
series vLLM renamed in 0.10-0.11 (`vllm:gpu_cache_usage_perc` beside `vllm:kv_cache_usage_perc`, ...): llmobs
must read one of each pair, not their sum, and the pre-rename names alone must give the same values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmobs import parse_page
from llmobs.sources.page import Page
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures"
PAGES = sorted(FIXTURES.glob("vllm-*-cpu-metrics.txt"))
OLD = FIXTURES / "vllm-0.11.0-cpu-metrics.txt"
NEWEST = FIXTURES / "vllm-0.32.0-cpu-metrics.txt"

# What a user reads off every release: gauges, counters and histograms, by canonical name.
GAUGES = ("kv_cache_usage", "requests_running", "requests_waiting")
COUNTERS = ("prompt_tokens", "generation_tokens", "request_success", "prefix_cache_queries", "prefix_cache_hits")
HISTOGRAMS = ("ttft", "itl", "e2e_latency", "queue_time", "prompt_length", "generation_length")
# Series vLLM renamed, as (the name before, the name after): the twins the 0.11.0 page carries.
RENAMED = {"kv_cache_usage": ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
           "prefix_cache_queries": ("vllm:gpu_prefix_cache_queries", "vllm:prefix_cache_queries"),
           "prefix_cache_hits": ("vllm:gpu_prefix_cache_hits", "vllm:prefix_cache_hits"),
           "itl": ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds")}


def version(page: Path) -> str:
    match = re.fullmatch(r"vllm-(.+)-cpu-metrics\.txt", page.name)
    assert match, page.name
    return match.group(1)


def read(text: str) -> Page:
    return parse_page(text, content_type="text/plain; version=0.0.4")


def raw(text: str) -> dict[str, float]:
    """Each sample of the page by `name{sorted labels}` with prometheus_client's own parser."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name + str(sorted(s.labels.items()))] = s.value
    return out


def raw_value(text: str, name: str) -> float:
    """The sum of a series' samples over its labels (one engine here), by prometheus_client."""
    values = [v for k, v in raw(text).items() if k.split("[", 1)[0] == name]
    assert values, f"{name} not on the page"
    return sum(values)


def test_the_newest_and_an_older_release_are_recorded() -> None:
    assert {version(p) for p in PAGES} >= {"0.32.0", "0.11.0"}
    readme = (FIXTURES / "README.md").read_text()
    assert all(p.name in readme for p in PAGES), "every page's provenance is in tests/fixtures/README.md"


@pytest.mark.parametrize("page", PAGES, ids=version)
def test_every_release_gives_the_signals_under_canonical_names(page: Path) -> None:
    text = page.read_text()
    parsed = read(text)
    assert parsed.skipped == {} and parsed.missing == ()
    (tiny,) = parsed.models.values()
    for name in GAUGES:
        assert math.isfinite(tiny.gauge(name)), name
    assert 0.0 <= tiny.gauge("kv_cache_usage") <= 1.0
    for name in COUNTERS:
        assert tiny.counter(name) is not None, name
    for name in HISTOGRAMS:
        assert tiny.histograms[name].count > 0, name
    # The numbers agree with each other as they do on any vLLM: every finished request has a TTFT, an
    # end-to-end latency and a length; the length histograms add up to the token counters.
    finished = tiny.counter("request_success")
    assert tiny.histograms["ttft"].count == tiny.histograms["e2e_latency"].count == finished
    assert tiny.histograms["generation_length"].sum == tiny.counter("generation_tokens")
    assert tiny.histograms["prompt_length"].sum == tiny.counter("prompt_tokens")
    assert 0 <= tiny.counter("prefix_cache_hits") <= tiny.counter("prefix_cache_queries")  # type: ignore[operator]


@pytest.mark.parametrize("page", PAGES, ids=version)
def test_canonical_values_are_the_pages_own(page: Path) -> None:
    text = page.read_text()
    (tiny,) = read(text).models.values()
    after = {canonical: names[1] for canonical, names in RENAMED.items()}
    assert tiny.gauge("kv_cache_usage") == raw_value(text, after["kv_cache_usage"])
    assert tiny.counter("prefix_cache_queries") == raw_value(text, after["prefix_cache_queries"] + "_total")
    assert tiny.counter("generation_tokens") == raw_value(text, "vllm:generation_tokens_total")
    assert tiny.histograms["itl"].count == raw_value(text, after["itl"] + "_count")


def test_renamed_twins_are_read_once_not_summed() -> None:
    text = OLD.read_text()
    for before, after in RENAMED.values():
        assert f"\n{before}" in text and f"\n{after}" in text, "the 0.11.0 page carries both names"
    (tiny,) = read(text).models.values()
    assert tiny.counter("prefix_cache_hits") == raw_value(text, "vllm:prefix_cache_hits_total") > 0
    assert tiny.counter("prefix_cache_queries") == raw_value(text, "vllm:gpu_prefix_cache_queries_total")
    assert tiny.histograms["itl"].count == raw_value(text, "vllm:time_per_output_token_seconds_count")


def test_pre_rename_names_alone_give_the_same_signals() -> None:
    """The 0.11.0 page with the post-rename series taken out: what a 0.10 engine exports under the old names."""
    text = OLD.read_text()
    after = tuple(names[1] for names in RENAMED.values())
    def names_a_renamed_series(line: str) -> bool:
        return any(re.match(rf"(# (HELP|TYPE) )?{re.escape(n)}[_{{ ]", line) for n in after)

    old_only = "\n".join(line for line in text.splitlines() if not names_a_renamed_series(line))
    assert len(old_only) < len(text) and not any(map(names_a_renamed_series, old_only.splitlines()))
    (both,) = read(text).models.values()
    (old,) = read(old_only + "\n").models.values()
    assert old.gauge("kv_cache_usage") == both.gauge("kv_cache_usage")
    assert old.counters["prefix_cache_queries"] == both.counters["prefix_cache_queries"]
    assert old.counters["prefix_cache_hits"] == both.counters["prefix_cache_hits"]
    assert old.histograms["itl"] == both.histograms["itl"]


def test_families_a_release_lacks_are_absent_not_zero() -> None:
    (old,) = read(OLD.read_text()).models.values()
    (new,) = read(NEWEST.read_text()).models.values()
    newer_only = set(new.gauges) - set(old.gauges)
    assert "requests_waiting_by_reason" in newer_only
    for name in newer_only:
        assert math.isnan(old.gauge(name)) and name not in old.gauges
    assert old.counter("requests_swapped") is None and "requests_swapped" not in old.gauges  # V0 only
