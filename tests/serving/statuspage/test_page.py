"""The page over HTTP: a strict CSP, a live fragment, one render per published state; KEDA answers adapter."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry

from llmobs.serving.app import create_app
from llmobs.serving.scaler.cache import SignalCache, build_snapshot
from llmobs.serving.scaler.triggers import TriggerRegistry
from llmobs.serving.statuspage import FRAGMENT_PATH, SignalHistory, StatusPage
from llmobs.serving.statuspage.sources import trigger_answers
from llmobs.state import StateHolder
from tests.factories import make_signals, make_state, scraped_target


async def test_page_and_fragment_are_served_with_a_policy_that_allows_only_this_exporter() -> None:
    holder = StateHolder()
    page = StatusPage(holder)
    holder.publish(make_state(make_signals("m", "e1", kv_cache_utilization=0.5), time=1.0))
    transport = httpx.ASGITransport(app=create_app(holder, CollectorRegistry(), status_page=page))
    async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as client:
        whole = await client.get("/")
        fragment = await client.get(FRAGMENT_PATH)
    csp = whole.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp and "script-src 'sha256-" in csp
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert "<main id='live'>" in whole.text and "e1" in whole.text
    assert fragment.text.startswith("<p class='meta'>") and "<html" not in fragment.text


def test_the_page_records_into_the_history_it_was_given() -> None:
    holder = StateHolder()
    history = SignalHistory(spacing_seconds=1.0)
    StatusPage(holder, history=history)
    holder.publish(make_state(make_signals("m", "e1"), time=1.0))
    assert history.endpoint("m", "e1") is not None and history.model("m") is not None


def test_one_render_per_published_state() -> None:
    holder = StateHolder()
    page = StatusPage(holder)
    holder.publish(make_state(make_signals("m", "e1"), time=1.0))
    first = page.render()
    assert page.render() is not first and page.render()[0] is first[0], "same state: the cached page"
    holder.publish(make_state(make_signals("m", "e2"), time=2.0))
    assert "e2" in page.render()[1]


def test_trigger_answers_are_what_the_scaler_answers_now() -> None:
    state = make_state(make_signals("m", "e1", requests_waiting=12.0), targets=(scraped_target("e1", 100.0),),
                       time=100.0)
    cache = SignalCache()
    cache.publish(build_snapshot(state, stale_after=60.0, now=100.0))
    registry = TriggerRegistry((), lambda: {"m"})
    registry.lookup({"model": "m", "signal": "queue_depth", "target": "10", "activationTarget": "5"})
    registry.lookup({"model": "m", "signal": "queue_depth", "target": "10", "activationTarget": "50"})
    answers = trigger_answers(cache, registry, clock=lambda: 101.0)()
    assert [(a.value, a.active) for a in answers] == [(12.0, True), (12.0, False)]
    late = trigger_answers(cache, registry, clock=lambda: 1000.0)()
    assert all(a.value is None and a.error for a in late), "stale data: an error, KEDA's fallback"
