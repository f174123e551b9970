"""An in-memory NVML with pynvml's function names: the test double of the boundary (dcgm-exporter ships
its fakes next to the code too). Used by the tests and by benchmarks/nvml.py, which counts its calls.

Each FakeGpu holds plain values; `errors` maps a pynvml function name to an NVML return code that call
raises (as `pynvml.NVMLError(code)`, so the exact subclass pynvml would raise). `lost` makes every call
on the device raise GPU_IS_LOST.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml


@dataclass
class FakeMig:
    uuid: str
    gpu_instance_id: int
    memory_used: int
    memory_total: int
    processes: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    util_gpu: int = 50
    util_mem: int = 20
    memory_used: int = 40 * 2**30
    memory_total: int = 80 * 2**30
    memory_reserved: int = 600 * 2**20    # v2 only; v1's `used` includes it, as real drivers report
    memory_v2: bool = True                # False: a driver without nvmlDeviceGetMemoryInfo_v2
    power_mw: int = 350_000
    power_limit_mw: int = 700_000
    energy_mj: int | None = 3_600_000_000  # since driver load; None: NotSupported (pre-Volta)
    temperature: int = 61
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    pcie_tx_kbs: int = 1000
    pcie_rx_kbs: int = 2000
    ecc_corrected: int = 3
    ecc_uncorrected: int = 0
    throttle_mask: int = 0
    nvlinks: int = 0                      # active links (0: no NVLink → NotSupported)
    nvlink_crc_flit: int = 0
    nvlink_tx_kib: int = 0
    nvlink_rx_kib: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    mig: list[FakeMig] | None = None      # None: MIG not supported; []: supported but disabled
    errors: dict[str, int] = field(default_factory=dict)
    lost: bool = False
    events: deque[int] = field(default_factory=deque)   # pending XIDs


class _Handle:
    __slots__ = ("gpu", "mig")

    def __init__(self, gpu: FakeGpu, mig: FakeMig | None = None) -> None:
        self.gpu = gpu
        self.mig = mig


class FakeNvml:
    """Implements the pynvml calls llmobs makes. `calls` counts every call by function name."""

    def __init__(self, gpus: list[FakeGpu], *, init_error: int | None = None, driver: str = "550.54.15",
                 latency_s: dict[str, float] | None = None, default_latency_s: float = 0.0) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.driver = driver
        self.calls: Counter[str] = Counter()
        self.initialised = False
        # Simulated driver time per call (the benchmark's stated assumption); 0 in tests.
        self.latency_s = latency_s or {}
        self.default_latency_s = default_latency_s
        self._lock = threading.Lock()  # the reader calls from several threads

    # -- plumbing --------------------------------------------------------------------------------

    def _enter(self, name: str, handle: _Handle | None = None) -> None:
        with self._lock:
            self.calls[name] += 1
        delay = self.latency_s.get(name, self.default_latency_s)
        if delay:
            time.sleep(delay)
        if not self.initialised and name != "nvmlInit":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if handle is not None:
            if handle.gpu.lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            code = handle.gpu.errors.get(name)
            if code is not None:
                raise pynvml.NVMLError(code)

    # -- session ---------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver

    # -- devices ---------------------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if self.gpus[index].lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return _Handle(self.gpus[index])

    def nvmlDeviceGetUUID(self, h: _Handle) -> str:
        self._enter("nvmlDeviceGetUUID", h)
        return h.mig.uuid if h.mig else h.gpu.uuid

    def nvmlDeviceGetName(self, h: _Handle) -> str:
        self._enter("nvmlDeviceGetName", h)
        return h.gpu.name

    def nvmlDeviceGetMigMode(self, h: _Handle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", h)
        if h.gpu.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if h.gpu.mig else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", h)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: _Handle, index: int) -> _Handle:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", h)
        migs = h.gpu.mig or []
        if index >= len(migs):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return _Handle(h.gpu, migs[index])

    def nvmlDeviceGetGpuInstanceId(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", h)
        if h.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return h.mig.gpu_instance_id

    # -- catalogue fields ------------------------------------------------------------------------

    def _whole_gpu_only(self, h: _Handle) -> None:
        if h.mig is not None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetUtilizationRates(self, h: _Handle) -> Any:
        self._enter("nvmlDeviceGetUtilizationRates", h)
        self._whole_gpu_only(h)
        return SimpleNamespace(gpu=h.gpu.util_gpu, memory=h.gpu.util_mem)

    def nvmlDeviceGetMemoryInfo(self, h: _Handle, version: int | None = None) -> Any:
        """v1 (no version): used includes the driver's reservation; v2 reports it apart, as pynvml does."""
        self._enter("nvmlDeviceGetMemoryInfo", h)
        if h.mig is not None:
            used, total, reserved = h.mig.memory_used, h.mig.memory_total, 0
        else:
            used, total, reserved = h.gpu.memory_used, h.gpu.memory_total, h.gpu.memory_reserved
        if not version:
            return SimpleNamespace(used=used + reserved, total=total, free=total - used - reserved)
        if not h.gpu.memory_v2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return SimpleNamespace(version=version, used=used, reserved=reserved, total=total,
                               free=total - used - reserved)

    def nvmlDeviceGetPowerUsage(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetPowerUsage", h)
        self._whole_gpu_only(h)
        return h.gpu.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetTotalEnergyConsumption", h)
        self._whole_gpu_only(h)
        if h.gpu.energy_mj is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return h.gpu.energy_mj

    def nvmlDeviceGetEnforcedPowerLimit(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit", h)
        self._whole_gpu_only(h)
        return h.gpu.power_limit_mw

    def nvmlDeviceGetTemperature(self, h: _Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", h)
        self._whole_gpu_only(h)
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return h.gpu.temperature

    def nvmlDeviceGetClockInfo(self, h: _Handle, clock: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", h)
        self._whole_gpu_only(h)
        return {pynvml.NVML_CLOCK_SM: h.gpu.sm_clock_mhz, pynvml.NVML_CLOCK_MEM: h.gpu.mem_clock_mhz}[clock]

    def nvmlDeviceGetPcieThroughput(self, h: _Handle, counter: int) -> int:
        self._enter("nvmlDeviceGetPcieThroughput", h)
        self._whole_gpu_only(h)
        return {pynvml.NVML_PCIE_UTIL_TX_BYTES: h.gpu.pcie_tx_kbs,
                pynvml.NVML_PCIE_UTIL_RX_BYTES: h.gpu.pcie_rx_kbs}[counter]

    def nvmlDeviceGetTotalEccErrors(self, h: _Handle, error_type: int, counter_type: int) -> int:
        self._enter("nvmlDeviceGetTotalEccErrors", h)
        self._whole_gpu_only(h)
        assert counter_type == pynvml.NVML_VOLATILE_ECC
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return h.gpu.ecc_corrected
        return h.gpu.ecc_uncorrected

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetCurrentClocksEventReasons", h)
        self._whole_gpu_only(h)
        return h.gpu.throttle_mask

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: _Handle) -> int:
        self._enter("nvmlDeviceGetCurrentClocksThrottleReasons", h)
        self._whole_gpu_only(h)
        return h.gpu.throttle_mask

    def nvmlDeviceGetNvLinkState(self, h: _Handle, link: int) -> int:
        self._enter("nvmlDeviceGetNvLinkState", h)
        if h.gpu.nvlinks == 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if link >= h.gpu.nvlinks:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return int(pynvml.NVML_FEATURE_ENABLED)

    def nvmlDeviceGetFieldValues(self, h: _Handle, field_ids: list[tuple[int, int]]) -> list[Any]:
        self._enter("nvmlDeviceGetFieldValues", h)
        self._whole_gpu_only(h)
        per_link = {pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX: h.gpu.nvlink_tx_kib,
                    pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX: h.gpu.nvlink_rx_kib}
        totals = {pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: h.gpu.nvlink_crc_flit,
                  pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: 0,
                  pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: 0,
                  pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: 0}
        out = []
        for fid, scope in field_ids:
            if fid in per_link and scope < h.gpu.nvlinks:
                ret, value = pynvml.NVML_SUCCESS, per_link[fid] + scope
            elif fid in totals and h.gpu.nvlinks:
                ret, value = pynvml.NVML_SUCCESS, totals[fid]
            else:  # the value's own return code, as NVML reports per-field failures
                ret, value = pynvml.NVML_ERROR_NOT_SUPPORTED, 0
            out.append(SimpleNamespace(fieldId=fid, scopeId=scope, nvmlReturn=ret, value=SimpleNamespace(ullVal=value)))
        return out

    def nvmlDeviceGetComputeRunningProcesses(self, h: _Handle) -> list[Any]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", h)
        procs = h.mig.processes if h.mig is not None else h.gpu.processes
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in procs]

    # -- events ----------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> list[_Handle]:
        self._enter("nvmlEventSetCreate")
        return []

    def nvmlDeviceRegisterEvents(self, h: _Handle, event_types: int, event_set: list[_Handle]) -> None:
        self._enter("nvmlDeviceRegisterEvents", h)
        assert event_types & pynvml.nvmlEventTypeXidCriticalError
        event_set.append(h)

    def nvmlEventSetWait_v2(self, event_set: list[_Handle], timeout_ms: int) -> Any:
        self._enter("nvmlEventSetWait_v2")
        assert timeout_ms == 0, "the reader must never block on events"
        for h in event_set:
            if h.gpu.events:
                return SimpleNamespace(device=h, eventType=pynvml.nvmlEventTypeXidCriticalError,
                                       eventData=h.gpu.events.popleft(), gpuInstanceId=0, computeInstanceId=0)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)

    def nvmlEventSetFree(self, event_set: list[_Handle]) -> None:
        self._enter("nvmlEventSetFree")
        event_set.clear()
