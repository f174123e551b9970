"""Door pages read per model: the real vLLM router and LiteLLM pages captured in front of real vLLM, and the
endpoint picker's documented names; and the bad input a door page can hold, counted and never raised."""

from __future__ import annotations

import math

import pytest

from llmobs.sources.door import DOOR_KINDS, DROP_MISSING_MODEL, read_door
from llmobs.sources.textformat import parse_text
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures"


def fixture(name: str, kind: str, model: str | None = None):  # type: ignore[no-untyped-def]
    return read_door(kind, parse_text((FIXTURES / name).read_text()).samples, model)


def test_vllm_router_page_counts_served_and_refused_requests_under_the_targets_model() -> None:
    """Captured: 3 requests refused with no worker (503 after 5 attempts each), then 3 served after a worker was
    added. The router writes no model label, so everything is the target's `model`."""
    reading = fixture("vllm-router-0.1.17-metrics.txt", "vllm-router", "tiny")
    assert reading.recognised and not reading.dropped
    [(model, r)] = reading.models.items()
    assert model == "tiny"
    assert (r.arrivals, r.rejected, r.pending) == (6.0, 3.0, None)  # round robin exports no running gauge
    assert r.latency is not None and r.latency.count == 3.0 and math.isinf(r.latency.bounds[-1])


def test_vllm_router_page_without_a_target_model_is_counted_not_guessed() -> None:
    reading = fixture("vllm-router-0.1.17-metrics.txt", "vllm-router")
    assert reading.models == {} and reading.dropped[DROP_MISSING_MODEL] > 0


def test_litellm_page_reads_per_requested_model_and_counts_only_backend_failures_as_refusals() -> None:
    """Captured: 4 completions served, a chat request vLLM refused (400), a request for an unknown model (written
    `other` by the proxy), then one with vLLM stopped (500, connection error)."""
    reading = fixture("litellm-1.108.7-proxy-metrics.txt", "litellm")
    public = reading.models["tiny-public"]
    assert (public.arrivals, public.rejected, public.pending) == (6.0, 1.0, None)
    assert public.latency is not None and public.latency.count == 4.0
    assert reading.models["other"].arrivals == 1.0 and reading.models["other"].rejected is None


def test_gie_epp_documented_names_read_per_model_name() -> None:
    reading = fixture("gie-epp-metrics-from-docs.txt", "gie-epp")
    food = reading.models["food-review"]
    assert (food.arrivals, food.rejected, food.pending) == (150.0, 4.0, 5.0)  # summed over target models, flows
    assert food.latency is not None and food.latency.cumulative == (50.0, 115.0, 146.0, 146.0)
    assert reading.models["base-model"].pending == 1.0 and reading.models["base-model"].latency is None


@pytest.mark.parametrize("kind", sorted(DOOR_KINDS))
def test_a_page_of_another_kind_is_not_recognised(kind: str) -> None:
    vllm_page = parse_text((FIXTURES / "vllm-0.32.0-cpu-metrics.txt").read_text()).samples
    reading = read_door(kind, vllm_page, "tiny")
    assert not reading.recognised and reading.models == {}


def test_bad_samples_are_counted_and_the_rest_is_used() -> None:
    page = parse_text(
        'litellm_proxy_total_requests_metric_total{requested_model="a",status_code="200"} 5\n'
        'litellm_proxy_total_requests_metric_total{status_code="200"} 2\n'  # no model label
        'litellm_proxy_total_requests_metric_total{requested_model="b"} NaN\n'
        'litellm_proxy_total_requests_metric_total{requested_model="c"} -1\n'
        'litellm_request_total_latency_metric_bucket{requested_model="a",le="oops"} 1\n'
        'litellm_request_total_latency_metric_bucket{requested_model="a"} 1\n'
        'this is not a sample line\n')
    reading = read_door("litellm", page.samples)
    assert reading.models["a"].arrivals == 5.0 and reading.models["a"].latency is None  # no +Inf bucket
    assert dict(reading.dropped) == {"missing_model": 1, "bad_value": 2, "bad_bucket": 2}
    assert page.skipped  # the parser's own count


def test_an_unknown_door_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown door kind 'nginx'"):
        read_door("nginx", [])
