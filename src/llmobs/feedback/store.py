"""Durable feedback store: SQLite in WAL mode, one writer thread, group commit.

Why a single writer thread: SQLite allows one writer at a time anyway, and funnelling every write
through one thread lets concurrent requests share a transaction (and its fsync). A request's future
resolves only after the COMMIT that contains its events returned, so an acknowledged event is on disk
(`synchronous=FULL`: also across power loss; `NORMAL`: across a process kill).

Idempotency is a UNIQUE (app, request_id) constraint with INSERT OR IGNORE: a replay is acknowledged
and counted as a replay, never twice. Counters live in a `totals` table updated in the same
transaction, so they survive restarts and retention pruning and always equal the events ever accepted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmobs.feedback.models import StoredEvent
from llmobs.feedback.stats import FeedbackStats, Observation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    app TEXT NOT NULL,
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT,
    rating INTEGER NOT NULL,
    scale TEXT NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    categories TEXT,
    ttft_ms REAL,
    e2e_ms REAL,
    client_ts REAL,
    received_at REAL NOT NULL,
    UNIQUE (app, request_id)
);
CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);
CREATE TABLE IF NOT EXISTS totals (
    model TEXT NOT NULL,
    app TEXT NOT NULL,
    label TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (model, app, label)
);
"""

_INSERT = (
    "INSERT OR IGNORE INTO events (app, request_id, model, endpoint, rating, scale, label, score, categories,"
    " ttft_ms, e2e_ms, client_ts, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_BUMP = (
    "INSERT INTO totals (model, app, label, count) VALUES (?,?,?,?)"
    " ON CONFLICT (model, app, label) DO UPDATE SET count = count + excluded.count"
)
_GROUP_MAX_EVENTS = 20_000
"""Most events one transaction takes; bounds the latency a huge backlog adds to the first request."""


