"""The HTTP contract: auth, validation naming fields, size caps, idempotency, clock skew, batches."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import httpx
import pytest

import llmobs.feedback
from llmobs.feedback import FeedbackConfig, FeedbackStore
from llmobs.feedback.store import StoreClosed
from tests.conftest import REPO
from tests.feedback.feedback_helpers import CHAT, Clock, event

URL = "/v1/feedback"


def rows(config: FeedbackConfig) -> list[tuple[str, str, str, int]]:
    conn = sqlite3.connect(config.db_path)
    try:
        return conn.execute("SELECT app, request_id, label, rating FROM events ORDER BY id").fetchall()
    finally:
        conn.close()


def test_public_surface() -> None:
    """The package's public names are deliberate; adding or removing one should be a visible change."""
    assert sorted(llmobs.feedback.__all__) == [
        "FeedbackCollector",
        "FeedbackConfig",
        "FeedbackStats",
        "FeedbackStore",
        "TokenVerifier",
        "create_app",
        "serve_feedback",
    ]


async def test_single_event_is_stored_with_app_from_token(client: httpx.AsyncClient, config: FeedbackConfig) -> None:
    resp = await client.post(URL, json=event("r1", rating=-1), headers=CHAT)
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 1, "duplicates": 0}
    assert rows(config) == [("chat", "r1", "negative", -1)]


async def test_batch_is_stored_and_stars_normalise(client: httpx.AsyncClient, config: FeedbackConfig) -> None:
    body = {"events": [event(f"r{s}", scale="stars", rating=s) for s in range(1, 6)]}
    resp = await client.post(URL, json=body, headers={"Authorization": "Bearer tok-s2"})
    assert resp.json() == {"accepted": 5, "duplicates": 0}
    assert [(r[2], r[3]) for r in rows(config)] == [
        ("negative", 1),
        ("negative", 2),
        ("neutral", 3),
        ("positive", 4),
        ("positive", 5),
    ]
    assert {r[0] for r in rows(config)} == {"search"}


async def test_integral_float_rating_is_an_integer(client: httpx.AsyncClient, config: FeedbackConfig) -> None:
    """JSON Schema (and JSON) treat 5.0 as the integer 5; schemathesis found we must too."""
    resp = await client.post(URL, json=event(scale="stars", rating=5.0), headers=CHAT)
    assert resp.status_code == 200
    assert rows(config) == [("chat", "r1", "positive", 5)]


async def test_replay_is_acknowledged_and_not_double_counted(
    client: httpx.AsyncClient, config: FeedbackConfig, store: FeedbackStore
) -> None:
    first = await client.post(URL, json=event("dup", rating=-1), headers=CHAT)
    again = await client.post(URL, json=event("dup", rating=1), headers=CHAT)  # different body: first wins
    batch = await client.post(URL, json={"events": [event("dup"), event("new"), event("new")]}, headers=CHAT)
    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 1}
    assert batch.json() == {"accepted": 1, "duplicates": 2}
    assert rows(config) == [("chat", "dup", "negative", -1), ("chat", "new", "positive", 1)]
    totals = store.stats.snapshot()[0]
    assert totals == {("llama-8b", "chat", "negative"): 1, ("llama-8b", "chat", "positive"): 1}
    assert store.stats.replays == 3


