"""Time every NVML call llmobs makes on a real GPU, and whole collections, serial and per-device parallel.

Why: benchmarks/nvml.py projects an 8-GPU node from *assumed* driver latencies (no GPU where CI runs).
This script measures those latencies on real hardware, so the projection can be rerun with them:
``benchmarks/nvml.py --call-ms <median> --pcie-ms <PCIe median>``. Needs an NVIDIA driver.

Run: ``PYTHONPATH=src python3 scripts/nvml_call_latency.py [--rounds 30] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from llmobs.sources.gpu.nvml import NvmlLib, load_pynvml
from llmobs.sources.gpu.reader import NvmlReader


class TimedNvml:
    """Wraps the real binding: every `nvml*` call is timed on the wall clock, per function name."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._lib, name)
        if not (name.startswith("nvml") and callable(target)):
            return target

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                self.seconds[name].append(time.perf_counter() - start)

        return timed


def collection_ms(reader: NvmlReader, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        reading = reader.collect()
        out.append((time.perf_counter() - start) * 1000)
        if not reading.nvml_up:
            raise SystemExit("NVML is not up: no driver, or no GPU visible")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    timed = TimedNvml(load_pynvml())
    factory: Callable[[], NvmlLib] = lambda: timed  # noqa: E731
    result: dict[str, Any] = {}
    for parallel in (False, True):
        reader = NvmlReader(factory, parallel=parallel, rediscover_seconds=3600)
        collection_ms(reader, 2)  # discovery, event sets, NotSupported learnt
        timed.seconds.clear()
        ms = collection_ms(reader, args.rounds)
        per_call = {name: {"calls_per_collection": len(s) / args.rounds,
                           "median_us": statistics.median(s) * 1e6, "max_us": max(s) * 1e6}
                    for name, s in sorted(timed.seconds.items())}
        reading = reader.collect()
        reader.close()
        mode = "parallel" if parallel else "serial"
        result[f"{mode}_collection_ms"] = {"median": statistics.median(ms), "max": max(ms)}
        if not parallel:
            result["calls"] = per_call
            result["devices"] = [d.name for d in reading.devices]
            result["driver_version"] = reading.driver_version
    calls = result["calls"]
    print(f"driver {result['driver_version']}, devices: {', '.join(result['devices'])}")
    print(f"{'NVML function':48} {'calls/coll':>10} {'median us':>10} {'max us':>10}")
    for name, c in calls.items():
        print(f"{name:48} {c['calls_per_collection']:10.1f} {c['median_us']:10.1f} {c['max_us']:10.1f}")
    others = [c["median_us"] for n, c in calls.items() if n != "nvmlDeviceGetPcieThroughput"]
    pcie = calls.get("nvmlDeviceGetPcieThroughput", {}).get("median_us")
    result["median_call_us_excluding_pcie"] = statistics.median(others) if others else None
    typical = result["median_call_us_excluding_pcie"]
    print(f"median of per-function medians (PCIe throughput excluded): {typical:.1f} us; "
          f"PCIe throughput: {pcie if pcie is None else round(pcie, 1)} us")
    for mode in ("serial", "parallel"):
        r = result[f"{mode}_collection_ms"]
        print(f"{mode:8} collection: median {r['median']:.2f} ms, max {r['max']:.2f} ms ({args.rounds} rounds)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
