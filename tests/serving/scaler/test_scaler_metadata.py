"""Trigger metadata parsing (table-driven) and metric names (a property test: always `[a-z0-9-]`, unique).

KEDA hands us the trigger's metadata verbatim; every mistake an operator can make must come back as
INVALID_ARGUMENT naming the key, because a silently defaulted key scales on the wrong number."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmobs.serving.scaler.catalogue import AGGREGATES, SIGNALS
from llmobs.serving.scaler.metadata import (
    MAX_METRIC_NAME,
    METRIC_NAME_RE,
    MetadataError,
    ScalerQuery,
    metric_name,
    parse_metadata,
    strip_index_prefix,
)

BASE = {"scalerAddress": "llmobs.monitoring:9401", "model": "llama-3.1-8b-instruct"}


def test_defaults_and_keda_passthrough_keys() -> None:
    q = parse_metadata(BASE)
    assert (q.model, q.signal, q.target, q.activation_target, q.aggregate) == (
        "llama-3.1-8b-instruct", "queue_depth", 4.0, 0.0, "sum")
    assert not q.has_selectors and q.horizon_seconds is None
    q = parse_metadata({**BASE, "signal": "kv_utilization", "target": "0.75", "activationTarget": "0.1",
                        "endpoint": "a, b", "namespace": "llm", "aggregate": "max"})
    assert (q.signal, q.target, q.activation_target, q.aggregate) == ("kv_utilization", 0.75, 0.1, "max")
    assert q.endpoints == frozenset({"a", "b"}) and q.namespaces == frozenset({"llm"}) and q.nodes is None
    q = parse_metadata({**BASE, "signal": "forecast_request_rate", "horizon": "15m", "bound": "point"})
    assert q.horizon_seconds == 900.0 and q.bound == "point"


@pytest.mark.parametrize(("meta", "key", "fragment"), [
    ({"scalerAddress": "x:1"}, "model", "required"),
    ({**BASE, "model": "  "}, "model", "required"),
    ({**BASE, "signal": "cpu"}, "signal", "unknown signal 'cpu'"),
    ({**BASE, "target": "lots"}, "target", "not a number"),
    ({**BASE, "target": "0"}, "target", "must be > 0"),
    ({**BASE, "target": "nan"}, "target", "not a finite number"),
    ({**BASE, "target": "inf"}, "target", "not a finite number"),
    ({**BASE, "activationTarget": "-1"}, "activationTarget", "must be >= 0"),
    ({**BASE, "activationtarget": "1"}, "activationtarget", "unknown key"),
    ({**BASE, "aggregate": "median"}, "aggregate", "not one of"),
    ({**BASE, "endpoint": " , "}, "endpoint", "at least one value"),
    ({**BASE, "signal": "forecast_request_rate", "horizon": "7m"}, "horizon", "not a precomputed horizon"),
    ({**BASE, "signal": "forecast_request_rate", "horizon": "soon"}, "horizon", "not a positive duration"),
    ({**BASE, "signal": "forecast_request_rate", "bound": "lower"}, "bound", "'upper' or 'point'"),
    ({**BASE, "signal": "desired_replicas", "endpoint": "a"}, "endpoint", "does not apply"),
    ({**BASE, "signal": "queue_depth", "horizon": "60"}, "horizon", "only applies"),
])
def test_bad_metadata_names_the_key(meta: dict[str, str], key: str, fragment: str) -> None:
    with pytest.raises(MetadataError) as e:
        parse_metadata(meta)
    assert e.value.key == key and fragment in str(e.value) and repr(key) in str(e.value)


def test_names_are_readable_when_they_can_be_and_strip_keda_prefix() -> None:
    assert metric_name(parse_metadata({"model": "qwen", "signal": "queue_depth"})) == "llmobs-queue-depth-qwen"
    dotted = metric_name(parse_metadata(BASE))
    assert dotted.startswith("llmobs-queue-depth-llama-3-1-8b-instruct-") and METRIC_NAME_RE.match(dotted)
    assert strip_index_prefix(f"s12-{dotted}") == dotted and strip_index_prefix(dotted) == dotted


selector = st.none() | st.frozensets(st.text(min_size=1, max_size=12), min_size=1, max_size=3)
queries = st.builds(
    ScalerQuery, model=st.text(min_size=1, max_size=300), signal=st.sampled_from(sorted(SIGNALS)),
    target=st.just(1.0), activation_target=st.just(0.0), aggregate=st.sampled_from(AGGREGATES),
    endpoints=selector, nodes=selector, namespaces=selector,
    horizon_seconds=st.none() | st.sampled_from([60.0, 300.0]), bound=st.sampled_from(["upper", "point"]))


@settings(max_examples=400, deadline=None)
@given(queries)
def test_generated_metric_names_are_always_valid(q: ScalerQuery) -> None:
    name = metric_name(q)
    assert METRIC_NAME_RE.match(name), name
    assert len(name) <= MAX_METRIC_NAME
    assert strip_index_prefix(f"s0-{name}") == name


@settings(max_examples=300, deadline=None)
@given(queries, queries)
def test_different_queries_get_different_names(a: ScalerQuery, b: ScalerQuery) -> None:
    def key(q: ScalerQuery) -> tuple:
        return (q.model, q.signal, q.aggregate, q.endpoints, q.nodes, q.namespaces, q.horizon_seconds, q.bound)

    if key(a) != key(b):
        assert metric_name(a) != metric_name(b)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=6))
def test_arbitrary_metadata_parses_or_names_a_key(meta: dict[str, str]) -> None:
    try:
        q = parse_metadata(meta)
    except MetadataError as e:
        assert e.key in meta or e.key in ("model",)
    else:
        assert METRIC_NAME_RE.match(q.metric_name)
