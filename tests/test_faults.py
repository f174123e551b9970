"""Fault injection at small scale: 40 simulated vLLM replicas of which 10 % are dead, 10 % slower than the
timeout, 5 % answer garbage and 5 % restart every two seconds (the simulator in its own thread and
loop), scraped for a few seconds.

The same harness as benchmarks/soak.py (which runs it for 30 minutes and watches memory): every healthy
target stays up with exact reset-adjusted request totals, faulty ones are down with the right error kind,
restarts are counted and never give a negative rate, and a slow target does not delay the cycle beyond
the timeout."""

from __future__ import annotations

import asyncio
import contextlib

from benchmarks.soak import build, check, serve_in_thread, stop_thread_server, targets_for
from llmobs.pipeline import Pipeline
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.state import StateHolder

TIMEOUT = 1.0


async def test_healthy_targets_stay_exact_among_dead_slow_garbage_and_restarting_ones() -> None:
    faulty, faults = build(40, slow_seconds=TIMEOUT * 3, restart_period=2.0, speedup=20.0)
    assert sorted(faults.values()).count("dead") == 4 and list(faults.values()).count("restart") == 2
    faulty.huge_garbage = False  # 100k-line pages are tests/sources/test_cardinality.py's; here they only add time
    port, thread, servers = serve_in_thread(faulty.app())
    try:
        pipeline = Pipeline(StaticTargetSource(targets_for(faulty.fleet, faults, f"http://127.0.0.1:{port}")),
                            Scraper(timeout_seconds=TIMEOUT), StateHolder(), window_seconds=10)
        durations = []
        for _ in range(10):
            state = await pipeline.run_cycle()
            durations.append(state.cycle_duration_seconds)
            await asyncio.sleep(0.25)
        served = faulty.served()  # the loop is idle: the replicas' counters hold still
        assert check(pipeline, faults, served) == []
        health = {h.endpoint: h for h in state.targets}
        restarting = [n for n, k in faults.items() if k == "restart"]
        assert sum(faulty.restarts.values()) >= len(restarting)
        assert all(health[n].counter_resets >= 1 for n in restarting if faulty.restarts.get(n))
        healthy = [n for n in health if n not in faults]
        assert len(healthy) == 28 and all(served[n] > 0 for n in healthy)
        assert max(durations) < TIMEOUT + 1.0  # hung targets cost one timeout, concurrently
        await pipeline.scraper.aclose()
    finally:
        stop_thread_server(thread, servers)


async def test_a_keepalive_connection_closed_as_it_is_reused_is_retried_once() -> None:
    """uvicorn (and so vLLM) closes idle keep-alive connections after 5 s, the default scrape interval, so a
    scrape regularly reuses a connection the server is closing. This server answers the first request on
    each connection and closes the connection on the second without answering: every scrape must still
    succeed (one retry on a fresh connection), not count a `connect` error."""
    body = b'vllm:num_requests_running{model_name="m"} 1\n'
    connections = 0
    handlers: list[asyncio.Task | None] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        handlers.append(asyncio.current_task())
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the reuse: close without a response
        except asyncio.IncompleteReadError:
            pass  # the scraper closed this connection first (its last one, at aclose)
        finally:
            # Always: a connection the client closed first stays half-open (asyncio keeps it for writing), and
            # an unclosed one outlives the test's event loop (ResourceWarning: unclosed transport).
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scraper = Scraper(timeout_seconds=2.0)
    async with server:
        try:
            outcomes = [await scraper.scrape(Target(f"http://127.0.0.1:{port}/metrics", "ka")) for _ in range(4)]
        finally:
            await scraper.aclose()
        await asyncio.wait_for(asyncio.gather(*filter(None, handlers)), 5)  # each saw the close, closed its end
    assert [o.error_kind for o in outcomes] == ["", "", "", ""], [o.error for o in outcomes]
    assert connections >= 3  # the closed connections were replaced, not the error swallowed
