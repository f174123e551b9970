"""The precomputed snapshot and `answer`: values, selectors, staleness, forecasts, and never NaN/Inf.

Table-driven over a hand-built `FleetState`, so every rule (what is summed, when data is stale, what a
missing forecast does) is checked exactly, without timing."""

from __future__ import annotations

import asyncio
import math

import pytest

from llmobs.serving.scaler.cache import ScalerError, SignalCache, answer, build_snapshot
from llmobs.serving.scaler.metadata import parse_metadata
from llmobs.signals.types import ModelEndpointSignals
from llmobs.state import FleetState
from tests.factories import make_signals, make_state, scraped_target

NOW = 1_800_000_000.0


def load(model: str, endpoint: str, waiting: float, running: float, kv: float, rate: float,
         node: str) -> ModelEndpointSignals:
    """An endpoint under load, with the token rates a fixed multiple of the request rate."""
    return make_signals(model, endpoint, node=node, requests_waiting=waiting, requests_running=running,
                        kv_cache_utilization=kv, kv_cache_utilization_max=kv, request_rate=rate,
                        prompt_tokens_rate=rate * 100, generation_tokens_rate=rate * 10)


def fleet_state(time: float = NOW) -> FleetState:
    return make_state(
        load("llama", "llama-0", waiting=3, running=8, kv=0.9, rate=2.0, node="n1"),
        load("llama", "llama-1", waiting=1, running=4, kv=0.5, rate=1.0, node="n2"),
        load("qwen", "qwen-0", waiting=0, running=0, kv=0.0, rate=0.0, node="n3"),
        targets=(scraped_target("llama-0", time, namespace="prod"),
                 scraped_target("llama-1", time, namespace="staging"), scraped_target("qwen-0", time)), time=time)


class Forecasts:
    """A tiny ForecastProvider: fixed answers per model, None for the rest."""

    def __init__(self, rates: dict[str, tuple[float, float]], replicas: dict[str, int]) -> None:
        self.rates, self.replicas = rates, replicas

    def forecast(self, model: str, horizon_s: float) -> tuple[float, float] | None:
        r = self.rates.get(model)
        return None if r is None else (r[0] * horizon_s / 60, r[1] * horizon_s / 60)

    def desired_replicas(self, model: str) -> int | None:
        return self.replicas.get(model)


def value(snapshot, now: float = NOW, **meta: str) -> float:  # type: ignore[no-untyped-def]
    return answer(snapshot, parse_metadata(meta), now)


@pytest.mark.parametrize(("meta", "expected"), [
    ({"model": "llama"}, 4.0),
    ({"model": "llama", "signal": "requests_running"}, 12.0),
    ({"model": "llama", "signal": "kv_utilization"}, 0.7),
    ({"model": "llama", "signal": "kv_utilization", "aggregate": "max"}, 0.9),
    ({"model": "llama", "signal": "request_rate"}, 3.0),
    ({"model": "llama", "signal": "prompt_tokens_rate"}, 300.0),
    ({"model": "llama", "endpoint": "llama-1"}, 1.0),
    ({"model": "llama", "node": "n1,n9"}, 3.0),
    ({"model": "llama", "namespace": "staging", "signal": "kv_utilization"}, 0.5),
    ({"model": "llama", "namespace": "nowhere"}, 0.0),
    ({"model": "qwen"}, 0.0),
    ({"model": "idle-model"}, 0.0),
    ({"model": "llama", "signal": "forecast_request_rate", "horizon": "60"}, 6.0),
    ({"model": "llama", "signal": "forecast_request_rate", "horizon": "5m", "bound": "point"}, 20.0),
    ({"model": "llama", "signal": "desired_replicas"}, 3.0),
])
def test_values(meta: dict[str, str], expected: float) -> None:
    snap = build_snapshot(fleet_state(), stale_after=15, known_models=["idle-model"],
                          forecast=Forecasts({"llama": (4.0, 6.0)}, {"llama": 3}), horizons=(60.0, 300.0), now=NOW)
    assert value(snap, **meta) == pytest.approx(expected)


