"""NVML's total-energy counter through the reader and the agent's exposition, on the in-memory NVML double:
millijoules become joules, a device without the counter has no series (and is counted as unsupported, asked
once), and a driver reload's drop to zero is exported as it is, which Prometheus' rate() reads as a reset."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.agent import GpuCollector
from llmobs.sources.gpu import NvmlReader
from llmobs.sources.gpu.fake import FakeGpu, FakeNvml
from llmobs.sources.gpu.types import GpuReading

ENERGY = "llmobs_gpu_energy_joules_total"


def energy(reading: GpuReading) -> dict[str, float]:
    return {s.device.uuid: s.value for s in reading.samples if s.metric == ENERGY}


def test_energy_is_read_in_joules_per_gpu() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", energy_mj=7_200_500), FakeGpu("GPU-b", energy_mj=1_000)])
    assert energy(NvmlReader(lambda: fake).collect()) == {"GPU-a": pytest.approx(7200.5), "GPU-b": 1.0}


def test_unsupported_counter_is_absent_not_zero_and_asked_once() -> None:
    fake = FakeNvml([FakeGpu("GPU-old", energy_mj=None), FakeGpu("GPU-new", energy_mj=5_000)])
    reader = NvmlReader(lambda: fake)
    first = reader.collect()
    second = reader.collect()
    assert energy(first) == energy(second) == {"GPU-new": 5.0}
    assert dict(second.unsupported)["GPU-old"] == dict(second.unsupported).get("GPU-new", 0) + 1
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 3  # GPU-old once, GPU-new every collection


def test_driver_reload_reset_is_exported_as_read() -> None:
    gpu = FakeGpu("GPU-a", energy_mj=90_000_000)
    reader = NvmlReader(lambda: FakeNvml([gpu]))
    before = energy(reader.collect())["GPU-a"]
    gpu.energy_mj = 2_000  # the driver reloaded: NVML counts again from 0
    after = energy(reader.collect())["GPU-a"]
    assert (before, after) == (90_000.0, 2.0)


def test_agent_exports_a_counter_per_gpu() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", energy_mj=3_000), FakeGpu("GPU-old", energy_mj=None)])
    reader = NvmlReader(lambda: fake)
    reading = reader.collect()
    registry = CollectorRegistry()
    registry.register(GpuCollector("node-1", reader.catalogue, lambda: (reading, ())))
    text = generate_latest(registry).decode()
    assert "# TYPE llmobs_gpu_energy_joules_total counter" in text
    lines = [line for line in text.splitlines() if line.startswith(ENERGY + "{")]
    assert len(lines) == 1 and 'gpu_uuid="GPU-a"' in lines[0] and lines[0].endswith(" 3.0")
