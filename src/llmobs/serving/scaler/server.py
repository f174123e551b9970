"""Configuration and start-up of the scaler's gRPC server: ExternalScaler + the standard health service.

`serve_scaler` starts the cache refresher in the running event loop and the gRPC server (grpc.aio) on an
event loop of its own, in a thread of its own, and returns a `ScalerHandle` (bound port, cache, stats,
metrics-api routes, stop). Why a thread: the exporter's loop also runs the scrape cycle, whose
bookkeeping holds the loop for up to a second or two per cycle with 1,000 targets; KEDA's calls answered
on that loop waited for all of it. On its own loop a call waits only for the GIL, which a busy thread
hands over every few milliseconds (benchmarks/scaler.py measures both; docs/benchmarks/scaler.md).

With `engine: native` (opt-in) the same servicer listens on a private unix socket behind the C++ front
end (`frontend`), which owns KEDA's port.

TLS: a server certificate and key; adding `client_ca_file` turns on mTLS (clients must present a
certificate signed by that CA), which is what KEDA's TriggerAuthentication `caCert`/`tlsClientCert`/
`tlsClientKey` provide.

Limits (whoever reaches the port can call it): requests larger than `MAX_MESSAGE_BYTES` are refused by
gRPC itself (RESOURCE_EXHAUSTED) before llmobs reads them; metadata is bounded by `metadata.check_bounds`
(INVALID_ARGUMENT); streams per HTTP/2 connection and RPCs in flight are capped; the trigger registry is
bounded (`triggers`).

Health: `grpc.health.v1.Health` reports SERVING for "" and `externalscaler.ExternalScaler` while the
scrape loop publishes, NOT_SERVING for the latter when its state is stale (a probe on "" never restarts
llmobs because vLLM is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from starlette.routing import Route

from llmobs.serving.scaler.cache import SignalCache, Snapshot
from llmobs.serving.scaler.config import ScalerConfig
from llmobs.serving.scaler.frontend import FrontendProcess, build_table, find_binary, read_stats, write_atomically
from llmobs.serving.scaler.metrics_api import metrics_api_routes
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.provider import ForecastProvider
from llmobs.serving.scaler.refresher import CacheRefresher
from llmobs.serving.scaler.service import ScalerServicer
from llmobs.serving.scaler.stats import ScalerCollector, ScalerStats
from llmobs.serving.scaler.triggers import TriggerRegistry
from llmobs.state import StateHolder

SERVICE_NAME = "externalscaler.ExternalScaler"
# A KEDA request is a trigger's metadata (bounded far below this, a PEM or two included); a reply is smaller.
MAX_MESSAGE_BYTES = 64 * 1024
# KEDA keeps one StreamIsActive open per `external-push` ScaledObject, all on one connection: room for
# thousands, but not for a client opening millions.
MAX_STREAMS_PER_CONNECTION = 4096
MAX_CONCURRENT_RPCS = 16384  # over all connections; beyond it a call is refused RESOURCE_EXHAUSTED
_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a second process on the same port must fail to bind, not share it
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
    ("grpc.max_metadata_size", 16 * 1024),  # HTTP/2 headers per call (KEDA sends a few hundred bytes)
]
T = TypeVar("T")


def server_credentials(config: ScalerConfig) -> grpc.ServerCredentials | None:
    """TLS from the configured files; mTLS (client certificates required) when client_ca_file is set."""
    if config.tls is None:
        return None
    ca = config.tls.client_ca_file.read_bytes() if config.tls.client_ca_file else None
    return grpc.ssl_server_credentials([(config.tls.key_file.read_bytes(), config.tls.cert_file.read_bytes())],
                                       root_certificates=ca, require_client_auth=ca is not None)


class _LoopThread:
    """An event loop running in a daemon thread; coroutines are submitted from the caller's loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, 10)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass
class ScalerHandle:
    """A running scaler: its port, cache, stats and the JSON routes for the exporter's HTTP app."""

    port: int
    cache: SignalCache
    stats: ScalerStats
    config: ScalerConfig
    refresher: CacheRefresher
    triggers: TriggerRegistry
    _stop: asyncio.Event
    _grpc: _LoopThread
    _server: grpc.aio.Server | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    engine: str = "aio"
    _frontend: FrontendProcess | None = None
    _workdir: Path | None = None

    @property
    def frontend(self) -> FrontendProcess | None:
        """The native front end process (engine "native"), None for the pure-Python engine: its pid and restarts
        are what an operator (or a test) checks to see it supervised."""
        return self._frontend

    @property
    def workdir(self) -> Path | None:
        """The native front end's private directory (answers.pb: the answer table Python writes; stats.tsv: the
        front end's own answer counts; backend.sock), removed on stop; None for the pure-Python engine."""
        return self._workdir

    def routes(self) -> list[Route]:
        return metrics_api_routes(self.cache, self.stats, self.config.horizons(), self.triggers)

    async def stop(self, grace: float = 1.0) -> None:
        if self._stop.is_set():
            return  # stopped already (the exporter and its owner may both stop it)
        self._stop.set()
        if self._frontend is not None:
            await self._frontend.stop()
        if self._server is not None:
            await self._grpc.run(self._server.stop(grace))
        await self._grpc.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


