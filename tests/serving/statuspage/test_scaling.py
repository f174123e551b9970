"""The status page's autoscaling columns beyond the scrape: door demand, the HPA's current replicas, Ready pods,
and the bottleneck label, each from its own source and left alone when that source is absent."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

from llmobs.serving.statuspage.history import ModelExtras
from llmobs.serving.statuspage.scaling import ChainReading, bottleneck_label, scaling_extras
from llmobs.signals.types import ModelEndpointSignals, Saturation
from tests.factories import make_door_signals, make_signals, make_state


def _chain(model: str, current: int | None) -> SimpleNamespace:
    return SimpleNamespace(model=model, hpa=None if current is None else SimpleNamespace(desired=9, current=current))


def test_door_hpa_and_ready_fill_the_model_history_over_the_forecast_columns() -> None:
    state = make_state(doors=(make_door_signals("a", "router", request_rate=3.0),
                              make_door_signals("a", "litellm", "litellm", request_rate=1.5)), time=10.0)
    calls = []

    def chains() -> list[SimpleNamespace]:
        calls.append(1)
        return [_chain("a", 2), _chain("a", 3), _chain("b", None)]

    extras = scaling_extras(lambda: state, lambda m: ModelExtras(forecast=5.0, desired=4.0),
                            ChainReading(chains, lambda: {"a": SimpleNamespace(ready=2)}))
    a, b = extras("a"), extras("b")
    assert (a.door, a.forecast, a.desired, a.current, a.ready) == (4.5, 5.0, 4.0, 3.0, 2.0)
    assert (b.door, b.current, b.ready, b.desired) == (None, None, None, 4.0)  # no door, no HPA yet, no pods
    assert len(calls) == 1  # the chain is read once per published state, not per model


def test_without_doors_or_a_chain_watch_the_base_is_untouched() -> None:
    base = ModelExtras(forecast=1.0, upper=2.0, desired=3.0)
    extras = scaling_extras(lambda: make_state(time=1.0), lambda m: base, ChainReading())
    assert extras("m") == base


def test_bottleneck_label_names_the_limit_or_says_why_not() -> None:
    def with_sat(sat: Saturation) -> ModelEndpointSignals:
        return dataclasses.replace(make_signals(), saturation=sat)

    assert bottleneck_label(make_signals()) is None
    assert bottleneck_label(with_sat(Saturation({"kv": 0.87, "prefill": 0.1, "batch": 0.2}, "kv", 10.0))) == "kv 87 %"
    unknown = Saturation({"kv": 0.5}, "unknown", None, ("max_num_seqs_unknown",))
    assert math.isnan(unknown.binding_ratio)
    assert bottleneck_label(with_sat(unknown)) == "unknown: max_num_seqs_unknown"  # says what to configure
    assert bottleneck_label(with_sat(Saturation({"kv": 0.1, "prefill": 0.1, "batch": 0.2}, "none", 9.0))) == "none"
