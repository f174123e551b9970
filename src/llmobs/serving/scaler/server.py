"""Configuration and start-up of the scaler's gRPC server: ExternalScaler + the standard health service.

`serve_scaler` starts the cache refresher and the server in the running event loop and returns a
`ScalerHandle` (bound port, cache, stats, metrics-api routes, stop). TLS: a server certificate and key;
adding `client_ca_file` turns on mTLS (clients must present a certificate signed by that CA), which is
what KEDA's TriggerAuthentication `caCert`/`tlsClientCert`/`tlsClientKey` provide.

Health: `grpc.health.v1.Health` reports SERVING for "" and `externalscaler.ExternalScaler` while the
scrape loop publishes, NOT_SERVING for the latter when its state is stale (a probe on "" never restarts
llmobs because vLLM is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from starlette.routing import Route

from llmobs.serving.scaler import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.cache import SignalCache, Snapshot
from llmobs.serving.scaler.config import ScalerConfig
from llmobs.serving.scaler.frontend import (
    FrontendProcess,
    TriggerRegistry,
    build_table,
    find_binary,
    read_stats,
    resolve_engine,
    write_atomically,
)
from llmobs.serving.scaler.metrics_api import metrics_api_routes
from llmobs.serving.scaler.provider import ForecastProvider
from llmobs.serving.scaler.refresher import CacheRefresher
from llmobs.serving.scaler.service import AioScalerServicer, ScalerCore, ThreadScalerServicer
from llmobs.serving.scaler.stats import ScalerCollector, ScalerStats
from llmobs.state import StateHolder

SERVICE_NAME = "externalscaler.ExternalScaler"
_OPTIONS = [("grpc.so_reuseport", 0)]  # a second process on the same port must fail to bind, not share it


def server_credentials(config: ScalerConfig) -> grpc.ServerCredentials | None:
    """TLS from the configured files; mTLS (client certificates required) when client_ca_file is set."""
    if config.tls is None:
        return None
    ca = config.tls.client_ca_file.read_bytes() if config.tls.client_ca_file else None
    return grpc.ssl_server_credentials([(config.tls.key_file.read_bytes(), config.tls.cert_file.read_bytes())],
                                       root_certificates=ca, require_client_auth=ca is not None)


@dataclass
class ScalerHandle:
    """A running scaler: its port, cache, stats and the JSON routes for the exporter's HTTP app."""

    port: int
    cache: SignalCache
    stats: ScalerStats
    config: ScalerConfig
    refresher: CacheRefresher
    _stop: asyncio.Event
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _aio_server: grpc.aio.Server | None = None
    _sync_server: grpc.Server | None = None
    _stopping: list[bool] = field(default_factory=lambda: [False])
    engine: str = "aio"  # the engine in use (`auto` resolved)
    _frontend: FrontendProcess | None = None
    _workdir: Path | None = None

    def routes(self) -> list[Route]:
        return metrics_api_routes(self.cache, self.stats, self.config.horizons())

    async def stop(self, grace: float = 1.0) -> None:
        self._stop.set()
        self._stopping[0] = True
        if self._frontend is not None:
            await self._frontend.stop()
        if self._aio_server is not None:
            await self._aio_server.stop(grace)
        if self._sync_server is not None:
            await asyncio.to_thread(lambda: self._sync_server.stop(grace).wait())  # type: ignore[union-attr]
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def _bind(server: grpc.aio.Server | grpc.Server, config: ScalerConfig, address: str | None = None) -> int:
    if address is not None:  # the native engine's backend: a private unix socket, plaintext
        if server.add_insecure_port(address) == 0:
            raise RuntimeError(f"scaler backend cannot listen on {address}")
        return 0
    address = f"{config.host}:{config.port}"
    creds = server_credentials(config)
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"scaler cannot listen on {address}")
    return port