def test_unknown_model_is_not_found_and_missing_forecast_unavailable() -> None:
    snap = build_snapshot(fleet_state(), stale_after=15, forecast=Forecasts({}, {}), horizons=(300.0,), now=NOW)
    with pytest.raises(ScalerError) as e:
        value(snap, model="mistral")
    assert e.value.code == "NOT_FOUND" and "llama" in e.value.message
    for signal in ("forecast_request_rate", "desired_replicas"):
        with pytest.raises(ScalerError) as e:
            value(snap, model="llama", signal=signal)
        assert e.value.code == "UNAVAILABLE"
    no_provider = build_snapshot(fleet_state(), stale_after=15, now=NOW)
    with pytest.raises(ScalerError, match="no replica recommendation"):
        value(no_provider, model="llama", signal="desired_replicas")


def test_a_failing_or_nonsense_forecaster_never_reaches_keda() -> None:
    class Broken:
        def forecast(self, model: str, horizon_s: float) -> tuple[float, float] | None:
            return (math.nan, math.inf) if model == "llama" else (-5.0, -1.0)

        def desired_replicas(self, model: str) -> int | None:
            if model == "qwen":
                return math.nan  # type: ignore[return-value]
            raise RuntimeError("model not fitted")

    snap = build_snapshot(fleet_state(), stale_after=15, forecast=Broken(), horizons=(300.0,), now=NOW)
    with pytest.raises(ScalerError, match="no forecast"):
        value(snap, model="llama", signal="forecast_request_rate")
    assert value(snap, model="qwen", signal="forecast_request_rate") == 0.0
    for model in ("llama", "qwen"):
        with pytest.raises(ScalerError):
            value(snap, model=model, signal="desired_replicas")
    assert value(snap, model="llama") == 4.0  # live signals unaffected


def test_stale_state_is_unavailable_never_an_old_value() -> None:
    snap = build_snapshot(fleet_state(), stale_after=15, now=NOW)
    assert value(snap, NOW + 15, model="llama") == 4.0
    with pytest.raises(ScalerError) as e:
        value(snap, NOW + 16, model="llama")
    assert e.value.code == "UNAVAILABLE" and "stuck" in e.value.message
    not_ready = build_snapshot(FleetState(time=NOW), stale_after=15, now=NOW)
    with pytest.raises(ScalerError, match="no scrape cycle"):
        value(not_ready, model="llama")


def test_endpoints_without_a_recent_scrape_drop_out_and_all_down_is_unavailable() -> None:
    state = make_state(*fleet_state().signals, time=NOW, targets=(
        scraped_target("llama-0", NOW - 100), scraped_target("llama-1", NOW), scraped_target("qwen-0", NOW - 100)))
    snap = build_snapshot(state, stale_after=15, now=NOW)
    assert value(snap, model="llama") == 1.0  # llama-0's last queue (3) is 100 s old: not counted
    with pytest.raises(ScalerError) as e:
        value(snap, model="qwen")
    assert e.value.code == "UNAVAILABLE"
    with pytest.raises(ScalerError):
        value(snap, model="llama", endpoint="llama-0")


def test_nan_and_negative_readings_are_never_answered() -> None:
    state = make_state(make_signals("m", "m-0", requests_waiting=-2, kv_cache_utilization=math.nan),
                       targets=(scraped_target("m-0", NOW),), time=NOW)
    snap = build_snapshot(state, stale_after=15, now=NOW)
    assert value(snap, model="m") == 0.0
    with pytest.raises(ScalerError, match="not a finite number"):
        value(snap, model="m", signal="kv_utilization")


async def test_publish_wakes_waiters_and_versions_increase() -> None:
    cache = SignalCache()
    v0 = cache.snapshot.version
    waiter = asyncio.create_task(cache.wait_newer(v0))
    await asyncio.sleep(0)
    assert not waiter.done()
    published = await asyncio.to_thread(cache.publish, build_snapshot(fleet_state(), stale_after=15, now=NOW))
    got = await asyncio.wait_for(waiter, 2)
    assert got is published and got.version == v0 + 1
    assert (await cache.wait_newer(v0)) is published  # already newer: no wait
