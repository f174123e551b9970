"""The native front end (`engine: native`): a C++ gRPC server that answers KEDA from a table we write.

Why: KEDA's unary calls (GetMetricSpec, GetMetrics, IsActive) arrive for every trigger at every polling
interval and HPA sync. Python's gRPC stack costs ~0.2 ms of CPU per call before any llmobs code runs, which
caps one connection at ~5,000 calls/s; at 32 calls in flight that is a p99 of ~10 ms, against a 2 ms budget.
`exporters/scaler-frontend/frontend.cc` owns the port KEDA dials and answers those calls from an
`AnswerTable` (exporters/scaler-frontend/answers.proto) that this module recomputes at every cache
publish, for every trigger KEDA has asked about. Anything it has no valid answer for — a trigger it has not
seen, an answer past its validity, a metricName that does not match, the two streams — it forwards to the
Python scaler on a local unix socket. So the semantics live in one place (metadata parsing, NOT_FOUND,
staleness are Python's); the table only carries answers Python computed, with the time they stop being
trustworthy.

Here: `canonical_key` (must match frontend.cc's CanonicalKey), `TriggerRegistry` (the metadata KEDA has
sent), `build_table` (pure: snapshot → table), `write_table`/`read_stats` (atomic files), and
`FrontendProcess` (starts the binary, restarts it if it dies, stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from llmobs.serving.scaler import answers_pb2
from llmobs.serving.scaler.cache import ScalerError, Snapshot, answer
from llmobs.serving.scaler.metadata import MetadataError, ScalerQuery, parse_metadata

log = logging.getLogger("llmobs.scaler")

BINARY_NAME = "llmobs-scaler-frontend"
# gRPC status codes of the errors ScalerError carries (grpc.StatusCode values, without importing grpc here).
_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "UNAVAILABLE": 14}


def canonical_key(metadata: Mapping[str, str]) -> bytes:
    """Trigger metadata as one byte string: sorted (key, value) pairs, each followed by NUL."""
    return b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in sorted(metadata.items()))


class TriggerRegistry:
    """The trigger metadata KEDA has sent (parseable ones only), newest last, at most `capacity`.

    Triggers are few (one per ScaledObject trigger) and stable; the cap only bounds what a client sending
    ever-new metadata can make us precompute. An evicted trigger is forwarded again and re-registered.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()  # registered from the event loop, read from the refresher's thread
        self._triggers: OrderedDict[bytes, dict[str, str]] = OrderedDict()

    def note(self, metadata: Mapping[str, str]) -> None:
        key = canonical_key(metadata)
        with self._lock:
            if key in self._triggers:
                return
            self._triggers[key] = dict(metadata)
            while len(self._triggers) > self.capacity:
                self._triggers.popitem(last=False)

    def items(self) -> list[tuple[bytes, dict[str, str]]]:
        with self._lock:
            return list(self._triggers.items())


def _valid_until(snapshot: Snapshot, q: ScalerQuery, now: float) -> float:
    """The earliest time `answer(snapshot, q, t)` could differ from its value at `now` without a new
    snapshot: the snapshot going stale, or the model's (or a selected endpoint's) data going stale."""
    limit = snapshot.fresh_until
    entry = snapshot.models.get(q.model)
    if entry is not None:
        limit = min(limit, entry.fresh_until)
        limit = min([limit, *(r.fresh_until for r in entry.rows if r.fresh_until >= now)])
    return limit


def build_table(snapshot: Snapshot, triggers: list[tuple[bytes, dict[str, str]]], *, now: float,
                horizons: tuple[float, ...], max_age_seconds: float) -> answers_pb2.AnswerTable:
    """Every registered trigger's answers for this snapshot, as ScalerCore would give them at `now`."""
    table = answers_pb2.AnswerTable(written_at=now, max_age_seconds=max_age_seconds, version=snapshot.version,
                                    serving=snapshot.ready and now <= snapshot.fresh_until)
    for key, metadata in triggers:
        try:
            q = parse_metadata(metadata, horizons)
        except MetadataError:
            continue  # never registered in practice; such calls are always forwarded
        row = table.answers.add(key=key, metric_name=q.metric_name, target=q.target)
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


def resolve_engine(engine: str, configured_binary: str) -> str:
    """`auto` → native when the front end is installed, else aio (logged, so the choice is never silent)."""
    if engine != "auto":
        return engine
    if locate_binary(configured_binary) is not None:
        return "native"
    log.info("scaler engine auto: %s not found, serving KEDA from grpc.aio (slower: docs/keda-scaler.md)",
             configured_binary)
    return "aio"


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
