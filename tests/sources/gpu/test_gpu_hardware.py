"""The reader on a real NVIDIA GPU and driver. Marked `hardware`: the only tests allowed
to skip in CI. Set LLMOBS_GPU_FIXTURE=path to also write what was read as JSON (a fixture to commit)."""

from __future__ import annotations

import ctypes.util
import json
import os
import time
from pathlib import Path

import pytest

from llmobs.sources.gpu import NvmlReader
from llmobs.sources.gpu.types import GpuReading

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is None, reason="no NVIDIA driver on this machine"),
]


def test_reads_every_gpu_with_plausible_values() -> None:
    reader = NvmlReader(rediscover_seconds=3600)
    reader.collect()
    r = reader.collect()  # the second collection is the steady state (NotSupported learnt)
    reader.close()
    assert r.nvml_up and r.devices and all(ok for _, ok in r.device_up)
    by = {(s.metric, s.device.uuid, s.labels): s.value for s in r.samples}
    for d in r.devices:
        if d.gpu_instance:
            continue
        assert d.uuid.startswith("GPU-") and d.model and " " not in d.model
        total = by[("llmobs_gpu_memory_total_bytes", d.uuid, ())]
        assert 2**30 <= total <= 2**40
        used = by[("llmobs_gpu_memory_used_bytes", d.uuid, ())]
        reserved = by.get(("llmobs_gpu_memory_reserved_bytes", d.uuid, ()), 0.0)  # absent before NVML v2
        assert used >= 0 and reserved >= 0 and used + reserved <= total
        assert 0 <= by[("llmobs_gpu_utilization_ratio", d.uuid, ())] <= 1
        assert 0 < by[("llmobs_gpu_temperature_celsius", d.uuid, ())] < 120
        if ("llmobs_gpu_power_watts", d.uuid, ()) in by:
            assert 0 < by[("llmobs_gpu_power_watts", d.uuid, ())] <= by[("llmobs_gpu_power_limit_watts", d.uuid, ())]
    assert r.duration_seconds < 0.5
    out = os.environ.get("LLMOBS_GPU_FIXTURE")
    if out:
        Path(out).write_text(json.dumps({
            "driver_version": r.driver_version,
            "devices": [{"index": d.index, "uuid": d.uuid, "name": d.name, "gpu_instance": d.gpu_instance}
                        for d in r.devices],
            "samples": [[s.metric, s.device.uuid, dict(s.labels), s.value] for s in r.samples],
            "unsupported": dict(r.unsupported), "duration_seconds": r.duration_seconds,
        }, indent=1))


def test_energy_counter_rises_with_the_boards_draw() -> None:
    """NVML's energy counter (Volta and newer): over 2 s it rises by no more than the power limit allows, and
    its average matches the board's power reading's scale (an idle board still draws tens of watts)."""
    reader = NvmlReader(rediscover_seconds=3600)
    first = reader.collect()
    started = time.monotonic()
    time.sleep(2.0)
    second = reader.collect()
    elapsed = time.monotonic() - started
    reader.close()

    def energy(r: GpuReading) -> dict[str, float]:
        return {s.device.uuid: s.value for s in r.samples if s.metric == "llmobs_gpu_energy_joules_total"}

    limits = {s.device.uuid: s.value for s in second.samples if s.metric == "llmobs_gpu_power_limit_watts"}
    before, after = energy(first), energy(second)
    assert before.keys() == after.keys() and before, "every whole GPU here is Volta or newer"
    for uuid, joules in after.items():
        watts = (joules - before[uuid]) / elapsed
        assert 0 < watts <= limits[uuid] * 1.2, (uuid, watts)
