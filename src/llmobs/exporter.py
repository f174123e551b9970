"""`llmobs run` inside a program's own event loop: `async with llmobs.Exporter(config) as exporter: ...`.

Why a class over `runtime.start_exporter`: an embedding service needs the exporter's lifetime tied to a
block (or to its web framework's lifespan), and read access to what it derived, without learning the
runtime's wiring. `Exporter` starts exactly what `llmobs run` starts for the config (scrape loop,
`/metrics` server, and whichever of scaler, forecaster, feedback API and OTLP push the config enables) and
stops all of it on exit. The runtime (uvicorn, the scraper) is imported by `start`, not by this module, so
`from llmobs import Exporter` stays cheap.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING

from llmobs.config import LlmobsConfig
from llmobs.signals.types import ModelEndpointSignals
from llmobs.state import FleetState

if TYPE_CHECKING:
    from llmobs.runtime import Exporter as RunningExporter


class Exporter:
    """The llmobs exporter for `config`, started on entering `async with` and stopped on leaving it.

    While it runs it scrapes the config's targets every `scrape.interval_seconds`, serves `/metrics`,
    `/api/v1/signals` and the status page on `server.host`:`port` (`server.port: 0` picks a free port), and
    publishes each cycle's `FleetState`. A component the config enables without its pip extra makes
    `start` raise `MissingExtraError` before anything is bound.
    """

    def __init__(self, config: LlmobsConfig) -> None:
        if not isinstance(config, LlmobsConfig):  # a dict would only fail at start(), deep in the runtime
            raise TypeError(f"Exporter takes an LlmobsConfig (llmobs.load_config(path) or "
                            f"llmobs.load_config_text(yaml)), not {type(config).__name__}")
        self.config = config
        self._running: RunningExporter | None = None

    async def start(self) -> Exporter:
        """Start everything the config enables; returns self. Raises RuntimeError if already started."""
        if self._running is not None:
            raise RuntimeError("this Exporter is already running")
        from llmobs.runtime import start_exporter

        self._running = await start_exporter(self.config)
        return self

    async def stop(self) -> None:
        """Stop the scrape loop and every server; a stopped (or never started) exporter stops at once."""
        running, self._running = self._running, None
        if running is not None:
            await running.stop()

    async def __aenter__(self) -> Exporter:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()

    def _require_running(self) -> RunningExporter:
        if self._running is None:
            raise RuntimeError("the Exporter is not running: use `async with Exporter(config)` or `await start()`")
        return self._running

    @property
    def running(self) -> bool:
        """Whether the exporter has been started and not stopped."""
        return self._running is not None

    @property
    def port(self) -> int:
        """The port the HTTP server is bound to (the one picked when the config says 0)."""
        return self._require_running().port

    @property
    def state(self) -> FleetState:
        """The last published state: every endpoint's signals and every target's health."""
        return self._require_running().holder.current

    def signals(self, model: str | None = None) -> tuple[ModelEndpointSignals, ...]:
        """The current signals, one per model and endpoint; only `model`'s when given."""
        state = self.state
        return state.signals if model is None else tuple(state.for_model(model))

    async def wait_for_signals(self, timeout: float = 30.0, model: str | None = None
                               ) -> tuple[ModelEndpointSignals, ...]:
        """Wait until a published state holds signals (of `model` when given) and return them.

        Signals need two scrapes of a target, so the first ones come one scrape interval after start.
        Raises TimeoutError after `timeout` seconds without any.
        """
        deadline = time.monotonic() + timeout
        poll = min(0.05, self.config.scrape.interval_seconds / 4)
        while not (found := self.signals(model)):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no signals{f' for {model!r}' if model else ''} within {timeout} s")
            await asyncio.sleep(poll)
        return found
