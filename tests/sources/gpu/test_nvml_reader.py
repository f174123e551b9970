"""NvmlReader against the in-memory NVML double (pynvml's names and error classes): scaling, NotSupported
memory, GPU lost/Unknown, transient errors, XID events, MIG, NVLink, throttle bits, no driver."""

from __future__ import annotations

import ctypes.util
import logging

import pynvml
import pytest

from llmobs.sources.gpu import NvmlReader, load_catalogue
from llmobs.sources.gpu.catalogue import CatalogueError, parse_catalogue
from llmobs.sources.gpu.fake import FakeGpu, FakeMig, FakeNvml
from llmobs.sources.gpu.types import GpuReading


def values(reading: GpuReading, uuid: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, s.labels): s.value for s in reading.samples if s.device.uuid == uuid}


def reader_for(fake: FakeNvml, **kw: float) -> NvmlReader:
    return NvmlReader(lambda: fake, **kw)


def test_fields_are_read_and_scaled_to_base_units() -> None:
    gpu = FakeGpu("GPU-a", util_gpu=87, util_mem=12, power_mw=412_500, sm_clock_mhz=1755, pcie_rx_kbs=3,
                  ecc_corrected=5, ecc_uncorrected=1)
    r = reader_for(FakeNvml([gpu])).collect()
    v = values(r, "GPU-a")
    assert r.nvml_up and r.driver_version == "550.54.15"
    assert v[("llmobs_gpu_utilization_ratio", ())] == pytest.approx(0.87)
    assert v[("llmobs_gpu_memory_bandwidth_utilization_ratio", ())] == pytest.approx(0.12)
    assert v[("llmobs_gpu_memory_used_bytes", ())] == gpu.memory_used
    assert v[("llmobs_gpu_memory_reserved_bytes", ())] == gpu.memory_reserved
    assert v[("llmobs_gpu_memory_total_bytes", ())] == gpu.memory_total
    assert v[("llmobs_gpu_power_watts", ())] == pytest.approx(412.5)
    assert v[("llmobs_gpu_power_limit_watts", ())] == pytest.approx(gpu.power_limit_mw / 1000)
    assert v[("llmobs_gpu_temperature_celsius", ())] == gpu.temperature
    assert v[("llmobs_gpu_sm_clock_hertz", ())] == 1755e6
    assert v[("llmobs_gpu_memory_clock_hertz", ())] == gpu.mem_clock_mhz * 1e6
    assert v[("llmobs_gpu_pcie_rx_bytes_per_second", ())] == 3 * 1024
    assert v[("llmobs_gpu_ecc_errors_total", (("type", "corrected"),))] == 5
    assert v[("llmobs_gpu_ecc_errors_total", (("type", "uncorrected"),))] == 1
    assert r.devices[0].model == "NVIDIA-H100-80GB-HBM3"


def test_utilization_is_one_call_for_two_rows() -> None:
    fake = FakeNvml([FakeGpu("GPU-a")])
    reader_for(fake).collect()
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 1


def test_throttle_reasons_are_one_series_per_bit() -> None:
    mask = pynvml.nvmlClocksEventReasonHwThermalSlowdown | pynvml.nvmlClocksEventReasonSwPowerCap
    v = values(reader_for(FakeNvml([FakeGpu("GPU-a", throttle_mask=mask)])).collect(), "GPU-a")
    reasons = {dict(k[1])["reason"]: x for k, x in v.items() if k[0] == "llmobs_gpu_throttle_reasons"}
    assert reasons["hw_thermal"] == 1 and reasons["sw_power_cap"] == 1
    assert {k for k, x in reasons.items() if x == 0} >= {"sw_thermal", "hw_power_brake", "gpu_idle"}


def test_old_driver_without_clocks_event_reasons_falls_back_to_throttle_reasons() -> None:
    gpu = FakeGpu("GPU-a", throttle_mask=pynvml.nvmlClocksThrottleReasonSwThermalSlowdown,
                  errors={"nvmlDeviceGetCurrentClocksEventReasons": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})
    fake = FakeNvml([gpu])
    reader = reader_for(fake)
    for _ in range(3):
        v = values(reader.collect(), "GPU-a")
        assert v[("llmobs_gpu_throttle_reasons", (("reason", "sw_thermal"),))] == 1
    assert fake.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1  # learnt once, then the fallback only
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 3


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
                                  pynvml.NVML_ERROR_NO_PERMISSION])
