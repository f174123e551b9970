"""The store: group commit, idempotency, durable totals, retention and the disk cap."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading

import pytest

from llmobs.feedback import FeedbackConfig, FeedbackStore
from llmobs.feedback.models import StoredEvent
from tests.feedback.feedback_helpers import Clock, open_store


def stored(
    rid: str,
    *,
    app: str = "chat",
    model: str = "m",
    label: str = "positive",
    at: float = 0.0,
    ttft_ms: float | None = None,
) -> StoredEvent:
    rating = {"positive": 1, "negative": -1}.get(label, 0)
    return StoredEvent(
        app=app,
        request_id=rid,
        model=model,
        endpoint=None,
        rating=rating,
        scale="thumbs",
        label=label,
        score=1.0,
        categories=None,
        ttft_ms=ttft_ms,
        e2e_ms=None,
        client_ts=None,
        received_at=at,
    )


def test_concurrent_submissions_share_commits_and_all_land(store: FeedbackStore, config: FeedbackConfig) -> None:
    """Many threads submit at once; every future resolves after commit and nothing is lost or doubled."""
    barrier = threading.Barrier(8)

    def worker(w: int) -> list[int]:
        barrier.wait()
        futs = [store.submit([stored(f"{w}-{i}-{j}") for j in range(3)]) for i in range(100)]
        return [f.result(timeout=30).accepted for f in futs]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert sum(map(sum, results)) == 8 * 100 * 3
    conn = sqlite3.connect(config.db_path)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2400
    assert conn.execute("SELECT sum(count) FROM totals").fetchone()[0] == 2400
    conn.close()
    assert store.stats.snapshot()[5] == 2400


def test_store_uses_wal(store: FeedbackStore, config: FeedbackConfig) -> None:
    conn = sqlite3.connect(config.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_totals_survive_restart_and_pruning(config: FeedbackConfig, clock: Clock) -> None:
    """Counters come from the durable totals table, so a restart or a prune never makes them go down."""
    store = open_store(config, clock)
    store.submit([stored("a", label="negative", at=clock.now), stored("b", at=clock.now)]).result()
    store.submit([stored("a", label="positive", at=clock.now)]).result()  # replay: ignored
    store.close()

    clock.now += config.retention_seconds + 1
    store = open_store(config, clock)
    try:
        assert store.stats.snapshot()[0] == {("m", "chat", "negative"): 1, ("m", "chat", "positive"): 1}
        assert store.prune().result() == {"retention": 2, "disk_cap": 0}
        assert store.stats.snapshot()[0] == {("m", "chat", "negative"): 1, ("m", "chat", "positive"): 1}
        assert store.stats.pruned == {"retention": 2}
        assert store.stats.snapshot()[5] == 0
    finally:
        store.close()


def test_retention_deletes_only_old_events(store: FeedbackStore, config: FeedbackConfig, clock: Clock) -> None:
    old = clock.now - config.retention_seconds - 10
    store.submit([stored("old", at=old), stored("new", at=clock.now)]).result()
    assert store.prune().result()["retention"] == 1
    conn = sqlite3.connect(config.db_path)
    assert conn.execute("SELECT request_id FROM events").fetchall() == [("new",)]
    conn.close()


def test_disk_cap_drops_oldest_and_keeps_file_under_cap(make_config, clock: Clock) -> None:
    cap = 256 * 1024
    config = make_config(max_db_bytes=cap)
    store = open_store(config, clock)
    try:
        for batch in range(30):
            events = [stored(f"{batch:03d}-{i:03d}", at=clock.now + batch, model="m" * 50) for i in range(200)]
            store.submit(events).result()
        store.prune().result()
        conn = sqlite3.connect(config.db_path)
        remaining = [r[0] for r in conn.execute("SELECT request_id FROM events ORDER BY id")]
        conn.close()
        assert 0 < len(remaining) < 6000
        assert remaining[-1] == "029-199"  # newest kept
        assert remaining[0] > "000-000"  # oldest gone
        assert store.stats.pruned["disk_cap"] == 6000 - len(remaining)
        size = config.db_path.stat().st_size
        assert size <= cap, size
        assert store.stats.store_bytes <= cap
        # Totals keep counting what was ever accepted.
        assert sum(store.stats.snapshot()[0].values()) == 6000
    finally:
        store.close()


def test_window_rebuilt_from_disk_after_restart(config: FeedbackConfig, clock: Clock) -> None:
    store = open_store(config, clock)
    store.submit(
        [
            stored("a", label="negative", at=clock.now, ttft_ms=5000.0),
            stored("b", at=clock.now - config.window_seconds - 60),
        ]
    ).result()
    store.close()
    store = open_store(config, clock)
    try:
        window = store.stats.window(clock.now)
        assert window["m"].total == 1 and window["m"].negative == 1
        assert window["m"].by_ttft["above_slo"] == [1, 1]
    finally:
        store.close()


def test_close_drains_queued_writes(config: FeedbackConfig, clock: Clock) -> None:
    store = open_store(config, clock)
    futs = [store.submit([stored(f"r{i}")]) for i in range(500)]
    store.close()
    assert all(f.result(timeout=0).accepted == 1 for f in futs)


def test_sqlite_error_fails_the_whole_group(store: FeedbackStore, config: FeedbackConfig) -> None:
    """A commit that fails resolves every future in it with the error: nothing is acknowledged."""
    bad = stored("x")
    object.__setattr__(bad, "received_at", object())  # not bindable: sqlite raises inside the transaction
    fut = store.submit([stored("fine"), bad])
    with pytest.raises(sqlite3.Error):
        fut.result(timeout=10)
    assert store.submit([stored("after")]).result(timeout=10).accepted == 1
    conn = sqlite3.connect(config.db_path)
    assert [r[0] for r in conn.execute("SELECT request_id FROM events")] == ["after"]
    conn.close()


def test_cancelled_waiter_does_not_kill_the_writer(store: FeedbackStore, config: FeedbackConfig) -> None:
    """A client that disconnects cancels its future; the writer must skip it and keep serving others."""
    store.prune().result()  # writer idle and alive
    blocker = store.submit([stored("first")])
    cancelled = [store.submit([stored(f"gone-{i}")]) for i in range(5)]
    for fut in cancelled:
        fut.cancel()
    assert blocker.result(timeout=10).accepted == 1
    assert store.submit([stored("after")]).result(timeout=10).accepted == 1
    prune = store.prune()
    prune.cancel()
    assert store.submit([stored("after-prune")]).result(timeout=10).accepted == 1
    conn = sqlite3.connect(config.db_path)
    ids = {r[0] for r in conn.execute("SELECT request_id FROM events")}
    conn.close()
    assert {"first", "after", "after-prune"} <= ids
