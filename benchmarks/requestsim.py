"""Speed of the request-level fleet simulator: simulated requests per wall-clock second.

Usage: PYTHONPATH=src .venv/bin/python benchmarks/requestsim.py [--compress 20] [--repeat 5] [--replicas 10] [--runs 3]

Workload: the Azure 2023 conversation trace (19,366 requests, their own prompt and output lengths), played
`--repeat` times back to back and `--compress` times faster (×20 ≈ 110 req/s). Fleet: Llama-3.1-8B on
H100 (the bundled profile; KV blocks as `llmobs forecast capacity` computes them), starting at
`--replicas`, scraped every 15 s of virtual time — every scrape renders each ready replica's vLLM page
and reads it as the exporter reads a target (warm TextParser, normalize, SignalTracker) — and resized every
15 s by a small controller that reads only those signals (requests running + waiting per replica towards
32, at least 4), so scaling, cold starts (120 s) and drains are all exercised. Each routing is timed
`--runs` times (the fastest counts; the simulated results are identical across runs); the target is 50,000
simulated requests/s.
The last line is `ratio: X` = the least-loaded (default) run's requests/s ÷ 50,000.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from llmobs.simulate import ControlView, EngineConfig, FleetConfig, load_profile, load_workload, simulate

TARGET = 50_000
TRACE = Path(__file__).resolve().parents[1] / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"


def controller(view: ControlView) -> int | None:
    """Keep ~32 requests in each ready replica (running + waiting, as scraped); never below 4; scale in
    only when half the fleet would do. Exercises the paths, it is not one of the compared policies."""
    if not view.loads:
        return None
    load = sum(r.concurrency for r in view.loads)
    want = max(4, math.ceil(load / 32))
    current = view.ready + view.starting
    return want if want > current or want < 0.5 * current else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compress", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per routing; the fastest counts")
    args = ap.parse_args()
    profile = load_profile("llama-3.1-8b-h100")
    capacity = profile.capacity(context_tokens=32768)
    engine = EngineConfig(kv_blocks=capacity.num_blocks, block_size=capacity.block_size, max_model_len=32768)
    workload = load_workload(TRACE).repeated(args.repeat).compressed(args.compress)
    print(f"workload: {len(workload):,} requests over {workload.arrival[-1]:,.0f} s virtual "
          f"({len(workload) / workload.arrival[-1]:,.0f} req/s); profile {profile.name}; "
          f"{capacity.num_blocks:,} KV blocks per replica")
    speed = {}
    for routing in ("round_robin", "least_loaded"):
        config = FleetConfig(engine, profile, model="llama-3.1-8b", initial_replicas=args.replicas,
                             max_replicas=64, routing=routing)
        walls, cpus = [], []
        for _ in range(args.runs):  # a shared machine is noisy: the fastest run is the least disturbed
            t0, c0 = time.perf_counter(), time.process_time()
            result = simulate(workload, config, controller)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        wall = min(walls)
        speed[routing] = len(result) / wall
        ttft = result.ttft
        print(f"{routing:>12}: {len(result):,} requests in {wall:.2f} s wall (best of {len(walls)}) = "
              f"{speed[routing]:,.0f} req/s ({len(result) / min(cpus):,.0f} per CPU-second); "
              f"{result.steps:,} engine steps; unfinished {result.unfinished}; "
              f"TTFT p50 {np.nanpercentile(ttft, 50):.3f} s p99 {np.nanpercentile(ttft, 99):.3f} s; "
              f"attainment(TTFT≤1s, TPOT≤50ms) {result.attainment(1.0, 0.05):.3f}; "
              f"{result.gpu_hours:.2f} GPU-h; replicas {min(t[1] + t[2] for t in result.replica_timeline)}–"
              f"{max(t[1] + t[2] for t in result.replica_timeline)}")
    print(f"ratio: {speed['least_loaded'] / TARGET:.3f}")


if __name__ == "__main__":
    main()