def test_not_supported_is_remembered_per_device_and_not_retried(code: int) -> None:
    a = FakeGpu("GPU-a", errors={"nvmlDeviceGetPowerUsage": code})
    b = FakeGpu("GPU-b")
    fake = FakeNvml([a, b])
    reader = reader_for(fake)
    for _ in range(5):
        r = reader.collect()
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 1 + 5  # GPU-a once, GPU-b every collection
    assert ("llmobs_gpu_power_watts", ()) not in values(r, "GPU-a")
    assert ("llmobs_gpu_power_watts", ()) in values(r, "GPU-b")
    assert ("llmobs_gpu_temperature_celsius", ()) in values(r, "GPU-a")  # the rest of the device still read
    unsupported = dict(r.unsupported)  # both lack NVLink (4 field values each); GPU-a also lacks power
    assert unsupported["GPU-a"] == unsupported["GPU-b"] + 1
    assert dict(r.device_up)[r.devices[0]] is True


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN])
def test_gpu_lost_or_unknown_marks_that_gpu_down_not_the_agent(code: int) -> None:
    a, b = FakeGpu("GPU-a"), FakeGpu("GPU-b", errors={"nvmlDeviceGetTemperature": code})
    fake = FakeNvml([a, b])
    reader = reader_for(fake)
    r = reader.collect()
    up = {d.uuid: ok for d, ok in r.device_up}
    assert r.nvml_up and up == {"GPU-a": True, "GPU-b": False}
    assert values(r, "GPU-b") == {}  # nothing half-read from a lost GPU
    assert values(r, "GPU-a")
    b.errors.clear()  # the GPU comes back (reset): the next collection reads it again, nothing remembered
    r = reader.collect()
    assert {d.uuid: ok for d, ok in r.device_up} == {"GPU-a": True, "GPU-b": True}
    assert ("llmobs_gpu_temperature_celsius", ()) in values(r, "GPU-b")


def test_whole_gpu_lost_stays_listed_as_down() -> None:
    b = FakeGpu("GPU-b")
    fake = FakeNvml([FakeGpu("GPU-a"), b])
    reader = reader_for(fake, rediscover_seconds=0)
    reader.collect()
    b.lost = True  # even nvmlDeviceGetHandleByIndex fails now, on rediscovery
    r = reader.collect()
    assert {d.uuid: ok for d, ok in r.device_up} == {"GPU-a": True, "GPU-b": False}


def test_transient_error_drops_the_value_this_time_only() -> None:
    a = FakeGpu("GPU-a", errors={"nvmlDeviceGetPowerUsage": pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES})
    fake = FakeNvml([a])
    reader = reader_for(fake)
    r = reader.collect()
    assert ("llmobs_gpu_power_watts", ()) not in values(r, "GPU-a")
    a.errors.clear()
    r = reader.collect()
    assert values(r, "GPU-a")[("llmobs_gpu_power_watts", ())] == pytest.approx(350.0)
    clean = reader_for(FakeNvml([FakeGpu("GPU-a")]))
    clean.collect()
    assert dict(r.errors)["other"] == 1 and r.unsupported == clean.collect().unsupported  # not remembered


def test_xid_events_are_drained_without_blocking_and_counted() -> None:
    a = FakeGpu("GPU-a")
    fake = FakeNvml([a, FakeGpu("GPU-b")])
    reader = reader_for(fake)
    assert reader.collect().xids == ()
    a.events.extend([79, 79, 13])
    r = reader.collect()
    assert {(x.device.uuid, x.xid): x.count for x in r.xids} == {("GPU-a", 79): 2, ("GPU-a", 13): 1}
    r = reader.collect()  # counts are cumulative and nothing new arrived
    assert {(x.device.uuid, x.xid): x.count for x in r.xids} == {("GPU-a", 79): 2, ("GPU-a", 13): 1}
    a.events.append(79)
    r = reader.collect()
    assert {(x.device.uuid, x.xid): x.count for x in r.xids}[("GPU-a", 79)] == 3


