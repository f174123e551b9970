"""Cold starts measured by the scrape loop over a real socket: a replica that comes up is one observation of
`llmobs_replica_cold_start_seconds`, a replica that was only unreachable for a while is not another, a restart
is, and a replica already running when llmobs started is not a cold start at all."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmobs.pipeline import Pipeline
from llmobs.serving.collector import FleetCollector
from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import StaticTargetSource
from llmobs.state import FleetState, StateHolder
from tests.pageserver import PageServer, Reply

PAGE = """\
# TYPE process_start_time_seconds gauge
process_start_time_seconds {start}
vllm:num_requests_running{{engine="0",model_name="m"}} 1
vllm:num_requests_waiting{{engine="0",model_name="m"}} 0
vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} 0.1
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="m"}} {done}
"""
DOWN = Reply("", 503)


def cold_start_samples(state: FleetState) -> dict[tuple[str, str], tuple[float, float]]:
    """(start, stage) → (count, sum) of model m's cold-start histogram, read back from the exposition."""
    holder = StateHolder()
    holder.publish(state)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    out: dict[tuple[str, str], list[float]] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        if fam.name != "llmobs_replica_cold_start_seconds":
            continue
        for s in fam.samples:
            key = (s.labels["start"], s.labels["stage"])
            if s.name.endswith("_count"):
                out.setdefault(key, [0.0, 0.0])[0] = s.value
            elif s.name.endswith("_sum"):
                out.setdefault(key, [0.0, 0.0])[1] = s.value
    return {k: (v[0], v[1]) for k, v in out.items()}


async def test_start_blip_restart_and_reset_each_counted_as_what_they_are() -> None:
    t0 = time.time()
    first, second, third = t0 - 42.0, t0 - 7.0, t0 - 3.0
    # scrape n: 1 down (the replica is loading), 2-3 up, 4 down (a network blip), 5 up (same process),
    # 6 down, 7 up (a new process: restarted), 8 up with counters reset and a newer process (restarted between
    # two scrapes, never seen down)
    script = {1: DOWN, 2: (first, 10), 3: (first, 20), 4: DOWN, 5: (first, 30), 6: DOWN, 7: (second, 1),
              8: (third, 0)}

    def replica(n: int) -> str | Reply:
        step = script.get(n, (third, n))
        return step if isinstance(step, Reply) else PAGE.format(start=step[0], done=step[1])

    holder = StateHolder()
    async with PageServer({"r": replica}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("r")]), Scraper(), holder, watching_since=t0 - 60)
        counts = []
        for _ in range(8):
            state = await pipeline.run_cycle()
            counts.append(cold_start_samples(state).get(("process_start", "first_scrape"), (0.0, 0.0))[0])
        await pipeline.scraper.aclose()
    assert counts == [0, 1, 1, 1, 1, 1, 2, 3]
    count, total = cold_start_samples(state)[("process_start", "first_scrape")]
    assert count == 3
    assert 52.0 <= total < 52.0 + 5.0  # 42 s + 7 s + 3 s, plus the test's own seconds
    summary = state.cold_starts["m"]
    assert summary.horizon_seconds is not None and 42.0 <= summary.horizon_seconds < 47.0


async def test_replicas_running_before_llmobs_started_are_not_cold_starts() -> None:
    long_ago = time.time() - 86_400
    async with PageServer({"old": lambda n: PAGE.format(start=long_ago, done=n)}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("old")]), Scraper(), StateHolder())
        for _ in range(2):
            state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    assert state.targets[0].up and state.cold_starts == {} and cold_start_samples(state) == {}


async def test_a_start_time_from_the_future_is_rejected_and_counted_not_exported_as_a_cold_start() -> None:
    future = time.time() + 3_600  # the replica's clock is an hour ahead
    async with PageServer({"skewed": lambda n: PAGE.format(start=future, done=n)}) as server:
        pipeline = Pipeline(StaticTargetSource([server.target("skewed")]), Scraper(), StateHolder())
        state = await pipeline.run_cycle()
        await pipeline.scraper.aclose()
    assert state.targets[0].up
    assert dict(state.cold_starts["m"].rejected) == {"clock_skew": 1} and state.cold_starts["m"].histograms == ()
    holder = StateHolder()
    holder.publish(state)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    assert 'llmobs_replica_cold_starts_rejected_total{model="m",reason="clock_skew"} 1.0' in \
        generate_latest(registry).decode()