async def serve_scaler(
    config: ScalerConfig, holder: StateHolder, *, interval_seconds: float,
    forecast: ForecastProvider | None = None, registry: CollectorRegistry | None = None,
    poll_seconds: float = 0.05,
) -> ScalerHandle:
    """Start refresher + gRPC server in the running loop; register self-metrics on `registry` if given."""
    cache, stats = SignalCache(), ScalerStats()
    stale_after = config.stale_after_intervals * interval_seconds
    stop = asyncio.Event()
    engine = resolve_engine(config.engine, config.frontend_binary)
    native = engine == "native"
    binary = find_binary(config.frontend_binary) if native else ""  # fail before anything starts
    triggers = TriggerRegistry()
    core = ScalerCore(cache, stats, config.horizons(), on_trigger=triggers.note if native else None)
    health_status = _Health(engine, asyncio.get_running_loop())
    workdir = Path(tempfile.mkdtemp(prefix="llmobs-scaler-")) if native else None  # mode 0700
    table_path = workdir / "answers.pb" if workdir else None
    table_max_age = max(3 * interval_seconds, 1.0)

    def on_publish(snapshot: Snapshot) -> None:
        health_status.set(SERVICE_NAME, snapshot.ready and time.time() <= snapshot.fresh_until)
        if table_path is not None:
            table = build_table(snapshot, triggers.items(), now=time.time(), horizons=config.horizons(),
                                max_age_seconds=table_max_age)
            write_atomically(table_path, table.SerializeToString())

    refresher = CacheRefresher(holder, cache, stale_after=stale_after, refresh_seconds=interval_seconds,
                               known_models=config.models, forecast=forecast, horizons=config.horizons(),
                               poll_seconds=poll_seconds, on_publish=on_publish)
    handle = ScalerHandle(0, cache, stats, config, refresher, stop, engine=engine, _workdir=workdir)
    if engine in ("aio", "native"):
        server = grpc.aio.server(options=_OPTIONS)
        pb_grpc.add_ExternalScalerServicer_to_server(AioScalerServicer(core), server)
        health_pb2_grpc.add_HealthServicer_to_server(health_status.servicer, server)
        backend = f"unix:{workdir / 'backend.sock'}" if workdir else None
        handle.port = _bind(server, config, backend)
        await server.start()
        handle._aio_server = server
        if workdir is not None:
            handle._frontend = await _start_frontend(binary, config, workdir, str(backend), stats)
            handle.port = handle._frontend.port
    else:
        sync = grpc.server(futures.ThreadPoolExecutor(max_workers=config.max_streams), options=_OPTIONS)
        pb_grpc.add_ExternalScalerServicer_to_server(ThreadScalerServicer(core, lambda: handle._stopping[0]), sync)
        health_pb2_grpc.add_HealthServicer_to_server(health_status.servicer, sync)
        handle.port = _bind(sync, config)
        sync.start()
        handle._sync_server = sync
    health_status.set("", True)
    await refresher.refresh_async()  # the first snapshot, before KEDA's first poll lands
    handle._tasks.append(asyncio.create_task(refresher.run(stop)))
    if registry is not None:
        registry.register(ScalerCollector(stats, cache))
    return handle


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
    """The standard health servicer of either engine, settable from any thread (the refresher's worker)."""

    def __init__(self, engine: str, loop: asyncio.AbstractEventLoop) -> None:
        self.aio = engine in ("aio", "native")  # native: the grpc.aio backend behind the front end
        self.loop = loop
        self.servicer: health.HealthServicer | health.aio.HealthServicer = (
            health.aio.HealthServicer() if self.aio else health.HealthServicer())
        self._last: dict[str, bool] = {}

    def set(self, service: str, serving: bool) -> None:
        if self._last.get(service) is serving:
            return
        self._last[service] = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        if self.aio:
            asyncio.run_coroutine_threadsafe(self.servicer.set(service, status), self.loop)  # type: ignore[arg-type]
        else:
            self.servicer.set(service, status)