def test_mig_instances_are_devices_with_their_own_memory_and_processes() -> None:
    mig = [FakeMig("MIG-1", 1, memory_used=5 * 2**30, memory_total=10 * 2**30, processes=[(77, 4 * 2**30)]),
           FakeMig("MIG-2", 2, memory_used=0, memory_total=10 * 2**30)]
    fake = FakeNvml([FakeGpu("GPU-a", mig=mig), FakeGpu("GPU-b", mig=[])])
    reader = reader_for(fake)
    r = reader.collect()
    by_uuid = {d.uuid: d for d in r.devices}
    assert set(by_uuid) == {"GPU-a", "MIG-1", "MIG-2", "GPU-b"}
    assert by_uuid["MIG-1"].gpu_instance == "1" and by_uuid["MIG-1"].parent_uuid == "GPU-a"
    assert by_uuid["MIG-2"].model == by_uuid["GPU-a"].model
    assert values(r, "MIG-1") == {("llmobs_gpu_memory_used_bytes", ()): 5 * 2**30,
                                  ("llmobs_gpu_memory_reserved_bytes", ()): 0,
                                  ("llmobs_gpu_memory_total_bytes", ()): 10 * 2**30}
    assert [(p.device.uuid, p.pid, p.used_bytes) for p in r.processes] == [("MIG-1", 77, 4 * 2**30)]
    # With MIG on, the parent's process list would aggregate the instances' (counted twice): not read.
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 3  # MIG-1, MIG-2, GPU-b
    assert ("llmobs_gpu_power_watts", ()) in values(r, "GPU-a")  # board fields stay on the parent
    # Whole-GPU fields are never asked on MIG handles (they would only answer NotSupported).
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 2


def test_nvlink_errors_and_throughput_in_one_field_values_call() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", nvlinks=2, nvlink_crc_flit=10, nvlink_tx_kib=100, nvlink_rx_kib=200),
                     FakeGpu("GPU-b")])
    reader = reader_for(fake)
    r = reader.collect()
    v = values(r, "GPU-a")
    assert v[("llmobs_gpu_nvlink_errors_total", (("type", "crc_flit"),))] == 10
    assert v[("llmobs_gpu_nvlink_errors_total", (("type", "replay"),))] == 0
    assert v[("llmobs_gpu_nvlink_tx_bytes_total", (("link", "1"),))] == 101 * 1024
    assert v[("llmobs_gpu_nvlink_rx_bytes_total", (("link", "0"),))] == 200 * 1024
    assert not any(k[0].startswith("llmobs_gpu_nvlink") for k in values(r, "GPU-b"))
    assert fake.calls["nvmlDeviceGetFieldValues"] == 2  # one call per GPU for every field and link
    reader.collect()
    # GPU-b's per-value NotSupported answers are remembered: it is not asked again.
    assert fake.calls["nvmlDeviceGetFieldValues"] == 3
    assert dict(r.unsupported)["GPU-b"] == 4


@pytest.mark.parametrize("parallel", [False, True])
def test_serial_and_parallel_reads_agree(parallel: bool) -> None:
    def node() -> FakeNvml:
        return FakeNvml([FakeGpu(f"GPU-{i}", nvlinks=i % 3, processes=[(i, 2**20)],
                                 errors={"nvmlDeviceGetPowerUsage": pynvml.NVML_ERROR_NOT_SUPPORTED} if i == 2 else {},
                                 lost=i == 5) for i in range(8)])
    ref = NvmlReader(lambda fake=node(): fake, parallel=False).collect()
    got = NvmlReader(lambda fake=node(): fake, parallel=parallel).collect()
    assert sorted(map(repr, got.samples)) == sorted(map(repr, ref.samples))
    assert got.device_up == ref.device_up and got.processes == ref.processes
    assert dict(got.unsupported) == dict(ref.unsupported)


def test_process_memory_unknown_is_kept_as_none() -> None:
    r = reader_for(FakeNvml([FakeGpu("GPU-a", processes=[(1, 2**30), (2, None)])])).collect()
    assert [(p.pid, p.used_bytes) for p in r.processes] == [(1, 2**30), (2, None)]