async def _start_server(config: ScalerConfig, servicer: ScalerServicer, health_servicer: health.aio.HealthServicer,
                        backend: str | None) -> tuple[grpc.aio.Server, int]:
    """Runs on the gRPC thread's loop: grpc.aio binds a server to the loop it is created on. `backend`: the
    native front end's private unix socket (plaintext; the front end does TLS) instead of KEDA's port."""
    server = grpc.aio.server(options=_OPTIONS, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
    pb_grpc.add_ExternalScalerServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = backend or f"{config.host}:{config.port}"
    creds = None if backend else server_credentials(config)
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"scaler cannot listen on {address}")
    await server.start()
    return server, port


async def serve_scaler(
    config: ScalerConfig, holder: StateHolder, *, interval_seconds: float,
    forecast: ForecastProvider | None = None, registry: CollectorRegistry | None = None,
    poll_seconds: float = 0.05,
) -> ScalerHandle:
    """Start refresher + gRPC server; register self-metrics on `registry` if given."""
    cache, stats = SignalCache(), ScalerStats()
    triggers = TriggerRegistry(config.horizons(), lambda: cache.snapshot.models)
    stale_after = config.stale_after_intervals * interval_seconds
    stop = asyncio.Event()
    native = config.engine == "native"
    binary = find_binary(config.frontend_binary) if native else ""  # fail before anything starts
    if native:
        remove_orphaned_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")) if native else None  # mode 0700
    table_path = workdir / "answers.pb" if workdir else None
    table_max_age = max(3 * interval_seconds, 1.0)
    grpc_thread = _LoopThread("llmobs-scaler-grpc")
    health_status = _Health(grpc_thread.loop)

    def on_publish(snapshot: Snapshot) -> None:
        health_status.set(SERVICE_NAME, snapshot.ready and time.time() <= snapshot.fresh_until)
        if table_path is not None:
            table = build_table(snapshot, triggers.items(), now=time.time(), max_age_seconds=table_max_age)
            write_atomically(table_path, table.SerializeToString())

    refresher = CacheRefresher(holder, cache, stale_after=stale_after, refresh_seconds=interval_seconds,
                               known_models=config.models, forecast=forecast, horizons=config.horizons(),
                               poll_seconds=poll_seconds, on_publish=on_publish)
    handle = ScalerHandle(0, cache, stats, config, refresher, triggers, stop, grpc_thread, engine=config.engine,
                          _workdir=workdir)
    backend = f"unix:{workdir / 'backend.sock'}" if workdir else None
    try:
        await grpc_thread.run(health_status.create())
        handle._server, handle.port = await grpc_thread.run(
            _start_server(config, ScalerServicer(cache, stats, triggers), health_status.servicer, backend))
        if workdir is not None and backend is not None:
            handle._frontend = await _start_frontend(binary, config, workdir, backend, stats)
            handle.port = handle._frontend.port
    except BaseException:
        await handle.stop()
        raise
    health_status.set("", True)
    await refresher.refresh_async()  # the first snapshot, before KEDA's first poll lands
    handle._tasks.append(asyncio.create_task(refresher.run(stop)))
    if registry is not None:
        registry.register(ScalerCollector(stats, cache, triggers))
    return handle


WORKDIR_PREFIX = "llmobs-scaler-"
"""The native engine's private folder (answer table, stats, backend socket): `<tmp>/llmobs-scaler-<pid>-*`."""


def remove_orphaned_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove the native engine's folders that a killed llmobs left behind; return what was removed.

    `stop()` removes the folder, and a failed start stops what it started, but a SIGKILL or the OOM killer
    gives llmobs no chance: its front end exits with it (PR_SET_PDEATHSIG), the folder stays. The next start
    removes every such folder whose owner process is gone and that belongs to this user, so a restarting
    pod's `/tmp` (the chart's is a 64 MiB emptyDir) cannot fill with tables of processes long dead.
    """
    removed: list[Path] = []
    base = tmp or Path(tempfile.gettempdir())
    for path in base.glob(f"{WORKDIR_PREFIX}*-*"):
        pid_text = path.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0]
        if not pid_text.isdigit() or not path.is_dir():
            continue
        with contextlib.suppress(OSError):
            if path.stat().st_uid != os.getuid() or _alive(int(pid_text)):
                continue
            shutil.rmtree(path)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid: alive, not ours to judge
        return True
    return True


async def _start_frontend(binary: str, config: ScalerConfig, workdir: Path, backend: str,
                          stats: ScalerStats) -> FrontendProcess:
    """The C++ front end on the configured address, reading the table and forwarding to `backend`."""
    argv = [binary, "--backend", backend, "--table", str(workdir / "answers.pb"),
            "--stats", str(workdir / "stats.tsv")]
    if config.tls is not None:
        argv += ["--tls-cert", str(config.tls.cert_file), "--tls-key", str(config.tls.key_file)]
        if config.tls.client_ca_file is not None:
            argv += ["--client-ca", str(config.tls.client_ca_file)]
    frontend = FrontendProcess(argv, config.host, config.port)
    await frontend.start()
    stats.external = lambda: read_stats(workdir / "stats.tsv")
    return frontend


class _Health:
    """The standard health servicer, on the gRPC thread's loop, settable from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.servicer: health.aio.HealthServicer
        self._last: dict[str, bool] = {}
        self._lock = threading.Lock()

    async def create(self) -> None:
        self.servicer = health.aio.HealthServicer()

    def set(self, service: str, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        with self._lock:  # in order: two threads' updates reach the loop as they were decided
            if self._last.get(service) is serving:
                return
            self._last[service] = serving
            asyncio.run_coroutine_threadsafe(self.servicer.set(service, status), self.loop)
