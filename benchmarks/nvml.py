"""NVML collection time for 8 GPUs (target: < 50 ms per collection), against the NVML double.

There is no GPU where this runs, so the figure cannot be a hardware measurement. What it measures, and
what it assumes:

- **Measured:** NVML calls per steady-state collection (counted by the double: NotSupported memo,
  one utilization call for two rows, one field-values call per NVLink field), and llmobs' own Python
  time per collection with zero-latency calls.
- **Assumed (stated, not measured):** each NVML call costs `--call-ms` of driver time (default 0.1 ms,
  an ioctl round trip into the resource manager), except `nvmlDeviceGetPcieThroughput`, which NVML
  documents as sampling a byte counter over 20 ms. Measured on one H200 (driver 580,
  docs/hardware/h200-2026-11-30/nvml-latency.txt): 4-33 us per call (median 7.5 us), 20.9 ms per PCIe
  read, so the default is cautious; `--call-ms 0.0075 --pcie-ms 20.9` reruns with the measured figures.
  The double sleeps that long inside each call, and the collection is timed on the wall clock, serially
  and with llmobs' per-device parallel reads.

The node: 8 × H100 SXM (18 active NVLinks each), 2 compute processes per GPU, ECC on, MIG off.
The last line is ``ratio: X`` = serial ÷ parallel wall time with the same assumed latencies.

Run: ``.venv/bin/python benchmarks/nvml.py`` (a real-hardware run is a `hardware` test's job).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from llmobs.sources.gpu.fake import FakeGpu, FakeNvml  # noqa: E402
from llmobs.sources.gpu.nvml import NvmlLib  # noqa: E402
from llmobs.sources.gpu.reader import NvmlReader  # noqa: E402

BUDGET_MS = 50.0


def node(latency_s: dict[str, float] | None = None, default_latency_s: float = 0.0) -> FakeNvml:
    gpus = [FakeGpu(f"GPU-{i:02d}", nvlinks=18, processes=[(1000 + i, 30 * 2**30), (2000 + i, 2**30)], mig=[])
            for i in range(8)]
    return FakeNvml(gpus, latency_s=latency_s, default_latency_s=default_latency_s)


def fixed(lib: FakeNvml) -> Callable[[], NvmlLib]:
    return lambda: lib


def timed(reader: NvmlReader, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        reading = reader.collect()
        out.append((time.perf_counter() - t) * 1000)
        assert reading.nvml_up and len(reading.device_up) == 8 and all(ok for _, ok in reading.device_up)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--call-ms", type=float, default=0.1, help="assumed driver time per NVML call")
    ap.add_argument("--pcie-ms", type=float, default=20.0, help="nvmlDeviceGetPcieThroughput sampling window")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    fake = node()
    reader = NvmlReader(lambda: fake, parallel=False)  # the factory is called once, at the first collect()
    reader.collect()  # first collection: discovery, NVLink states, event sets, NotSupported learnt
    before = fake.calls.copy()
    reader.collect()
    steady = fake.calls - before
    print(f"NVML calls per steady-state collection, 8 GPUs: {sum(steady.values())} "
          f"({', '.join(f'{k} {v}' for k, v in steady.most_common(6))}, ...)")
    overhead = timed(reader, args.rounds * 3)
    print(f"llmobs Python time per collection (zero-latency double): median {statistics.median(overhead):.2f} ms")

    results = {}
    for parallel in (False, True):
        slow = node({"nvmlDeviceGetPcieThroughput": args.pcie_ms / 1000}, args.call_ms / 1000)
        reader = NvmlReader(fixed(slow), parallel=parallel)
        reader.collect()
        results[parallel] = timed(reader, args.rounds)
        reader.close()
    serial, par = statistics.median(results[False]), statistics.median(results[True])
    print(f"assumed latency: {args.call_ms} ms per call, {args.pcie_ms} ms per PCIe throughput call")
    print(f"serial collection   median {serial:7.1f} ms  (best {min(results[False]):.1f})")
    print(f"parallel collection median {par:7.1f} ms  (best {min(results[True]):.1f})  "
          f"{'within' if par < BUDGET_MS else 'OVER'} the {BUDGET_MS:.0f} ms budget")
    print(f"ratio: {serial / par:.1f}")


if __name__ == "__main__":
    main()
