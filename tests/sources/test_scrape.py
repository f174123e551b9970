"""Scraping and the pipeline under bad input: every failure is classified and counted, and healthy targets
keep producing signals. Targets are real loopback servers (tests/pageserver.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

import pytest

from llmobs.pipeline import Pipeline
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.state import StateHolder
from tests.pageserver import PageServer, Reply

GOOD = """\
vllm:num_requests_running{engine="0",model_name="m"} 2
vllm:num_requests_waiting{engine="0",model_name="m"} 1
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} %d
"""

BAD = {
    "good": lambda n: GOOD % (n * 10),
    "err500": lambda n: Reply("Internal Server Error", 500),
    "html": lambda n: Reply("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    "empty": lambda n: Reply("", content_type="text/plain"),
    "garbage": lambda n: Reply("{{{ not metrics at all\n\x00\x01 !!\n", content_type="text/plain"),
    "huge": lambda n: Reply("x" * 200_000, content_type="text/plain"),
    "hang": lambda n: Reply(GOOD % 1, delay=10),
}


def scraper_for_bad() -> Scraper:
    return Scraper(timeout_seconds=0.5, max_response_bytes=100_000)


@pytest.mark.parametrize(("name", "kind"), [
    ("err500", "http_status"), ("html", "content_type"), ("empty", "empty"), ("garbage", "parse"),
    ("huge", "too_large"), ("hang", "timeout"),
])
async def test_each_failure_has_its_kind(name: str, kind: str) -> None:
    scraper = scraper_for_bad()
    async with PageServer(BAD) as server:
        outcome = await scraper.scrape(server.target(name))
        await scraper.aclose()
    assert not outcome.ok
    assert outcome.error_kind == kind, outcome.error
    assert outcome.error


async def test_connection_refused_is_connect() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    scraper = Scraper(timeout_seconds=1.0)
    outcome = await scraper.scrape(Target(f"http://127.0.0.1:{port}/metrics", "refused"))
    await scraper.aclose()
    assert outcome.error_kind == "connect"


async def test_truncated_page_keeps_complete_lines() -> None:
    text = (GOOD % 5) + 'vllm:num_requests_running{engine="0",model_na'
    scraper = Scraper()
    async with PageServer({"x": lambda n: Reply(text, content_type="text/plain")}) as server:
        outcome = await scraper.scrape(server.target("x"))
        await scraper.aclose()
    assert outcome.ok and outcome.page is not None
    assert len(outcome.page.samples) == 4 and sum(outcome.page.skipped.values()) == 1


async def test_pipeline_marks_bad_targets_down_and_keeps_good_signals() -> None:
    holder = StateHolder()
    async with PageServer(BAD) as server:
        targets = [server.target(name, {"node": f"n-{name}"}) for name in BAD]
        pipeline = Pipeline(StaticTargetSource(targets), scraper_for_bad(), holder, window_seconds=60)
        for _ in range(3):
            state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    health = {h.endpoint: h for h in state.targets}
    assert health["good"].up and health["good"].consecutive_failures == 0
    for name in BAD:
        if name != "good":
            assert not health[name].up
            assert health[name].consecutive_failures == 3
            assert sum(health[name].errors_by_kind.values()) == 3
            assert health[name].last_error
    [good] = state.signals
    assert good.attribution.endpoint == "good" and good.attribution.node == "n-good"
    assert good.request_rate > 0 and good.requests_waiting == 1


async def test_target_recovers_after_failures() -> None:
    holder = StateHolder()
    async with PageServer({"flaky": lambda n: Reply("", 503) if n <= 2 else GOOD % 1}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("flaky")]), Scraper(), holder)
        states = [await pipeline.run_cycle() for _ in range(3)]
        await pipeline.scraper.aclose()
    assert [s.targets[0].up for s in states] == [False, False, True]
    assert states[-1].targets[0].errors_by_kind == {"http_status": 2}
    assert states[-1].targets[0].consecutive_failures == 0


async def test_non_vllm_page_is_a_parse_failure_not_silent() -> None:
    async with PageServer({"ne": lambda n: "process_cpu_seconds_total 1\n"}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("ne")]), Scraper(), StateHolder())
        state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    assert not state.targets[0].up and state.targets[0].last_error_kind == "parse"


async def test_removed_target_disappears_from_state() -> None:
    class Source:
        def __init__(self, items: list[Target]) -> None:
            self.items = items

        def targets(self):
            return self.items

    async with PageServer({"good": lambda n: GOOD % 3, "good2": lambda n: GOOD % 3}) as server:
        source = Source(server.targets())
        pipeline = Pipeline(source, Scraper(), StateHolder())
        await pipeline.run_cycle()
        source.items = source.items[:1]
        state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    assert [t.endpoint for t in state.targets] == ["good"]


async def test_missing_expected_series_logged_once_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    async with PageServer({"old": lambda n: GOOD % 1}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("old")]), Scraper(), StateHolder())
        with caplog.at_level("WARNING", logger="llmobs.pipeline"):
            for _ in range(3):
                state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    drift = [r for r in caplog.records if "expected vLLM series" in r.getMessage()]
    assert len(drift) == 1 and "ttft" in drift[0].getMessage()
    assert "ttft" in state.targets[0].missing_series and "kv_cache_usage" not in state.targets[0].missing_series


def test_gc_policy_freezes_between_cycles_and_restores_the_collector() -> None:
    """The `llmobs run` process's cycle hook: after the warm-up cycles what survives is frozen so that
    collections during cycles skip it; periodically everything is unfrozen and collected; stopping
    restores the thresholds and unfreezes."""
    import gc

    from llmobs.serving.gc import GcPolicy

    before = gc.get_threshold()
    policy = GcPolicy(warmup_cycles=2, freeze_every=3, full_every=6)
    policy.start()
    try:
        assert gc.get_threshold()[0] >= before[0]
        policy.after_cycle(1)
        assert gc.get_freeze_count() == 0 and policy.collections == 0
        policy.after_cycle(2)
        frozen = gc.get_freeze_count()
        assert frozen > 0 and policy.collections == 1
        policy.after_cycle(3)
        assert policy.collections == 1
        policy.after_cycle(5)
        assert policy.collections == 2
        policy.after_cycle(8)  # full: unfreeze, collect, freeze again
        assert policy.collections == 3 and gc.get_freeze_count() > 0
    finally:
        policy.stop()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


async def test_the_cycle_hook_runs_at_the_end_of_the_idle_time_not_on_the_publish() -> None:
    """A full collection can take a second at 1,000 targets: run right after a publish it delayed the state's
    readers (the scaler's push to KEDA); at the end of the idle time it only delays the next scrape's start."""
    events: list[tuple[str, float]] = []

    class Hook:
        def start(self) -> None:
            pass

        def after_cycle(self, cycles: int) -> None:
            events.append(("hook", time.monotonic()))

        def stop(self) -> None:
            pass

    holder = StateHolder()
    holder.on_publish(lambda: events.append(("publish", time.monotonic())))
    stop = asyncio.Event()
    async with PageServer({"good": lambda n: GOOD % n}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("good")]), Scraper(), holder, cycle_hook=Hook())
        task = asyncio.create_task(pipeline.run_forever(0.3, stop))
        while sum(kind == "hook" for kind, _ in events) < 2:
            await asyncio.sleep(0.02)
        stop.set()
        await task
        await pipeline.scraper.aclose()
    kinds = [kind for kind, _ in events]
    assert kinds[:4] == ["publish", "hook", "publish", "hook"]
    first_publish, first_hook, second_publish = events[0][1], events[1][1], events[2][1]
    assert first_hook - first_publish > 0.2  # after the idle wait
    assert second_publish - first_hook < 0.2  # and just before the next cycle


def test_library_use_leaves_the_process_garbage_collector_alone() -> None:
    """Importing llmobs and running an exporter in one's own process (`start_exporter`, as a library user, a
    test or a benchmark does) must not freeze the heap or change the collector's thresholds: those are
    settings of the process, which only `llmobs run` owns."""
    import gc
    import subprocess
    import sys

    code = (
        "import gc, asyncio\n"
        "gc.set_threshold(123, 4, 5)\n"
        "import llmobs, llmobs.runtime, llmobs.pipeline\n"
        "from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig\n"
        "from llmobs.runtime import start_exporter\n"
        "from llmobs.sources.targets import StaticTargetSource, Target\n"
        "async def main():\n"
        "    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.02, timeout_seconds=0.2),\n"
        "                       server=ServerConfig(host='127.0.0.1', port=0))\n"
        "    exporter = await start_exporter(cfg, StaticTargetSource([Target('http://127.0.0.1:9/metrics', 'x')]))\n"
        "    while exporter.pipeline.cycles < 5:\n"
        "        await asyncio.sleep(0.01)\n"
        "    print(gc.get_threshold(), gc.get_freeze_count())\n"
        "    await exporter.stop()\n"
        "asyncio.run(main())\n"
        "print(gc.get_threshold(), gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["(123, 4, 5) 0", "(123, 4, 5) 0"], out.stdout + out.stderr
    assert gc.get_freeze_count() == 0


async def test_scrapes_start_one_host_at_a_time_in_turn() -> None:
    """Three hosts (one loopback server each) behind one scraper that admits a single scrape at a time: the
    requests arrive one per host in turn, not all of the first host's before the second's."""
    arrivals: list[str] = []

    def page(name: str) -> Callable[[int], str]:
        def answer(n: int) -> str:
            arrivals.append(name)
            return GOOD % n
        return answer

    layout = {"1": 3, "2": 3, "3": 1}
    async with contextlib.AsyncExitStack() as stack:
        servers = {h: await stack.enter_async_context(PageServer({f"{h}-{i}": page(f"{h}-{i}") for i in range(n)}))
                   for h, n in layout.items()}
        targets = [servers[h].target(f"{h}-{i}") for h, n in layout.items() for i in range(n)]
        scraper = Scraper(max_concurrency=1)
        await Pipeline(StaticTargetSource(targets), scraper, StateHolder()).run_cycle()
        assert arrivals == ["1-0", "2-0", "3-0", "1-1", "2-1", "1-2", "2-2"]
        arrivals.clear()  # one target per host, as with plain vLLM pods: the list order
        solo = [servers["3"].target("3-0"), servers["1"].target("1-0"), servers["2"].target("2-0")]
        await Pipeline(StaticTargetSource(solo), scraper, StateHolder()).run_cycle()
        assert arrivals == ["3-0", "1-0", "2-0"]
        await scraper.aclose()


async def test_the_content_type_decides_how_a_page_is_read() -> None:
    """The same bytes as OpenMetrics (by Content-Type): `# EOF` ends the page and timestamps are seconds; as
    the text format: `# EOF` is a comment. A truncated OpenMetrics page (no `# EOF`) is not used at all."""
    from tests.pageserver import OPENMETRICS

    body = "# TYPE g gauge\ng 1 1700000000\n# EOF\nlate 2\n"
    pages = {
        "om": lambda n: Reply(body, content_type=OPENMETRICS),
        "text": lambda n: Reply(body, content_type="text/plain; version=0.0.4"),
        "cut": lambda n: Reply("# TYPE g gauge\ng 1\ng2 ", content_type=OPENMETRICS),
    }
    scraper = Scraper()
    async with PageServer(pages) as server:
        om, text, cut = [await scraper.scrape(server.target(name)) for name in ("om", "text", "cut")]
        await scraper.aclose()
    assert om.page is not None and text.page is not None
    assert [(s.name, s.timestamp_ms) for s in om.page.samples] == [("g", 1700000000000.0)]
    assert om.page.skipped == {"after_eof": 1}
    assert [(s.name, s.timestamp_ms) for s in text.page.samples] == [("g", 1700000000.0), ("late", None)]
    assert text.page.skipped == {}
    assert not cut.ok and cut.error_kind == "parse" and "missing_eof" in cut.error


async def test_a_contradicted_role_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A target configured as a prefill node whose page shows it receiving prompt KV from another instance."""
    def page(n: int) -> str:
        by_source = 'vllm:prompt_tokens_by_source_total{engine="0",model_name="m",source="%s"} %d\n'
        return GOOD % n + by_source % ("local_compute", n) + by_source % ("external_kv_transfer", 100 * n)

    async with PageServer({"p": page}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("p", {"role": "prefill"})]), Scraper(), StateHolder())
        with caplog.at_level("WARNING", logger="llmobs.pipeline"):
            for _ in range(4):
                state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    logged = [r.getMessage() for r in caplog.records if "disaggregation role" in r.getMessage()]
    assert len(logged) == 1 and "'prefill'" in logged[0]
    [signals] = state.signals
    assert signals.disaggregation_role == "unknown" and signals.totals["disaggregation_role_conflicts"] == 3.0


async def test_a_url_no_client_can_parse_is_one_target_down_not_a_failed_cycle() -> None:
    """A discovered pod's port of 99999 or an unclosed IPv6 bracket raised ValueError from Scraper.forget, and
    every scrape cycle failed for every target."""
    from llmobs.sources.scrape import Scraper
    from llmobs.sources.targets import Target

    scraper = Scraper(timeout_seconds=1)
    try:
        bad = ["http://127.0.0.1:99999/metrics", "http://[::1/metrics", "http://127.0.0.1:-5/metrics"]
        scraper.forget(set(bad))  # no exception
        for url in bad:
            outcome = await scraper.scrape(Target(url, "bad"))
            assert outcome.error is not None and "invalid URL" in outcome.error
    finally:
        await scraper.aclose()
