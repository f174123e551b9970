"""`serve_feedback`: run the feedback API, its store and its maintenance until cancelled.

This is the one entry point `llmobs run` wires in. It binds the socket itself (so a busy port raises
OSError here instead of uvicorn calling sys.exit inside the host process) and keeps uvicorn away from
the process's signal handlers, which belong to the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Generator

import uvicorn
from prometheus_client.registry import CollectorRegistry

from llmobs.feedback.api import create_app
from llmobs.feedback.auth import TokenVerifier
from llmobs.feedback.config import FeedbackConfig
from llmobs.feedback.guard import guarded_protocol
from llmobs.feedback.signals import FeedbackCollector, ServedRequests
from llmobs.feedback.stats import FeedbackStats
from llmobs.feedback.store import FeedbackStore, StoreClosed

log = logging.getLogger("llmobs.feedback")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal capture: the host process decides when we stop (by cancelling us)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen; raises OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it Nagle + delayed ACK add ~40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _maintain(store: FeedbackStore, collector: FeedbackCollector, config: FeedbackConfig) -> None:
    """Prune on schedule and sample served requests each bucket, so coverage has a baseline."""
    next_prune = 0.0
    tick = min(config.prune_interval_seconds, config.bucket_seconds, 60.0)
    while True:
        now = time.monotonic()
        if now >= next_prune:
            next_prune = now + config.prune_interval_seconds
            try:
                deleted = await asyncio.wrap_future(store.prune())
                if any(deleted.values()):
                    log.info("feedback store pruned %s", deleted)
            except StoreClosed:
                return
            except Exception:
                log.exception("feedback store prune failed")
        collector.sample_coverage()
        await asyncio.sleep(tick)


async def serve_feedback(
    config: FeedbackConfig,
    registry: CollectorRegistry,
    served_requests: ServedRequests | None,
    *,
    metrics_on_api: bool = False,
    on_listening: Callable[[str, int], None] | None = None,
    on_stats: Callable[[FeedbackStats], None] | None = None,
) -> None:
    """Serve the feedback API on config.host:config.port until cancelled.

    Registers the `llmobs_feedback_*` collector on `registry` (and unregisters it on the way out).
    `served_requests(model)` gives the reset-adjusted requests served, for the coverage ratio (called
    from this loop and from the scrape thread, so it must be thread-safe); None leaves coverage out.
    `config.enabled` is the caller's decision: this serves whenever called. `metrics_on_api` also
    serves `registry` at `/metrics` on the feedback port (standalone mode). `on_listening(host, port)`
    is called once the socket is bound (port 0 → real port). `on_stats(stats)` hands the live counters to a
    reader (the exporter's status page) before anything is served.
    """
    stats = FeedbackStats(config)
    if on_stats is not None:
        on_stats(stats)
    store = FeedbackStore(
        config.db_path,
        stats,
        retention_seconds=config.retention_seconds,
        max_db_bytes=config.max_db_bytes,
        synchronous=config.synchronous,
    )
    verifier = (
        TokenVerifier(config.tokens_file, config.token_reload_seconds) if config.tokens_file is not None else None
    )
    sock = bind_socket(config.host, config.port)
    try:
        await asyncio.to_thread(store.open)
    except BaseException:
        sock.close()
        raise
    collector = FeedbackCollector(stats, served_requests)
    collector.register(registry)
    app = create_app(config, store, verifier=verifier, metrics_registry=registry if metrics_on_api else None)
    server = _EmbeddedServer(
        uvicorn.Config(
            app,
            http=guarded_protocol(header_timeout=config.header_timeout_seconds,
                                  body_timeout=config.body_timeout_seconds, max_connections=config.max_connections),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
    )
    server_task = asyncio.create_task(server.serve(sockets=[sock]), name="feedback-http")
    maintain_task = asyncio.create_task(_maintain(store, collector, config), name="feedback-maintain")
    host, port = sock.getsockname()[:2]
    log.info("feedback API listening on %s:%d", host, port)
    if on_listening is not None:
        on_listening(host, port)
    try:
        done, _ = await asyncio.wait({server_task, maintain_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # surface a crash of either task
        raise RuntimeError("feedback server stopped unexpectedly")
    finally:
        server.should_exit = True
        maintain_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(asyncio.gather(server_task, maintain_task, return_exceptions=True))
        await asyncio.to_thread(store.close)
        sock.close()
        with contextlib.suppress(KeyError):
            registry.unregister(collector)
