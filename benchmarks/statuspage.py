"""Status page benchmark: render the exporter's page for 1,000 endpoints with a full hour of history.

The page is rendered in a worker thread at most once per published state (never on the scrape loop), but its
CPU is the exporter's: the budget is 200 ms of CPU per render at 1,000 endpoints. The history is appended on
the publishing thread, so its per-cycle cost is measured too, and its memory (the ring buffers' payload, and
what tracemalloc sees allocated for the whole history).

Fleet: `--endpoints` endpoints over `--models` models, every endpoint with KV, queue, TTFT and TPOT values
that move, `--points` history points each (360 = one hour at the default 10 s spacing), one target per
endpoint (2 % down). Printed: the history's size, the record cost per cycle, the CPU per render (median and
max of `--renders`), the page's size; last line `ratio: X` = 0.2 s ÷ median render CPU (≥ 1 meets the budget).

    .venv/bin/python benchmarks/statuspage.py [--endpoints 1000] [--models 10] [--points 360] [--renders 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import tracemalloc

from llmobs.serving.statuspage import SignalHistory, StatusSources
from llmobs.serving.statuspage.render import render_fragment, render_page
from llmobs.serving.statuspage.view import build_view
from llmobs.signals.types import Attribution, Distribution, ModelEndpointSignals
from llmobs.state import FleetState, TargetHealth

SPACING = 10.0


def dist(p90: float) -> Distribution:
    return Distribution({0.5: p90 / 2, 0.9: p90, 0.99: p90 * 2}, p90 / 2, 100.0)


def endpoint_signals(model: str, endpoint: str, phase: float) -> ModelEndpointSignals:
    wave = 0.5 + 0.5 * math.sin(phase)
    return ModelEndpointSignals(
        attribution=Attribution(model, endpoint, f"node-{endpoint[-3:]}", "NVIDIA H100 80GB HBM3"),
        window_seconds=60.0, kv_cache_utilization=wave, kv_cache_utilization_max=wave,
        kv_cache_capacity_tokens=None, requests_running=20 * wave, requests_waiting=5 * wave,
        requests_waiting_by_reason={}, requests_swapped=None, request_rate=3 + 2 * wave, prompt_tokens_rate=0.0,
        generation_tokens_rate=0.0, preemption_rate=0.0, finished_rate_by_reason={}, prefix_cache_hit_ratio=0.3,
        ttft=dist(0.2 + wave), itl=dist(0.02 + 0.01 * wave), e2e_latency=dist(5.0), queue_time=dist(0.1),
        prompt_length=dist(500.0), generation_length=dist(200.0), lora_adapters_running=0, lora_adapters_waiting=0,
        totals={"ttft_slo_requests": 1000 * phase, "ttft_slo_good": 990 * phase})


def fleet_state(names: list[tuple[str, str]], t: float, step: int) -> FleetState:
    signals = tuple(endpoint_signals(m, e, step / 20 + i / 7) for i, (m, e) in enumerate(names))
    targets = tuple(TargetHealth(e, f"http://{e}/metrics", i % 50 != 0, t, 0.01,
                                 "" if i % 50 else "connection refused", "" if i % 50 else "connect",
                                 0 if i % 50 else 3) for i, (_, e) in enumerate(names))
    return FleetState(time=t, signals=signals, targets=targets, cycle_duration_seconds=0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--points", type=int, default=360)
    parser.add_argument("--renders", type=int, default=10)
    args = parser.parse_args()
    names = [(f"model-{i % args.models}", f"replica-{i:04d}") for i in range(args.endpoints)]
    history = SignalHistory(capacity=args.points, spacing_seconds=SPACING)
    t0 = 1_800_000_000.0
    record_cpu = []
    tracemalloc.start()
    state = fleet_state(names, t0, 0)
    for step in range(args.points):
        state = fleet_state(names, t0 + step * SPACING, step)
        started = time.process_time()
        history.record(state)
        record_cpu.append(time.process_time() - started)
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"history: {len(history)} endpoints × {args.points} points, ring buffers {history.nbytes() / 1e6:.1f} MB "
          f"(tracemalloc, history and the last state together: {traced / 1e6:.1f} MB)")
    print(f"record per published state (on the publishing thread): median "
          f"{statistics.median(record_cpu) * 1000:.2f} ms CPU, max {max(record_cpu) * 1000:.2f} ms")
    sources = StatusSources()
    now = state.time + 1
    cpu = []
    size = 0
    for _ in range(args.renders):
        started = time.process_time()
        view = build_view(state, history, sources, now=now)
        page = render_page(view, render_fragment(view))
        cpu.append(time.process_time() - started)
        size = len(page.encode())
    med = statistics.median(cpu)
    print(f"render ({args.endpoints} endpoints, {args.models} models): median {med * 1000:.1f} ms CPU, "
          f"max {max(cpu) * 1000:.1f} ms over {args.renders} renders; page {size / 1e6:.2f} MB")
    print(f"ratio: {0.2 / med:.2f}")


if __name__ == "__main__":
    main()
