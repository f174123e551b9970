"""The opt-in native front end (`engine: native`): a C++ gRPC server answering KEDA from a table we write.

Off by default: grpc.aio in the llmobs process serves KEDA's real load (a few calls per trigger per
polling interval). Why it exists: Python's gRPC stack costs ~0.3 ms of CPU per call and shares the GIL
with the scrape loop, so at 1,000 calls/s while scraping 1,000 targets on 2 loaded cores grpc.aio's p99
is far above 5 ms (benchmarks/scaler.py; docs/benchmarks/scaler.md). `exporters/scaler-frontend/frontend.cc`
owns the port KEDA dials and answers GetMetricSpec, GetMetrics and IsActive from an `AnswerTable`
(proto/answers.proto) that this module recomputes at every cache publish, for every trigger in the
scaler's bounded `TriggerRegistry`. Anything it has no valid answer for — a trigger it has not seen, an
answer past its validity, a metricName that does not match, the two streams — it forwards to the Python
servicer on a local unix socket. So the semantics live in one place (metadata parsing, NOT_FOUND,
staleness are Python's); the table only carries answers Python computed, with the time they stop being
trustworthy.

Here: `canonical_key` (must match frontend.cc's CanonicalKey), `build_table` (pure: snapshot → table),
`write_atomically`/`read_stats` (files), `find_binary`, and `FrontendProcess` (starts the binary, restarts
it if it dies, stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from llmobs.serving.scaler.cache import ScalerError, Snapshot, answer
from llmobs.serving.scaler.metadata import ScalerQuery
from llmobs.serving.scaler.proto import answers_pb2
from llmobs.serving.scaler.triggers import Trigger

log = logging.getLogger("llmobs.scaler")

BINARY_NAME = "llmobs-scaler-frontend"
# gRPC status codes of the errors ScalerError carries (grpc.StatusCode values, without importing grpc here).
_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "UNAVAILABLE": 14}


def canonical_key(metadata: Mapping[str, str]) -> bytes:
    """Trigger metadata as one byte string: sorted (key, value) pairs, each followed by NUL."""
    return b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in sorted(metadata.items()))


def _valid_until(snapshot: Snapshot, q: ScalerQuery, now: float) -> float:
    """The earliest time `answer(snapshot, q, t)` could differ from its value at `now` without a new
    snapshot: the snapshot going stale, or the model's (or a selected endpoint's) data going stale."""
    limit = snapshot.fresh_until
    entry = snapshot.models.get(q.model)
    if entry is not None:
        limit = min(limit, entry.fresh_until)
        limit = min([limit, *(r.fresh_until for r in entry.rows if r.fresh_until >= now)])
    return limit


def build_table(snapshot: Snapshot, triggers: list[Trigger], *, now: float,
                max_age_seconds: float) -> answers_pb2.AnswerTable:
    """Every registered trigger's answers for this snapshot, as the servicer would give them at `now`."""
    table = answers_pb2.AnswerTable(written_at=now, max_age_seconds=max_age_seconds, version=snapshot.version,
                                    serving=snapshot.ready and now <= snapshot.fresh_until)
    for trigger in triggers:
        q = trigger.query
        row = table.answers.add(key=canonical_key(trigger.metadata), metric_name=trigger.metric_name,
                                target=q.target)
        try:
            value = answer(snapshot, q, now)
        except ScalerError as e:
            row.code, row.message = _CODES.get(e.code, 2), e.message
            row.valid_until = now + max_age_seconds
            continue
        row.value, row.active = value, value > q.activation_target
        until = _valid_until(snapshot, q, now)
        row.valid_until = until if math.isfinite(until) else now + max_age_seconds
    return table


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file + rename: the front end never reads half a table."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_stats(path: Path) -> dict[tuple[str, str], int]:
    """The front end's own answer counts (method, code) → n; empty until it has written them."""
    counts: dict[tuple[str, str], int] = {}
    try:
        text = path.read_text()
    except OSError:
        return counts
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].isdigit():
            counts[(parts[0], parts[1])] = int(parts[2])
    return counts


def locate_binary(configured: str) -> str | None:
    """The front end executable: a path as given, or a name looked up on PATH and then beside the running
    Python (a virtual environment's bin/, where `make native` installs it); None when there is none."""
    if os.sep in configured:
        found: str | None = configured
    else:
        found = shutil.which(configured) or shutil.which(configured, path=os.path.dirname(sys.executable))
    return found if found and os.path.isfile(found) and os.access(found, os.X_OK) else None


def find_binary(configured: str) -> str:
    """`locate_binary`, or a clear error naming how to get it."""
    found = locate_binary(configured)
    if found is None:
        raise RuntimeError(f"scaler engine 'native' needs the {BINARY_NAME} executable ({configured!r} not found "
                           f"or not executable): build it with `make native` (exporters/scaler-frontend) or set "
                           f"scaler.frontend_binary")
    return found


class FrontendProcess:
    """Runs the front end binary, learns its port, restarts it (same port) if it exits, stops it."""

    def __init__(self, argv: list[str], listen_host: str, listen_port: int) -> None:
        self.argv = argv
        self.host = listen_host
        self.port = listen_port
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The running binary's process id (a new one after each restart); None before start."""
        return None if self._proc is None else self._proc.pid

    def _command(self) -> list[str]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [*self.argv, "--listen", f"{host}:{self.port}"]

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(*self._command(), stdout=asyncio.subprocess.PIPE,
                                                          stdin=asyncio.subprocess.DEVNULL)
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout=30)
        if not line.startswith(b"listening "):
            code = await self._proc.wait()
            raise RuntimeError(f"{BINARY_NAME} did not start (exit {code}): cannot listen on {self.host}:{self.port}?")
        self.port = int(line.split()[1])

    async def start(self) -> int:
        await self._spawn()
        self._task = asyncio.create_task(self._supervise())
        return self.port

    async def _supervise(self) -> None:
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("%s exited with %s; restarting on port %d", BINARY_NAME, code, self.port)
            await asyncio.sleep(1.0)
            try:
                await self._spawn()
            except (RuntimeError, OSError, TimeoutError) as e:
                log.error("%s restart failed: %s", BINARY_NAME, e)
                continue
            self.restarts += 1  # counted once it listens again

    async def stop(self) -> None:
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), timeout=5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
