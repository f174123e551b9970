"""Feedback ingestion benchmark: sustained authenticated posts against a real server process.

The server (`python -m llmobs.feedback`, SQLite synchronous=FULL, group commit) runs in its own process on
loopback; the clients run here, in this process, over a few keep-alive HTTP/1.1 connections. Two
phases: batched posts (the headline figure; batch size printed) and single-event posts (printed too, so
nobody mistakes one for the other). Afterwards the server is stopped and every acknowledged request_id
is looked up in its database: `lost` must be 0.

Last line: `ratio: X` = batched events/s ÷ 2000 (target ≥ 1).

    .venv/bin/python benchmarks/feedback.py [--duration 30] [--single-duration 30] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TARGET_EVENTS_PER_S = 2000.0
TOKEN = "bench-token"


@dataclass
class Phase:
    """Results of one load phase."""

    name: str
    batch: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    errors: int = 0

    @property
    def events_per_s(self) -> float:
        return len(self.acked) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


def start_server(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    """Spawn the standalone server; return it and its base URL once it listens."""
    (workdir / "tokens.yaml").write_text(f"bench: {TOKEN}\n")
    (workdir / "config.yaml").write_text(
        "feedback:\n"
        "  enabled: true\n"
        "  host: 127.0.0.1\n"
        "  port: 0\n"
        f"  tokens_file: {workdir / 'tokens.yaml'}\n"
        "  allowed_apps: [bench]\n"
        f"  db_path: {workdir / 'feedback.db'}\n"
        "  synchronous: FULL\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmobs.feedback", str(workdir / "config.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    host, port = line.split()[-1].rsplit(":", 1)
    return proc, f"http://{host}:{port}"


def event(rid: str, i: int) -> dict[str, object]:
    """A realistic event: mixed scales, ratings and TTFTs, so the collector has work to do."""
    if i % 2:
        return {
            "request_id": rid,
            "model": f"model-{i % 3}",
            "scale": "thumbs",
            "rating": 1 if i % 5 else -1,
            "ttft_ms": float(200 + (i * 37) % 2000),
            "e2e_ms": 3000.0,
            "categories": ["bench"],
        }
    return {
        "request_id": rid,
        "model": f"model-{i % 3}",
        "scale": "stars",
        "rating": 1 + i % 5,
        "ttft_ms": float(100 + (i * 53) % 1500),
        "endpoint": "vllm-0:8000",
    }


class Connection:
    """A minimal keep-alive HTTP/1.1 client (like wrk's): the load generator must cost far less CPU than
    the server it measures, and on 2 shared cores httpx would be the bottleneck, not the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def run_phase(base: str, phase: Phase, seconds: float, connections: int) -> None:
    """Each worker posts back-to-back over its own keep-alive connection until the deadline.

    An event counts as acknowledged only if the server answered 200 and reported it accepted.
    """
    conns = [await Connection.open(base) for _ in range(connections)]
    deadline = time.perf_counter() + seconds

    async def worker(w: int, conn: Connection) -> None:
        seq = 0
        while time.perf_counter() < deadline:
            ids = [f"{phase.name}-{w}-{seq}-{j}" for j in range(phase.batch)]
            seq += 1
            payload: object = (
                event(ids[0], seq) if phase.batch == 1 else {"events": [event(r, seq + j) for j, r in enumerate(ids)]}
            )
            body = json.dumps(payload).encode()
            t0 = time.perf_counter()
            try:
                status, reply = await conn.post("/v1/feedback", body)
            except (OSError, asyncio.IncompleteReadError):
                phase.errors += 1
                return
            phase.latencies.append(time.perf_counter() - t0)
            if status == 200 and json.loads(reply)["accepted"] == len(ids):
                phase.acked.extend(ids)
            else:
                phase.errors += 1

    t_start = time.perf_counter()
    await asyncio.gather(*(worker(w, c) for w, c in enumerate(conns)))
    phase.seconds = time.perf_counter() - t_start
    for c in conns:
        await c.close()


def count_lost(db: Path, acked: list[str]) -> tuple[int, int]:
    """(acknowledged events missing from the store, rows in the store)."""
    conn = sqlite3.connect(db)
    try:
        stored = {r[0] for r in conn.execute("SELECT request_id FROM events WHERE app = 'bench'")}
        rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    return sum(1 for r in acked if r not in stored), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of batched posts")
    parser.add_argument("--single-duration", type=float, default=30.0, help="seconds of single-event posts")
    parser.add_argument("--batch", type=int, default=100, help="events per batched post")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections")
    args = parser.parse_args()

    print(f"cpus: {os.cpu_count()}  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="llmobs-feedback-bench-") as tmp:
        workdir = Path(tmp)
        proc, base = start_server(workdir)
        phases = [Phase("batched", args.batch), Phase("single", 1)]
        try:
            asyncio.run(run_phase(base, phases[0], args.duration, args.connections))
            if args.single_duration > 0:
                asyncio.run(run_phase(base, phases[1], args.single_duration, args.connections))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        load_after = os.getloadavg()
        acked = [r for ph in phases for r in ph.acked]
        lost, rows = count_lost(workdir / "feedback.db", acked)

    print(f"server: python -m llmobs.feedback, sqlite synchronous=FULL, loopback, {args.connections} connections")
    for ph in phases:
        if ph.seconds == 0:
            continue
        reqs = len(ph.latencies)
        print(
            f"{ph.name:8s} batch={ph.batch:<4d} {ph.seconds:5.1f}s  events={len(ph.acked):8d}  "
            f"events/s={ph.events_per_s:9.1f}  requests/s={reqs / ph.seconds:8.1f}  "
            f"p50={ph.p(0.5) * 1000:7.2f}ms  p99={ph.p(0.99) * 1000:7.2f}ms  errors={ph.errors}"
        )
    print(f"events acknowledged: {len(acked)}  rows in store: {rows}  events lost: {lost}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    batched = phases[0]
    print(f"events/s: {batched.events_per_s:.1f} (batch size {batched.batch})")
    print(f"p99 latency: {batched.p(0.99) * 1000:.2f} ms")
    print(f"events lost: {lost}")
    ratio = batched.events_per_s / TARGET_EVENTS_PER_S if lost == 0 else 0.0
    print(f"ratio: {ratio:.2f}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
