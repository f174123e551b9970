"""Saturation as users see it: the /metrics families, the KEDA `saturation` signal and the status page's bottleneck
column. An unknown bottleneck is exported as `unknown` with its reasons, never as a ratio or a scaling value."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.serving.collector import FleetCollector
from llmobs.serving.scaler.cache import ScalerError, answer, build_snapshot
from llmobs.serving.scaler.metadata import parse_metadata
from llmobs.serving.snapshot import state_to_json
from llmobs.serving.statuspage import StatusPage, StatusSources
from llmobs.serving.statuspage.scaling import bottleneck_label
from llmobs.signals.types import ModelEndpointSignals, Saturation
from llmobs.state import StateHolder
from tests.factories import make_signals, make_state, scraped_target

NOW = 1_800_000_000.0
KV_BOUND = Saturation({"kv": 0.92, "prefill": 0.1, "batch": 0.5}, "kv", 87.0)
BATCH_BOUND = Saturation({"kv": 0.2, "prefill": 0.3, "batch": 1.0}, "batch", 0.0)
UNKNOWN = Saturation({"kv": 0.95}, "unknown", None, ("max_num_seqs_unknown", "max_num_batched_tokens_unknown"))


def endpoint(name: str, saturation: Saturation | None, model: str = "llama") -> ModelEndpointSignals:
    return make_signals(model, name, node="n1", saturation=saturation)


def samples(*signals: ModelEndpointSignals) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Family name → {sorted labels without the signal labels' model/node/gpu_model: value}."""
    holder = StateHolder()
    holder.publish(make_state(*signals, time=NOW))
    registry = CollectorRegistry()
    registry.register(FleetCollector(holder))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model", "node", "gpu_model")))
            out.setdefault(s.name, {})[labels] = s.value
    return out


def test_known_saturation_exports_every_ratio_the_binding_one_and_spare_capacity() -> None:
    got = samples(endpoint("a", KV_BOUND))
    assert got["llmobs_saturation_ratio"] == {
        (("endpoint", "a"), ("resource", "batch")): 0.5, (("endpoint", "a"), ("resource", "kv")): 0.92,
        (("endpoint", "a"), ("resource", "prefill")): 0.1}
    assert got["llmobs_bottleneck"] == {(("endpoint", "a"), ("resource", "kv")): 1.0}
    assert got["llmobs_saturation_binding_ratio"] == {(("endpoint", "a"),): 0.92}
    assert got["llmobs_spare_capacity_tokens_rate"] == {(("endpoint", "a"),): 87.0}
    assert "llmobs_saturation_unknown" not in got


def test_unknown_saturation_exports_the_known_ratio_and_why_but_no_binding_ratio() -> None:
    got = samples(endpoint("a", UNKNOWN), endpoint("b", None))
    assert got["llmobs_saturation_ratio"] == {(("endpoint", "a"), ("resource", "kv")): 0.95}
    assert got["llmobs_bottleneck"] == {(("endpoint", "a"), ("resource", "unknown")): 1.0}
    assert got["llmobs_saturation_unknown"] == {
        (("endpoint", "a"), ("reason", "max_num_batched_tokens_unknown")): 1.0,
        (("endpoint", "a"), ("reason", "max_num_seqs_unknown")): 1.0}
    assert "llmobs_saturation_binding_ratio" not in got and "llmobs_spare_capacity_tokens_rate" not in got


def scaler_value(*signals: ModelEndpointSignals, **meta: str) -> float:
    state = make_state(*signals, targets=tuple(scraped_target(s.attribution.endpoint, NOW) for s in signals),
                       time=NOW)
    return answer(build_snapshot(state, stale_after=15, now=NOW), parse_metadata({"model": "llama", **meta}), NOW)


def test_keda_saturation_is_the_busiest_endpoints_binding_ratio() -> None:
    assert scaler_value(endpoint("a", KV_BOUND), endpoint("b", BATCH_BOUND), signal="saturation") == 1.0
    assert scaler_value(endpoint("a", KV_BOUND), signal="saturation") == pytest.approx(0.92)
    assert scaler_value(endpoint("a", KV_BOUND), endpoint("b", BATCH_BOUND), signal="saturation",
                        aggregate="mean") == pytest.approx(0.96)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_keda_saturation_with_an_unknown_endpoint_is_unavailable_in_either_order(order: tuple[int, int]) -> None:
    """max() over [NaN, x] depends on the order in Python; an unknown endpoint must make the answer unknown."""
    pair = [endpoint("a", KV_BOUND), endpoint("b", UNKNOWN)]
    with pytest.raises(ScalerError, match="not a finite number"):
        scaler_value(*(pair[i] for i in order), signal="saturation")
    with pytest.raises(ScalerError, match="not a finite number"):
        scaler_value(endpoint("a", None), signal="saturation")  # a tracker that did not compute it


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_max_of_any_signal_with_a_nan_endpoint_is_unavailable(order: tuple[int, int]) -> None:
    pair = [make_signals("llama", "a", kv_cache_utilization=0.4),
            make_signals("llama", "b", kv_cache_utilization=math.nan)]
    with pytest.raises(ScalerError, match="not a finite number"):
        scaler_value(*(pair[i] for i in order), signal="kv_utilization", aggregate="max")


def test_signals_json_carries_the_saturation_with_null_for_unknown_numbers() -> None:
    holder = StateHolder()
    holder.publish(make_state(endpoint("busy", KV_BOUND), endpoint("blind", UNKNOWN), time=NOW))
    rows = {r["endpoint"]: r["saturation"] for r in state_to_json(holder.current)["signals"]}
    assert rows["busy"] == {"bottleneck": "kv", "ratios": {"kv": 0.92, "prefill": 0.1, "batch": 0.5},
                            "binding_ratio": 0.92, "spare_tokens_per_second": 87.0, "unknown": []}
    assert rows["blind"]["bottleneck"] == "unknown" and rows["blind"]["binding_ratio"] is None
    assert rows["blind"]["unknown"] == ["max_num_seqs_unknown", "max_num_batched_tokens_unknown"]


def test_status_page_names_the_bottleneck_or_says_unknown_with_why() -> None:
    holder = StateHolder()
    holder.publish(make_state(endpoint("busy", KV_BOUND), endpoint("blind", UNKNOWN),
                              endpoint("old", None, model="<b>m</b>"), time=NOW))
    page, _ = StatusPage(holder, StatusSources(bottleneck_of=bottleneck_label)).render()
    assert "<th>bottleneck</th>" in page
    assert "<td class='bottleneck'>kv 92 %</td>" in page
    assert "<td class='bottleneck'>unknown: max_num_seqs_unknown, max_num_batched_tokens_unknown</td>" in page
    assert "&lt;b&gt;m&lt;/b&gt;" in page and "<b>m</b>" not in page