async def test_same_request_id_from_two_apps_are_two_events(client: httpx.AsyncClient, config: FeedbackConfig) -> None:
    """Idempotency is per (app, request_id): two apps may rate the same response."""
    await client.post(URL, json=event("shared"), headers=CHAT)
    await client.post(URL, json=event("shared"), headers={"Authorization": "Bearer tok-s1"})
    assert [(r[0], r[1]) for r in rows(config)] == [("chat", "shared"), ("search", "shared")]


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="llmobs-feedback"'),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 'Bearer realm="llmobs-feedback"'),
        ({"Authorization": "Bearer "}, 'Bearer realm="llmobs-feedback"'),
        ({"Authorization": "Bearer tok-wrong"}, 'Bearer realm="llmobs-feedback", error="invalid_token"'),
        ({"Authorization": "Bearer tok-cha"}, 'Bearer realm="llmobs-feedback", error="invalid_token"'),
    ],
)
async def test_missing_or_wrong_token_is_401(
    client: httpx.AsyncClient, config: FeedbackConfig, store: FeedbackStore, headers: dict[str, str], challenge: str
) -> None:
    resp = await client.post(URL, json=event(), headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == challenge
    assert resp.json()["error"] == "unauthenticated"
    assert rows(config) == []
    assert store.stats.rejected["unauthenticated"] == 1


async def test_token_for_another_app_is_403(client: httpx.AsyncClient, config: FeedbackConfig) -> None:
    resp = await client.post(URL, json={"events": [event("a"), event("b", app="search")]}, headers=CHAT)
    assert resp.status_code == 403
    assert resp.json()["field"] == "events[1].app"
    assert rows(config) == []  # all-or-nothing: the valid first event was not stored either


async def test_explicit_matching_app_is_accepted(client: httpx.AsyncClient) -> None:
    resp = await client.post(URL, json=event(app="chat"), headers=CHAT)
    assert resp.status_code == 200


async def test_unauthenticated_requests_are_refused_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    """A huge anonymous body gets 401, not 413: auth is checked first."""
    resp = await client.post(URL, content=b"x" * (3 * 1024 * 1024))
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b"{not json", "malformed_json", None),
        (b"", "malformed_json", None),
        (b"\xff\xfe", "malformed_json", None),
        (json.dumps(event()).encode("utf-16"), "malformed_json", None),  # json.loads(bytes) used to take it
        (b'{"request_id":"r","model":"m","scale":"thumbs","rating":NaN}', "malformed_json", None),
        (b'{"request_id":"r","model":"m","scale":"stars","rating":Infinity}', "malformed_json", None),
        (b"[]", "validation", "body"),
        (b'"event"', "validation", "body"),
        (json.dumps(event(rating=True)).encode(), "validation", "rating"),
        (json.dumps(event(rating="1")).encode(), "validation", "rating"),
        (json.dumps(event(rating=1.5)).encode(), "validation", "rating"),
        (json.dumps(event(scale="stars", rating=True)).encode(), "validation", "rating"),
        (json.dumps(event(rating=0)).encode(), "validation", "rating"),
        (json.dumps(event(rating=2)).encode(), "validation", "rating"),
        (json.dumps(event(scale="stars", rating=6)).encode(), "validation", "rating"),
        (json.dumps(event(scale="stars", rating=4.5)).encode(), "validation", "rating"),
        (json.dumps(event(scale="percent")).encode(), "validation", "scale"),
        (json.dumps({k: v for k, v in event().items() if k != "scale"}).encode(), "validation", "scale"),
        (json.dumps({k: v for k, v in event().items() if k != "request_id"}).encode(), "validation", "request_id"),
        (json.dumps(event(model=7)).encode(), "validation", "model"),
        (json.dumps(event(model="")).encode(), "validation", "model"),
        (json.dumps(event(model="m\x00x")).encode(), "validation", "model"),
        (json.dumps(event(app="chat\n")).encode(), "validation", "app"),
        (b'{"request_id":"r","model":"m","scale":"stars","rating":1' + b"0" * 5000 + b"}", "malformed_json", None),
        (json.dumps(event(request_id="has space")).encode(), "validation", "request_id"),
        (json.dumps(event(request_id="x" * 257)).encode(), "validation", "request_id"),
        (json.dumps(event(ttft_ms=-1)).encode(), "validation", "ttft_ms"),
        (json.dumps(event(ttft_ms="fast")).encode(), "validation", "ttft_ms"),
        (json.dumps(event(e2e_ms=1e300)).encode(), "validation", "e2e_ms"),
        (json.dumps(event(categories="slow")).encode(), "validation", "categories"),
        (json.dumps(event(categories=["ok", 3])).encode(), "validation", "categories[1]"),
        (json.dumps(event(timestamp="2026-01-01")).encode(), "validation", "timestamp"),
        (json.dumps(event(extra=1)).encode(), "validation", "extra"),
        (json.dumps({"events": []}).encode(), "validation", "events"),
        (json.dumps({"events": "x"}).encode(), "validation", "events"),
        (json.dumps({"events": [event(), event(rating=5)]}).encode(), "validation", "events[1].rating"),
        (json.dumps({"events": [event(), 5]}).encode(), "validation", "events[1]"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient, config: FeedbackConfig, body: bytes, reason: str, field: str | None
) -> None:
    resp = await client.post(URL, content=body, headers={**CHAT, "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    doc = resp.json()
    assert doc["error"] == reason
    assert doc.get("field") == field
    if field is not None:
        assert field in doc["detail"]
    assert rows(config) == []


async def test_body_over_cap_is_413(make_config, clock: Clock) -> None:
    config = make_config(max_body_bytes=4096)
    from llmobs.feedback import TokenVerifier, create_app
    from tests.feedback.feedback_helpers import open_store

    store = open_store(config, clock)
    try:
        assert config.tokens_file is not None
        app = create_app(config, store, verifier=TokenVerifier(config.tokens_file), clock=clock)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://feedback") as c:
            big = {"events": [event(f"r{i}", categories=["x" * 60] * 4) for i in range(40)]}
            resp = await c.post(URL, json=big, headers=CHAT)
            assert resp.status_code == 413
            assert resp.json()["error"] == "too_large"

            # A lying Content-Length cannot sneak a big body in: the cap holds while streaming.
            async def chunks():
                for _ in range(10):
                    yield b" " * 1000

            resp = await c.post(URL, content=chunks(), headers=CHAT)
            assert resp.status_code == 413
            ok = await c.post(URL, json=event(), headers=CHAT)
            assert ok.status_code == 200
        assert store.stats.rejected["too_large"] == 2
    finally:
        store.close()


async def test_batch_over_1000_is_413_and_1000_is_fine(client: httpx.AsyncClient, config: FeedbackConfig) -> None:
    over = {"events": [event(f"r{i}") for i in range(1001)]}
    resp = await client.post(URL, json=over, headers=CHAT)
    assert resp.status_code == 413
    assert resp.json() == {
        "error": "batch_too_large",
        "field": "events",
        "detail": "batch of 1001 events exceeds the limit of 1000",
    }
    full = {"events": [event(f"r{i}") for i in range(1000)]}
    resp = await client.post(URL, json=full, headers=CHAT)
    assert resp.json() == {"accepted": 1000, "duplicates": 0}


async def test_configured_smaller_batch_limit(make_config, clock: Clock) -> None:
    from llmobs.feedback import TokenVerifier, create_app
    from tests.feedback.feedback_helpers import open_store

    config = make_config(max_batch=10)
    store = open_store(config, clock)
    try:
        assert config.tokens_file is not None
        app = create_app(config, store, verifier=TokenVerifier(config.tokens_file), clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
            resp = await c.post(URL, json={"events": [event(f"r{i}") for i in range(11)]}, headers=CHAT)
            assert resp.status_code == 413
    finally:
        store.close()


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (0.0, 200),
        (299.0, 200),  # within max_future_skew_seconds (300)
        (301.0, 400),
        (86400.0 * 365, 400),
        (-86400.0 * 29, 200),  # within retention (30 days)
        (-86400.0 * 31, 400),
    ],
)
async def test_clock_skew_rule(
    client: httpx.AsyncClient, config: FeedbackConfig, clock: Clock, offset: float, status: int
) -> None:
    resp = await client.post(URL, json=event(timestamp=clock.now + offset), headers=CHAT)
    assert resp.status_code == status, resp.text
    if status == 400:
        assert resp.json() == {**resp.json(), "error": "clock_skew", "field": "timestamp"}
    else:
        conn = sqlite3.connect(config.db_path)
        client_ts, received = conn.execute("SELECT client_ts, received_at FROM events").fetchone()
        conn.close()
        assert client_ts == clock.now + offset
        assert received == clock.now  # windows use the server's receive time, never the client's


async def test_timestamp_zero_is_skew_not_crash(client: httpx.AsyncClient) -> None:
    resp = await client.post(URL, json=event(timestamp=0), headers=CHAT)
    assert resp.status_code == 400 and resp.json()["field"] == "timestamp"


async def test_unknown_model_is_accepted_but_labelled_other(make_config, clock: Clock) -> None:
    """Unknown models are stored under their real name; only the metric label collapses to `other`."""
    from llmobs.feedback import TokenVerifier, create_app
    from tests.feedback.feedback_helpers import open_store

    config = make_config(allowed_models=["llama-8b"])
    store = open_store(config, clock)
    try:
        assert config.tokens_file is not None
        app = create_app(config, store, verifier=TokenVerifier(config.tokens_file), clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
            resp = await c.post(URL, json=event("a", model="mystery-70b", rating=-1), headers=CHAT)
            assert resp.status_code == 200
        assert store.stats.snapshot()[0] == {("other", "chat", "negative"): 1}
    finally:
        store.close()
    conn = sqlite3.connect(config.db_path)
    assert conn.execute("SELECT model FROM events").fetchall() == [("mystery-70b",)]
    conn.close()


async def test_store_failure_is_503_and_nothing_acknowledged(client: httpx.AsyncClient, store: FeedbackStore) -> None:
    store.close()
    resp = await client.post(URL, json=event(), headers=CHAT)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["error"] == "store_error"
    with pytest.raises(StoreClosed):
        store.submit([])


async def test_rejections_are_counted_by_reason(client: httpx.AsyncClient, store: FeedbackStore) -> None:
    await client.post(URL, content=b"{", headers=CHAT)
    await client.post(URL, json=event(rating=9), headers=CHAT)
    await client.post(URL, json=event(rating=9), headers=CHAT)
    await client.post(URL, json=event(app="search"), headers=CHAT)
    _, rejected, *_ = store.stats.snapshot()
    assert rejected == {"malformed_json": 1, "validation": 2, "forbidden": 1}


async def test_healthz_and_openapi_are_served(client: httpx.AsyncClient) -> None:
    from llmobs.feedback.openapi import openapi_document

    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/openapi.json")).json() == openapi_document()
    assert (await client.get(URL)).status_code == 405


def test_committed_openapi_document_matches_the_code() -> None:
    """Drift check: regenerate with `python -m llmobs.feedback.openapi > docs/feedback-openapi.json`."""
    from llmobs.feedback.openapi import render

    committed = REPO / "docs" / "feedback-openapi.json"
    assert committed.read_text(encoding="utf-8") == render()


async def test_unauthenticated_mode_uses_event_app(tmp_path: Path, clock: Clock) -> None:
    from llmobs.feedback import create_app
    from tests.feedback.feedback_helpers import open_store

    config = FeedbackConfig(allow_unauthenticated=True, db_path=tmp_path / "open.db", allowed_apps=["demo"])
    store = open_store(config, clock)
    try:
        app = create_app(config, store, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
            assert (await c.post(URL, json=event("a", app="demo"))).status_code == 200
            assert (await c.post(URL, json=event("b"))).status_code == 200
        assert store.stats.snapshot()[0] == {
            ("llama-8b", "demo", "positive"): 1,
            ("llama-8b", "other", "positive"): 1,
        }
    finally:
        store.close()


def test_config_refuses_ambiguous_or_open_auth(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tokens_file"):
        FeedbackConfig()
    with pytest.raises(ValueError, match="mutually exclusive"):
        FeedbackConfig(tokens_file=tmp_path / "t.yaml", allow_unauthenticated=True)
    with pytest.raises(ValueError):
        FeedbackConfig(allow_unauthenticated=True, max_batch=1001)
    assert math.isclose(FeedbackConfig(allow_unauthenticated=True, window_seconds=600).bucket_seconds, 10.0)
