"""Scraping and the pipeline under bad input: every failure is classified and counted, and healthy targets
keep producing signals. Real sockets are used where the failure is a network one."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from llmobs.pipeline import Pipeline
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource, Target
from llmobs.state import StateHolder

GOOD = """\
vllm:num_requests_running{engine="0",model_name="m"} 2
vllm:num_requests_waiting{engine="0",model_name="m"} 1
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} %d
"""


def page_transport(pages: dict[str, httpx.Response | None]) -> httpx.MockTransport:
    counter = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        response = pages[request.url.host]
        if response is None:
            await asyncio.sleep(10)
        counter["n"] += 1
        if request.url.host == "good":
            return httpx.Response(200, text=GOOD % (counter["n"] * 10),
                                  headers={"content-type": "text/plain; version=0.0.4"})
        return response  # type: ignore[return-value]

    return httpx.MockTransport(handler)


BAD = {
    "good": httpx.Response(200),
    "err500": httpx.Response(500, text="Internal Server Error"),
    "html": httpx.Response(200, text="<html><body>502 Bad Gateway</body></html>",
                           headers={"content-type": "text/html"}),
    "empty": httpx.Response(200, text="", headers={"content-type": "text/plain"}),
    "garbage": httpx.Response(200, text="{{{ not metrics at all\n\x00\x01 !!\n",
                              headers={"content-type": "text/plain"}),
    "huge": httpx.Response(200, text="x" * 200_000, headers={"content-type": "text/plain"}),
    "hang": None,
}


@pytest.fixture
def scraper() -> Scraper:
    return Scraper(timeout_seconds=0.5, max_response_bytes=100_000, transport=page_transport(BAD))


@pytest.mark.parametrize(("host", "kind"), [
    ("err500", "http_status"), ("html", "content_type"), ("empty", "empty"), ("garbage", "parse"),
    ("huge", "too_large"), ("hang", "timeout"),
])
async def test_each_failure_has_its_kind(scraper: Scraper, host: str, kind: str) -> None:
    outcome = await scraper.scrape(Target(f"http://{host}/metrics", host))
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
    scraper = Scraper(transport=httpx.MockTransport(
        lambda r: httpx.Response(200, text=text, headers={"content-type": "text/plain"})))
    outcome = await scraper.scrape(Target("http://x/metrics", "x"))
    assert outcome.ok and outcome.page is not None
    assert len(outcome.page.samples) == 4 and sum(outcome.page.skipped.values()) == 1


async def test_pipeline_marks_bad_targets_down_and_keeps_good_signals(scraper: Scraper) -> None:
    targets = [Target(f"http://{h}/metrics", h, {"node": f"n-{h}"}) for h in BAD]
    holder = StateHolder()
    pipeline = Pipeline(StaticTargetSource(targets), scraper, holder, window_seconds=60)
    for _ in range(3):
        state = await pipeline.run_cycle()
    health = {h.endpoint: h for h in state.targets}
    assert health["good"].up and health["good"].consecutive_failures == 0
    for host in BAD:
        if host != "good":
            assert not health[host].up
            assert health[host].consecutive_failures == 3
            assert sum(health[host].errors_by_kind.values()) == 3
            assert health[host].last_error
    [good] = state.signals
    assert good.attribution.endpoint == "good" and good.attribution.node == "n-good"
    assert good.request_rate > 0 and good.requests_waiting == 1


async def test_target_recovers_after_failures() -> None:
    responses = iter([httpx.Response(503), httpx.Response(503)])

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return next(responses)
        except StopIteration:
            return httpx.Response(200, text=GOOD % 1, headers={"content-type": "text/plain"})

    holder = StateHolder()
    pipeline = Pipeline(StaticTargetSource([Target("http://flaky/metrics", "flaky")]),
                        Scraper(transport=httpx.MockTransport(handler)), holder)
    states = [await pipeline.run_cycle() for _ in range(3)]
    assert [s.targets[0].up for s in states] == [False, False, True]
    assert states[-1].targets[0].errors_by_kind == {"http_status": 2}
    assert states[-1].targets[0].consecutive_failures == 0


async def test_non_vllm_page_is_a_parse_failure_not_silent() -> None:
    scraper = Scraper(transport=httpx.MockTransport(
        lambda r: httpx.Response(200, text="process_cpu_seconds_total 1\n", headers={"content-type": "text/plain"})))
    pipeline = Pipeline(StaticTargetSource([Target("http://node-exporter/metrics", "ne")]), scraper, StateHolder())
    state = await pipeline.run_cycle()
    assert not state.targets[0].up and state.targets[0].last_error_kind == "parse"


async def test_removed_target_disappears_from_state() -> None:
    class Source:
        def __init__(self) -> None:
            self.items = [Target("http://good/metrics", "good"), Target("http://good2/metrics", "good2")]

        def targets(self):
            return self.items

    source = Source()
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, text=GOOD % 3, headers={"content-type": "text/plain"}))
    pipeline = Pipeline(source, Scraper(transport=transport), StateHolder())
    await pipeline.run_cycle()
    source.items = source.items[:1]
    state = await pipeline.run_cycle()
    assert [t.endpoint for t in state.targets] == ["good"]


async def test_missing_expected_series_logged_once_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, text=GOOD % 1, headers={"content-type": "text/plain"}))
    pipeline = Pipeline(StaticTargetSource([Target("http://old-vllm/metrics", "old")]),
                        Scraper(transport=transport), StateHolder())
    with caplog.at_level("WARNING", logger="llmobs.pipeline"):
        for _ in range(3):
            state = await pipeline.run_cycle()
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


def test_scrapes_start_one_host_at_a_time_in_turn() -> None:
    from llmobs.pipeline import _round_robin_by_host

    targets = [Target(f"http://h{h}:8000/replicas/{i}/metrics", f"{h}-{i}") for h in (1, 2) for i in range(3)]
    targets.append(Target("https://h3/metrics", "3"))
    order = _round_robin_by_host(targets)
    assert sorted(order) == list(range(len(targets)))
    assert [targets[i].name for i in order] == ["1-0", "2-0", "3", "1-1", "2-1", "1-2", "2-2"]
    solo = [Target(f"http://pod-{i}:8000/metrics", str(i)) for i in range(4)]
    assert _round_robin_by_host(solo) == [0, 1, 2, 3]
