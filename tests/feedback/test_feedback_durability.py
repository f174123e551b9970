"""Crash durability: SIGKILL the server mid-stream; every acknowledged event must be on disk after restart.

This runs the real standalone server (`python -m llmobs.feedback`) in a subprocess, so the kill is a real
kill -9 with commits in flight, not a simulated one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx

TOKEN = "tok-durable"


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "tokens.yaml").write_text(f"durable: {TOKEN}\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "feedback:\n"
        "  enabled: true\n"
        "  host: 127.0.0.1\n"
        "  port: 0\n"
        f"  tokens_file: {tmp_path / 'tokens.yaml'}\n"
        "  allowed_apps: [durable]\n"
        f"  db_path: {tmp_path / 'feedback.db'}\n"
        "  synchronous: FULL\n"
    )
    return cfg


def start(cfg: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the server and wait (max 20 s) for its `listening on` line."""
    with open(cfg.parent / "server.log", "a") as log:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmobs.feedback", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(20)
    if not line or not line[0].startswith("listening on "):
        proc.kill()
        proc.communicate(timeout=5)
        log_text = (cfg.parent / "server.log").read_text()
        raise AssertionError(f"server did not start: {line!r} {log_text[-2000:]}")
    return proc, "http://" + line[0].split()[-1]


def body(worker: int, seq: int) -> tuple[list[str], dict[str, object]]:
    size = 1 if seq % 3 == 0 else 10
    ids = [f"w{worker}-s{seq}-{i}" for i in range(size)]
    events = [
        {"request_id": r, "model": f"m{seq % 2}", "scale": "stars", "rating": 1 + (seq + i) % 5, "ttft_ms": 900.0 + i}
        for i, r in enumerate(ids)
    ]
    return ids, (events[0] if size == 1 else {"events": events})


async def hammer(base: str, proc: subprocess.Popen[str], kill_after: int) -> tuple[set[str], int, int]:
    """32 concurrent posters; SIGKILL the server once `kill_after` events were acknowledged."""
    acked: set[str] = set()
    failed = 0
    in_flight_at_kill = 0
    in_flight = 0
    killed = asyncio.Event()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=10.0) as client:

        async def worker(w: int) -> None:
            nonlocal failed, in_flight, in_flight_at_kill
            seq = 0
            while not killed.is_set():
                ids, payload = body(w, seq)
                seq += 1
                in_flight += 1
                try:
                    resp = await client.post("/v1/feedback", json=payload)
                except httpx.TransportError:
                    failed += 1
                    return
                finally:
                    in_flight -= 1
                if 200 <= resp.status_code < 300:
                    acked.update(ids)
                else:
                    failed += 1
                if len(acked) >= kill_after and not killed.is_set():
                    in_flight_at_kill = in_flight
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.set()

        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(32))), timeout=45)
    return acked, failed, in_flight_at_kill


def test_every_acknowledged_event_survives_sigkill(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    proc, base = start(cfg)
    try:
        acked, failed, in_flight = asyncio.run(hammer(base, proc, kill_after=3000))
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 3000
    assert in_flight > 0, "the kill must land while requests are in flight"
    assert failed > 0, "some posts must have been cut off by the kill"

    # Restart on the same file: SQLite recovers the WAL; the server must come back and serve.
    proc, base = start(cfg)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            replay = client.post(
                "/v1/feedback", json={"request_id": sorted(acked)[0], "model": "m0", "scale": "thumbs", "rating": 1}
            )
            assert replay.json() == {"accepted": 0, "duplicates": 1}
            metrics = client.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0, (tmp_path / "server.log").read_text()[-2000:]

    conn = sqlite3.connect(tmp_path / "feedback.db")
    try:
        stored = {r[0] for r in conn.execute("SELECT request_id FROM events")}
        total = conn.execute("SELECT sum(count) FROM totals").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    missing = acked - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    # Counters are committed with the events, so they match the rows exactly, even across the crash.
    assert total == len(stored)
    exported = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("llmobs_feedback_total{")
    )
    assert exported == len(stored)
