"""Wall time of one live forecast refresh in the exporter (target: < 200 ms, off the scrape loop).

Usage: .venv/bin/python benchmarks/forecast_refresh.py [--models 4] [--refreshes 50]

A `StateHolder` is filled the way the scrape loop fills it: `--models` models, each with the default
2,880-point history (12 h at a 15 s scrape interval), the request rate taken from the real ServeGen
m-small trace (interpolated to 15 s; each model a different day). `ForecastService` (step 60 s, horizon
5 min, forecaster `auto`) refits once — timed separately, it runs every 10 min — then refreshes
`--refreshes` times. The figure is the p95 of a full refresh (all models). Last line: `ratio: X` with
X = 200 ms ÷ p95 (≥ 1 meets the target).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.forecast.demand import DEFAULT_TRACE_DIR, read_trace
from llmobs.forecast.service import ForecastConfig, ForecastService
from llmobs.signals.types import Attribution, Distribution, ModelEndpointSignals
from llmobs.state import FleetState, StateHolder

TARGET_S = 0.2
POINTS = 2880
SCRAPE_S = 15.0


def _signals(model: str, rate: float) -> ModelEndpointSignals:
    d = Distribution(quantiles={0.5: 0.1, 0.9: 0.2, 0.99: 0.4}, mean=0.12, count=rate)
    return ModelEndpointSignals(
        attribution=Attribution(model=model, endpoint=f"{model}:8000"), window_seconds=60,
        kv_cache_utilization=0.5, kv_cache_utilization_max=0.6, kv_cache_capacity_tokens=5e5,
        requests_running=8, requests_waiting=0, requests_waiting_by_reason={}, requests_swapped=None,
        request_rate=rate, prompt_tokens_rate=rate * 120, generation_tokens_rate=rate * 16, preemption_rate=0,
        finished_rate_by_reason={}, prefix_cache_hit_ratio=0.3, ttft=d, itl=d, e2e_latency=d, queue_time=d,
        prompt_length=d, generation_length=d, lora_adapters_running=0, lora_adapters_waiting=0,
    )


def main(argv: list[str] | None = None) -> int:
    """Fill a holder, refit, time refreshes, print figures and `ratio: X`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--refreshes", type=int, default=50)
    args = ap.parse_args(argv)
    rates = read_trace(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv").resample(SCRAPE_S, "linear")
    y = rates.request_rate.ffill().bfill().to_numpy()
    per_day = int(86400 / SCRAPE_S)
    holder = StateHolder(history_points=POINTS)
    t0 = 1_700_000_000.0
    models = [f"model-{i}" for i in range(args.models)]
    for k in range(POINTS):
        sigs = tuple(_signals(m, float(y[i * per_day + k]) / 100) for i, m in enumerate(models))
        holder.publish(FleetState(time=t0 + k * SCRAPE_S, signals=sigs))
    now = t0 + POINTS * SCRAPE_S
    registry = CollectorRegistry()
    cfg = ForecastConfig(step_seconds=60, horizon_seconds=300, capacity_per_replica=dict.fromkeys(models, 2.0))
    svc = ForecastService(holder, cfg, registry=registry, clock=lambda: now)
    t = time.perf_counter()
    svc.refit_once()
    refit_all = time.perf_counter() - t
    times = []
    for _ in range(args.refreshes):
        svc.refresh_once()
        times.append(svc.last_refresh_seconds)
    t = time.perf_counter()
    generate_latest(registry)
    collect_s = time.perf_counter() - t
    snap = svc.snapshot()
    p95 = float(np.quantile(times, 0.95))
    print(f"models: {len(models)}, history: {POINTS} points each ({POINTS * SCRAPE_S / 3600:g} h at {SCRAPE_S:g}s)")
    for m, fc in sorted(snap.items()):
        print(f"  {m}: {fc.forecaster}, point {fc.point:.2f} req/s, q{fc.quantile:g} {fc.upper:.2f}, "
              f"WAPE {fc.wape:.3f} (last value {fc.last_value_wape:.3f}), desired replicas {fc.desired_replicas}"
              + (f", fallback: {fc.fallback_reason}" if fc.fallback_reason else ""))
    print(f"refit (all models, every {cfg.refit_seconds:g}s, background): {refit_all * 1000:.0f} ms")
    print(f"refresh (all models): median {statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms over {len(times)} (target < {TARGET_S * 1000:g} ms)")
    print(f"collect() for /metrics: {collect_s * 1000:.2f} ms (reads the snapshot only)")
    print(f"ratio: {TARGET_S / p95:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