def test_no_driver_reports_down_logs_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNvml([FakeGpu("GPU-a")], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    reader = reader_for(fake, retry_init_seconds=0)
    with caplog.at_level(logging.DEBUG, logger="llmobs.sources.gpu.reader"):
        for _ in range(3):
            r = reader.collect()
            assert not r.nvml_up and r.samples == ()
    warnings = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "NVML unavailable" in warnings[0].getMessage()
    assert fake.calls["nvmlInit"] == 3
    fake.init_error = None  # the GPU operator finished installing the driver
    r = reader.collect()
    assert r.nvml_up and values(r, "GPU-a")


def test_init_retry_is_rate_limited() -> None:
    now = [0.0]
    fake = FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    reader = NvmlReader(lambda: fake, retry_init_seconds=60, clock=lambda: now[0])
    reader.collect()
    now[0] = 30
    reader.collect()
    assert fake.calls["nvmlInit"] == 1
    now[0] = 61
    reader.collect()
    assert fake.calls["nvmlInit"] == 2


def test_real_pynvml_on_this_machine(caplog: pytest.LogCaptureFixture) -> None:
    """The real binding, no double: on a driverless machine (CI, this repo's dev box) the agent reports
    NVML down with one clear line; where a driver exists it must come up instead."""
    driver_present = ctypes.util.find_library("nvidia-ml") is not None
    reader = NvmlReader()
    with caplog.at_level(logging.WARNING, logger="llmobs.sources.gpu.reader"):
        r = reader.collect()
        r2 = reader.collect()
    reader.close()
    assert r.nvml_up is driver_present and r2.nvml_up is driver_present
    if not driver_present:
        lines = [rec.getMessage() for rec in caplog.records]
        assert len(lines) == 1, lines
        assert "no NVIDIA driver or libnvidia-ml.so.1" in lines[0] and "llmobs_nvml_up=0" in lines[0]


def test_catalogue_rows_all_resolve_and_bad_rows_are_rejected() -> None:
    cat = load_catalogue()
    assert {f.metric for f in cat.fields} >= {"llmobs_gpu_memory_used_bytes", "llmobs_gpu_ecc_errors_total",
                                               "llmobs_gpu_throttle_reasons"}
    throttle = next(f for f in cat.fields if f.metric == "llmobs_gpu_throttle_reasons")
    assert {"hw_thermal", "sw_thermal", "hw_power_brake", "sw_power_cap"} <= {n for n, _ in throttle.bits}
    good = {"metric": "llmobs_gpu_power_watts", "kind": "scalar", "call": "nvmlDeviceGetPowerUsage"}
    parse_catalogue({"fields": [good]})
    for bad, why in [
        ({**good, "call": "nvmlDeviceGetPowerUsagee"}, "not a pynvml function"),
        ({**good, "args": ["NVML_CLOCK_SMM"]}, "not a pynvml constant"),
        ({**good, "metric": "gpu_x"}, "llmobs_gpu_"),
        ({**good, "metric": "llmobs_gpu_powr_watts"}, "not in the metric catalogue"),
        ({**good, "metric": "llmobs_gpu_ecc_errors"}, "not in the metric catalogue"),  # the family, not the series
        ({**good, "kind": "bitmask"}, "bits"),
    ]:
        with pytest.raises(CatalogueError, match=why):
            parse_catalogue({"fields": [bad]})


def test_memory_used_leaves_out_the_driver_reservation_and_falls_back_to_v1_on_old_drivers() -> None:
    """Seen on an H200 (driver 580): NVML v1 says 616 MiB used on an idle GPU where nvidia-smi says 0 MiB
    used and 616 MiB reserved. v2 splits them; a driver without v2 gets v1 once, then is not asked again."""
    new = FakeGpu("GPU-new", memory_used=0, memory_reserved=616 * 2**20)
    old = FakeGpu("GPU-old", memory_used=0, memory_reserved=616 * 2**20, memory_v2=False)
    fake = FakeNvml([new, old])
    reader = reader_for(fake)
    reader.collect()
    before = fake.calls["nvmlDeviceGetMemoryInfo"]
    r = reader.collect()
    assert values(r, "GPU-new")[("llmobs_gpu_memory_used_bytes", ())] == 0
    assert values(r, "GPU-new")[("llmobs_gpu_memory_reserved_bytes", ())] == 616 * 2**20
    assert values(r, "GPU-old")[("llmobs_gpu_memory_used_bytes", ())] == 616 * 2**20  # v1: reservation included
    assert ("llmobs_gpu_memory_reserved_bytes", ()) not in values(r, "GPU-old")
    assert values(r, "GPU-old")[("llmobs_gpu_memory_total_bytes", ())] == old.memory_total
    assert fake.calls["nvmlDeviceGetMemoryInfo"] - before == 2  # one call per GPU: v2, or the learnt v1