class StoreClosed(Exception):
    """The store is not accepting writes (not opened yet, or closing)."""


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to one submission: newly stored events and replays of stored ones."""

    accepted: int
    duplicates: int


@dataclass(slots=True)
class _AddJob:
    events: Sequence[StoredEvent]
    future: concurrent.futures.Future[AddResult]


@dataclass(slots=True)
class _PruneJob:
    now: float
    future: concurrent.futures.Future[dict[str, int]]


_STOP = object()


class FeedbackStore:
    """Owns the SQLite file; every write goes through its writer thread."""

    def __init__(
        self,
        path: Path,
        stats: FeedbackStats,
        *,
        retention_seconds: float,
        max_db_bytes: int,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.stats = stats
        self._retention = retention_seconds
        self._max_bytes = max_db_bytes
        self._synchronous = synchronous
        self._clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._conn: sqlite3.Connection | None = None
        self._events = -1
        self._lifecycle = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Create or open the database, seed the aggregates, start the writer thread."""
        if self._thread is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # auto_vacuum must be chosen before the first table exists; it lets pruning give space back.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.executescript(_SCHEMA)
        self._conn = conn
        self._seed_stats(conn)
        self._refresh_size(conn)
        self._thread = threading.Thread(target=self._run, name="feedback-store-writer", daemon=True)
        self._thread.start()

    def _seed_stats(self, conn: sqlite3.Connection) -> None:
        """Rebuild counters and the current window from disk, so a restart loses no signal."""
        rows = conn.execute("SELECT model, app, label, count FROM totals ORDER BY rowid").fetchall()
        self.stats.load_totals(rows)
        since = self._clock() - self.stats.config.window_seconds
        cur = conn.execute(
            "SELECT model, app, label, ttft_ms, received_at FROM events WHERE received_at >= ?", (since,)
        )
        while batch := cur.fetchmany(10_000):
            self.stats.record((Observation(*r) for r in batch), totals=False)

    def close(self) -> None:
        """Finish every queued write, then stop the writer and close the file."""
        with self._lifecycle:
            self._closing = True
            if self._thread is not None:
                self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    # --- API ----------------------------------------------------------------------------------
    def submit(self, events: Sequence[StoredEvent]) -> concurrent.futures.Future[AddResult]:
        """Queue events for the next group commit; the future resolves after that commit."""
        fut: concurrent.futures.Future[AddResult] = concurrent.futures.Future()
        with self._lifecycle:  # never enqueue behind STOP, where nobody would answer
            if self._closing or self._thread is None:
                raise StoreClosed("feedback store is not open")
            self._queue.put(_AddJob(events, fut))
        return fut

    async def add(self, events: Sequence[StoredEvent]) -> AddResult:
        """Store events durably; returns once they are committed (or raises)."""
        return await asyncio.wrap_future(self.submit(events))

    def prune(self, now: float | None = None) -> concurrent.futures.Future[dict[str, int]]:
        """Enforce retention and the disk cap in the writer thread; resolves to rows deleted by reason."""
        fut: concurrent.futures.Future[dict[str, int]] = concurrent.futures.Future()
        with self._lifecycle:
            if self._closing or self._thread is None:
                raise StoreClosed("feedback store is not open")
            self._queue.put(_PruneJob(self._clock() if now is None else now, fut))
        return fut

    # --- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        stop = False
        while not stop:
            item = self._queue.get()
            jobs: list[_AddJob] = []
            prunes: list[_PruneJob] = []
            n = 0
            while True:
                if item is _STOP:
                    stop = True
                # A job whose waiter was cancelled (client gone) is skipped: nothing was acknowledged.
                # Marking the rest running makes them uncancellable, so set_result below cannot fail.
                elif isinstance(item, _PruneJob) and item.future.set_running_or_notify_cancel():
                    prunes.append(item)
                elif isinstance(item, _AddJob) and item.future.set_running_or_notify_cancel():
                    jobs.append(item)
                    n += len(item.events)
                if stop or n >= _GROUP_MAX_EVENTS:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if jobs:
                self._commit(conn, jobs)
            for job in prunes:
                try:
                    job.future.set_result(self._prune(conn, job.now))
                except Exception as exc:  # the writer thread must outlive a failed prune
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    job.future.set_exception(exc)
        # Anything queued after STOP is refused rather than left hanging.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _AddJob | _PruneJob) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(StoreClosed("feedback store closed"))

    def _commit(self, conn: sqlite3.Connection, jobs: list[_AddJob]) -> None:
        """One transaction for all queued submissions; resolve each future only after COMMIT."""
        results: list[AddResult] = []
        new: list[StoredEvent] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            bumps: Counter[tuple[str, str, str]] = Counter()
            for job in jobs:
                accepted = 0
                for ev in job.events:
                    cur = conn.execute(
                        _INSERT,
                        (
                            ev.app,
                            ev.request_id,
                            ev.model,
                            ev.endpoint,
                            ev.rating,
                            ev.scale,
                            ev.label,
                            ev.score,
                            ev.categories,
                            ev.ttft_ms,
                            ev.e2e_ms,
                            ev.client_ts,
                            ev.received_at,
                        ),
                    )
                    if cur.rowcount == 1:
                        accepted += 1
                        new.append(ev)
                        bumps[(ev.model, ev.app, ev.label)] += 1
                results.append(AddResult(accepted, len(job.events) - accepted))
            conn.executemany(_BUMP, [(*k, v) for k, v in bumps.items()])
            conn.execute("COMMIT")
        except Exception as exc:  # whatever failed, nothing in this group is acknowledged
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for job in jobs:
                job.future.set_exception(exc)
            return
        # Publish before acknowledging: a client that got its 200 and then scrapes must see its event.
        self.stats.record(Observation(e.model, e.app, e.label, e.ttft_ms, e.received_at) for e in new)
        self.stats.add_replays(sum(r.duplicates for r in results))
        self._events += len(new)
        self._refresh_size(conn)
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)
        if self._used_bytes(conn) > self._max_bytes:
            dropped = 0
            with contextlib.suppress(sqlite3.Error):
                dropped = self._enforce_cap(conn)
            self._refresh_size(conn, recount=True)
            if dropped:
                self.stats.add_pruned("disk_cap", dropped)

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        """Bytes in live pages (free pages excluded) plus the WAL: what the disk cap limits."""
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size + self._wal_bytes())

    def _wal_bytes(self) -> int:
        try:
            return Path(f"{self.path}-wal").stat().st_size
        except OSError:
            return 0

    def _file_bytes(self) -> int:
        try:
            return self.path.stat().st_size + self._wal_bytes()
        except OSError:
            return 0

    def _refresh_size(self, conn: sqlite3.Connection, recount: bool = False) -> None:
        """Publish the file size and row count to the health gauges (row count kept incrementally)."""
        if recount or self._events < 0:
            self._events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        self.stats.set_store_size(self._file_bytes(), self._events)

    def _prune(self, conn: sqlite3.Connection, now: float) -> dict[str, int]:
        """Delete events past retention, then the oldest events while over the disk cap."""
        deleted = {"retention": 0, "disk_cap": 0}
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute("DELETE FROM events WHERE received_at < ?", (now - self._retention,))
            deleted["retention"] = max(cur.rowcount, 0)
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        self._reclaim(conn)
        if self._used_bytes(conn) > self._max_bytes:
            deleted["disk_cap"] = self._enforce_cap(conn)
        # Gauges first, then counters: a scrape never sees the prune counted but the rows still there.
        self._refresh_size(conn, recount=True)
        for reason, n in deleted.items():
            if n:
                self.stats.add_pruned(reason, n)
        return deleted

    def _enforce_cap(self, conn: sqlite3.Connection) -> int:
        """Drop the oldest events until live data fits in 90% of the cap (headroom avoids thrashing).

        Returns the rows deleted; the caller publishes them (after refreshing the size gauges).
        """
        total = 0
        self._reclaim(conn)  # a big WAL is not live data: fold it in before judging.
        for _ in range(20):
            used = self._used_bytes(conn)
            if used <= self._max_bytes * 0.9:
                break
            rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            if rows == 0:
                break
            share = 1.0 - (self._max_bytes * 0.9) / used
            n = max(1, min(rows, math.ceil(rows * share)))
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (n,))
                total += max(cur.rowcount, 0)
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                raise
            self._reclaim(conn)
        self._events -= total
        return total

    @staticmethod
    def _reclaim(conn: sqlite3.Connection) -> None:
        """Give freed pages back to the file system and fold the WAL in, so the file really shrinks."""
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def count_events(path: Path) -> int:
    """Row count of a store file, read with a separate connection (tests and the benchmark use it)."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()
