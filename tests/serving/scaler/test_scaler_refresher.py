"""The scaler's refresher: a state the scrape loop publishes reaches the cache (and so every open
StreamIsActive) at once, not at the refresher's next poll."""

from __future__ import annotations

import asyncio
import time

from llmobs.serving.scaler.cache import SignalCache
from llmobs.serving.scaler.refresher import CacheRefresher
from llmobs.state import FleetState, StateHolder
from tests.factories import make_signals, make_state, scraped_target


def queued_state(model: str, waiting: float, now: float) -> FleetState:
    return make_state(make_signals(model, "e1", requests_waiting=waiting), targets=(scraped_target("e1", now),),
                      time=now)


def test_holder_tells_its_listeners_of_every_publish_until_they_stop_listening() -> None:
    holder = StateHolder()
    seen: list[FleetState] = []
    stop = holder.on_publish(lambda: seen.append(holder.current))
    first, second = queued_state("m", 0, 1.0), queued_state("m", 3, 2.0)
    holder.publish(first)
    holder.publish(second)
    assert seen == [first, second]  # called after the swap: the listener reads the new state
    stop()
    holder.publish(queued_state("m", 5, 3.0))
    assert seen == [first, second]
    stop()  # twice is harmless


async def test_a_published_queue_reaches_the_cache_without_waiting_for_a_poll() -> None:
    holder, cache, stop = StateHolder(), SignalCache(), asyncio.Event()
    # Polls an hour apart: only the publish itself can wake the refresher within the test's deadline.
    refresher = CacheRefresher(holder, cache, stale_after=3600, refresh_seconds=3600, poll_seconds=3600)
    task = asyncio.create_task(refresher.run(stop))
    first = await asyncio.wait_for(cache.wait_newer(0), 5)  # the initial build
    holder.publish(queued_state("m", 3, time.time()))
    fresh = await asyncio.wait_for(cache.wait_newer(first.version), 5)
    assert fresh.models["m"].totals[("queue_depth", "sum")] == 3.0
    stop.set()
    await asyncio.wait_for(task, 5)  # stop wakes it too, however long the poll
