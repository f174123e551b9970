"""The background loop that fills the scaler cache; the only code that reads `StateHolder` or a forecaster.

It wakes when the holder publishes a new `FleetState` (`StateHolder.on_publish`) and rebuilds the snapshot
at once — so a queue that appears in a scrape reaches every open StreamIsActive milliseconds after the
cycle publishes (benchmarks/freshness.py measured the 50 ms poll this replaced as a p50 of 24 ms) — and
also at least every `refresh_seconds`, so forecasts and staleness are re-evaluated even when the scrape
loop is stuck; as a backstop it also checks (cheaply, by identity) for a new state every `poll_seconds`.
Building runs in the refresher's own worker thread (not asyncio's shared default pool, which other
components may fill with slow work): a slow forecaster delays the next snapshot, never a gRPC answer, the
event loop or a push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from llmobs.serving.scaler.cache import SignalCache, Snapshot, build_snapshot
from llmobs.serving.scaler.provider import ForecastProvider
from llmobs.state import StateHolder

log = logging.getLogger("llmobs.scaler")


class CacheRefresher:
    def __init__(
        self, holder: StateHolder, cache: SignalCache, *, stale_after: float, refresh_seconds: float,
        known_models: Iterable[str] = (), forecast: ForecastProvider | None = None,
        horizons: Iterable[float] = (), poll_seconds: float = 0.05,
        on_publish: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.holder = holder
        self.cache = cache
        self.stale_after = stale_after
        self.refresh_seconds = refresh_seconds
        self.known_models = tuple(known_models)
        self.forecast = forecast
        self.horizons = tuple(horizons)
        self.poll_seconds = poll_seconds
        self.on_publish = on_publish
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmobs-scaler-refresh")

    def refresh(self) -> Snapshot:
        """Build from the holder's current state and publish (synchronously)."""
        snapshot = build_snapshot(self.holder.current, stale_after=self.stale_after, known_models=self.known_models,
                                  forecast=self.forecast, horizons=self.horizons)
        snapshot = self.cache.publish(snapshot)
        if self.on_publish is not None:
            self.on_publish(snapshot)
        return snapshot

    async def refresh_async(self) -> Snapshot:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.refresh)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        published = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed (the scaler stopping)
                loop.call_soon_threadsafe(published.set)

        async def wake_on_stop() -> None:
            await stop.wait()
            published.set()

        stop_listening = self.holder.on_publish(wake)
        stopping = asyncio.create_task(wake_on_stop())
        last_state = None
        last_build = 0.0
        try:
            while not stop.is_set():
                published.clear()  # before reading: a publish after the read wakes the wait below
                state = self.holder.current
                if state is not last_state or time.monotonic() - last_build >= self.refresh_seconds:
                    last_state, last_build = state, time.monotonic()
                    try:
                        await self.refresh_async()
                    except Exception:  # keep serving the previous snapshot; it goes stale and says so
                        log.exception("scaler cache refresh failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(published.wait(), timeout=self.poll_seconds)
        finally:
            stop_listening()
            stopping.cancel()
            self._executor.shutdown(wait=False)
