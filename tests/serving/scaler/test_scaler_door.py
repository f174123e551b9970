"""Scale from zero: a model with no replica has no vLLM page, so only its door can wake it. A door page that
shows a request for the model makes the scaler's door signals (and so IsActive) non-zero on that same scrape;
door series join the replica signals under one `model` label; and door data has its own staleness."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.pipeline import CardinalityLimits, Pipeline
from llmobs.serving.collector import FleetCollector
from llmobs.serving.scaler.cache import ScalerError, answer, build_snapshot
from llmobs.serving.scaler.metadata import MetadataError, parse_metadata
from llmobs.serving.snapshot import state_to_json
from llmobs.sources.door import DoorTarget
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource
from llmobs.state import StateHolder
from tests.factories import make_door_health, make_door_signals, make_signals, make_state, scraped_target
from tests.pageserver import PageServer, Reply

NOW = 1_800_000_000.0
ROUTER_IDLE = "# TYPE vllm_router_active_workers gauge\nvllm_router_active_workers 0\n"
LITELLM_IDLE = "# TYPE python_gc_collections_total counter\npython_gc_collections_total{generation=\"0\"} 5.0\n"
LITELLM_ONE = LITELLM_IDLE + (
    "# TYPE litellm_proxy_total_requests_metric_total counter\n"
    'litellm_proxy_total_requests_metric_total{requested_model="tiny-public",status_code="500"} 1.0\n')
ROUTER_REFUSED = ROUTER_IDLE + (
    "# TYPE vllm_router_retries_exhausted_total counter\n"
    'vllm_router_retries_exhausted_total{route="/v1/completions"} 1\n'
    "# TYPE vllm_router_request_errors_total counter\n"
    'vllm_router_request_errors_total{route="/v1/completions",error_type="no_available_workers"} 5\n')


def active(snapshot, meta: dict[str, str], now: float) -> bool:  # type: ignore[no-untyped-def]
    q = parse_metadata(meta)
    return answer(snapshot, q, now) > q.activation_target


async def test_the_first_refused_request_at_a_router_activates_a_model_with_no_replica() -> None:
    pages = {"router": lambda n: ROUTER_IDLE if n == 1 else ROUTER_REFUSED, "junk": lambda n: Reply("<html>"),
             "litellm": lambda n: LITELLM_IDLE if n == 1 else LITELLM_ONE}
    async with PageServer(pages) as server:
        doors = [DoorTarget(server.url("router"), "router", "vllm-router", "tiny"),
                 DoorTarget(server.url("junk"), "junk", "litellm"),
                 DoorTarget(server.url("litellm"), "litellm", "litellm", model_map={"tiny-public": "tiny"})]
        holder = StateHolder()
        scraper = Scraper(timeout_seconds=5)
        pipeline = Pipeline(StaticTargetSource([]), scraper, holder, window_seconds=30, doors=doors)
        try:
            first = await pipeline.run_cycle()
            second = await pipeline.run_cycle()
        finally:
            await scraper.aclose()
    assert first.doors == () and second.signals == ()  # no replica anywhere
    router, litellm = second.doors  # an idle LiteLLM (no series of its own yet) counts its first request at once
    assert (router.model, router.request_rate > 0, router.rejected_rate > 0) == ("tiny", True, True)
    assert (litellm.model, litellm.request_rate > 0) == ("tiny", True)
    meta = {"model": "tiny", "signal": "door_request_rate", "activationTarget": "0"}
    assert not active(build_snapshot(first, stale_after=60, known_models=["tiny"], now=first.time), meta, first.time)
    assert active(build_snapshot(second, stale_after=60, now=second.time), meta, second.time)
    junk = {h.door: h for h in second.door_health}["junk"]
    assert not junk.up and junk.problems == {"parse": 2}  # an HTML page: counted, the loop goes on
    assert all(h.up for h in first.door_health if h.door != "junk")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    text = generate_latest(registry).decode()
    assert 'llmobs_door_request_rate{door="router",door_kind="vllm-router",model="tiny"}' in text
    assert 'llmobs_door_up{door="junk",door_kind="litellm"} 0.0' in text


def test_door_and_replica_signals_meet_under_one_model() -> None:
    state = make_state(make_signals("tiny", "vllm-0", requests_waiting=2.0), targets=(scraped_target("vllm-0", NOW),),
                       doors=(make_door_signals("tiny", "router", request_rate=3.0),
                              make_door_signals("tiny", "litellm", "litellm", request_rate=1.0, pending=2.0)),
                       door_health=(make_door_health("router", last_success_time=NOW),
                                    make_door_health("litellm", "litellm", last_success_time=NOW)), time=NOW)
    assert [d.door for d in state.doors_for_model("tiny")] == ["router", "litellm"]
    assert state.door_models() == state.models() == ["tiny"]
    snap = build_snapshot(state, stale_after=30, now=NOW)
    assert answer(snap, parse_metadata({"model": "tiny", "signal": "door_request_rate"}), NOW) == 4.0
    assert answer(snap, parse_metadata({"model": "tiny", "signal": "door_pending"}), NOW) == 2.0
    assert answer(snap, parse_metadata({"model": "tiny", "signal": "queue_depth"}), NOW) == 2.0


def test_a_model_no_door_has_shown_reads_zero_and_stale_doors_are_unavailable() -> None:
    state = make_state(doors=(make_door_signals("tiny", request_rate=1.0),),
                       door_health=(make_door_health(last_success_time=NOW - 100),), time=NOW)
    snap = build_snapshot(state, stale_after=30, known_models=["other"], now=NOW)
    assert answer(snap, parse_metadata({"model": "other", "signal": "door_request_rate"}), NOW) == 0.0
    with pytest.raises(ScalerError) as e:
        answer(snap, parse_metadata({"model": "tiny", "signal": "door_request_rate"}), NOW)
    assert e.value.code == "UNAVAILABLE"


def test_a_door_signal_takes_no_endpoint_selector() -> None:
    with pytest.raises(MetadataError, match="door signal"):
        parse_metadata({"model": "tiny", "signal": "door_pending", "endpoint": "vllm-0"})


def test_the_json_api_shows_each_door_beside_the_replicas() -> None:
    state = make_state(doors=(make_door_signals("tiny", "litellm", "litellm", request_rate=2.0, pending=None),),
                       door_health=(make_door_health("litellm", "litellm", problems={"timeout": 1}),), time=NOW)
    body = json.loads(json.dumps(state_to_json(state), allow_nan=False))
    [door] = body["doors"]
    assert (door["model"], door["door"], door["door_kind"], door["request_rate"], door["pending"]) == (
        "tiny", "litellm", "litellm", 2.0, None)
    assert body["door_targets"] == [{"door": "litellm", "door_kind": "litellm", "url": "http://litellm:29000/metrics",
                                     "up": True, "last_success_time": 0.0, "problems": {"timeout": 1}}]


async def test_a_door_naming_more_models_than_allowed_is_not_used_and_says_why() -> None:
    page = "".join(f'inference_objective_request_total{{model_name="m{i}",target_model_name="m{i}"}} 1\n'
                   for i in range(3))
    async with PageServer({"epp": lambda n: page}) as server:
        scraper = Scraper(timeout_seconds=5)
        pipeline = Pipeline(StaticTargetSource([]), scraper, StateHolder(), limits=CardinalityLimits(
            max_models_per_target=2), doors=[DoorTarget(server.url("epp"), "epp", "gie-epp")])
        try:
            state = await pipeline.run_cycle()
        finally:
            await scraper.aclose()
    [health] = state.door_health
    assert state.doors == () and not health.up and health.problems == {"model_limit": 1}
