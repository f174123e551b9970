"""Reads every GPU on the node through the NVML boundary into one immutable `GpuReading`.

Rules the reader keeps:
- a query that answers NotSupported (or FunctionNotFound, NoPermission, InvalidArgument) is remembered
  per device and never asked again, so an unsupported field costs one call per agent lifetime;
- GPU-lost / Unknown / ResetRequired marks that device down for this collection and skips its other
  fields; the next collection tries it again; other devices and the agent carry on;
- no library or driver: `nvml_up` False, one clear log line, init retried quietly every
  `retry_init_seconds` (the GPU operator may install the driver after the agent starts);
- XID events come from one NVML event set per device, drained with a 0 ms wait (never blocks);
- devices are read in parallel threads (NVML is thread-safe): `nvmlDeviceGetPcieThroughput` samples for
  20 ms per call on real hardware, so a serial pass over 8 GPUs would spend 320 ms in it alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pynvml

from llmobs.sources.gpu.catalogue import Catalogue, FieldSpec, load_catalogue
from llmobs.sources.gpu.nvml import NO_DRIVER, ErrorClass, NvmlLib, classify, describe, error_code, load_pynvml, text
from llmobs.sources.gpu.types import GpuDevice, GpuProcess, GpuReading, GpuSample, XidCount

log = logging.getLogger(__name__)

MAX_EVENTS_PER_COLLECTION = 1024
"""Cap on XID events drained per device per collection, so a storm cannot stall the loop."""


_Part = tuple[list[GpuSample], list[GpuProcess]] | None
"""What one read task returns: samples and processes, or None when the device is lost."""


class _DeviceLost(Exception):
    """Internal: a call on this device said the GPU is gone."""


@dataclass
class _Device:
    info: GpuDevice
    handle: Any
    is_mig: bool
    links: tuple[int, ...] = ()
    event_set: Any = None
    mig_enabled: bool = False  # processes are then read per MIG instance (the parent would aggregate them)


@dataclass
class _Stats:
    errors: Counter[str] = field(default_factory=Counter)


class NvmlReader:
    """Owns the NVML session. Not thread-safe: one loop calls `collect()`; readers use its results."""

    def __init__(self, lib_factory: Callable[[], NvmlLib] = load_pynvml, catalogue: Catalogue | None = None,
                 *, retry_init_seconds: float = 60.0, rediscover_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, parallel: bool = True) -> None:
        self._lib_factory = lib_factory
        self.catalogue = catalogue or load_catalogue()
        self.retry_init_seconds = retry_init_seconds
        self.rediscover_seconds = rediscover_seconds
        self._clock = clock
        self._lib: NvmlLib | None = None
        self._driver_version = ""
        self._devices: list[_Device] = []
        self._discovered_at = -float("inf")
        self._last_init_attempt = -float("inf")
        self._init_failures = 0
        self._unsupported: set[tuple[str, str]] = set()
        self._xids: Counter[tuple[str, int]] = Counter()
        self._stats = _Stats()
        self._lock = threading.Lock()  # guards the memo and counters when devices are read in parallel
        self.parallel = parallel
        self._pool: ThreadPoolExecutor | None = None
        self._fast_rows = tuple(f for f in self.catalogue.fields if not f.slow)
        self._slow_rows = tuple(f for f in self.catalogue.fields if f.slow)

    # -- session ---------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._lib is not None

    def _try_init(self) -> bool:
        now = self._clock()
        if now - self._last_init_attempt < self.retry_init_seconds:
            return False
        self._last_init_attempt = now
        lib = self._lib_factory()
        try:
            lib.nvmlInit()
            self._driver_version = text(lib.nvmlSystemGetDriverVersion())
        except Exception as exc:  # any failure here means "no NVML", never a crash
            self._init_failures += 1
            level = logging.WARNING if self._init_failures == 1 else logging.DEBUG
            hint = " (no NVIDIA driver or libnvidia-ml.so.1 on this node)" if error_code(exc) in NO_DRIVER else ""
            log.log(level, "NVML unavailable: %s%s; llmobs_nvml_up=0, GPU series omitted, retrying every %gs",
                    describe(exc), hint, self.retry_init_seconds)
            return False
        self._lib = lib
        log.info("NVML initialised, driver %s", self._driver_version)
        return True

    def close(self) -> None:
        if self._lib is None:
            return
        for d in self._devices:
            if d.event_set is not None:
                try:
                    self._lib.nvmlEventSetFree(d.event_set)
                except Exception:  # shutting down anyway
                    log.debug("nvmlEventSetFree failed", exc_info=True)
        try:
            self._lib.nvmlShutdown()
        except Exception:
            log.debug("nvmlShutdown failed", exc_info=True)
        self._lib = None
        self._devices = []
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -- discovery -------------------------------------------------------------------------------

    def _discover(self, lib: NvmlLib) -> None:
        old = {d.info.uuid: d for d in self._devices}
        old_by_index = {d.info.index: d for d in self._devices if not d.is_mig}
        devices: list[_Device] = []
        for index in range(lib.nvmlDeviceGetCount()):
            try:
                handle = lib.nvmlDeviceGetHandleByIndex(index)
                info = GpuDevice(index=index, uuid=text(lib.nvmlDeviceGetUUID(handle)),
                                 name=text(lib.nvmlDeviceGetName(handle)))
            except pynvml.NVMLError as exc:
                self._stats.errors[classify(exc).value] += 1
                log.warning("GPU %d could not be opened: %s", index, describe(exc))
                if index in old_by_index:  # keep a known GPU so its failing reads report it down
                    devices.append(old_by_index[index])
                continue
            prev = old.get(info.uuid)
            parent = prev if prev is not None else self._open(lib, info, handle, is_mig=False)
            migs = self._mig_devices(lib, info, handle, old)
            parent.mig_enabled = bool(migs)
            devices.append(parent)
            devices.extend(migs)
        self._devices = devices
        self._discovered_at = self._clock()

    def _open(self, lib: NvmlLib, info: GpuDevice, handle: Any, *, is_mig: bool) -> _Device:
        dev = _Device(info=info, handle=handle, is_mig=is_mig)
        if not is_mig:
            dev.links = self._nvlinks(lib, handle)
            dev.event_set = self._event_set(lib, info, handle)
        return dev

    def _mig_devices(self, lib: NvmlLib, parent: GpuDevice, handle: Any, old: dict[str, _Device]) -> list[_Device]:
        try:
            current = lib.nvmlDeviceGetMigMode(handle)[0]
        except pynvml.NVMLError:
            return []  # no MIG on this GPU (NotSupported) or not now
        if current != pynvml.NVML_DEVICE_MIG_ENABLE:
            return []
        out: list[_Device] = []
        for i in range(lib.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mh = lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
                info = GpuDevice(index=parent.index, uuid=text(lib.nvmlDeviceGetUUID(mh)), name=parent.name,
                                 gpu_instance=str(lib.nvmlDeviceGetGpuInstanceId(mh)), parent_uuid=parent.uuid)
            except pynvml.NVMLError:
                continue  # NotFound: that MIG slot is empty
            prev = old.get(info.uuid)
            out.append(prev if prev is not None else self._open(lib, info, mh, is_mig=True))
        return out

    def _nvlinks(self, lib: NvmlLib, handle: Any) -> tuple[int, ...]:
        links: list[int] = []
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                if lib.nvmlDeviceGetNvLinkState(handle, link) == pynvml.NVML_FEATURE_ENABLED:
                    links.append(link)
            except pynvml.NVMLError:
                break  # NotSupported on link 0 (no NVLink) or InvalidArgument past the last link
        return tuple(links)

    def _event_set(self, lib: NvmlLib, info: GpuDevice, handle: Any) -> Any:
        try:
            event_set = lib.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            log.info("GPU %s: no NVML event set (%s); XID events not collected", info.uuid, describe(exc))
            return None
        try:
            lib.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
        except pynvml.NVMLError as exc:
            log.info("GPU %s: XID events not supported (%s)", info.uuid, describe(exc))
            lib.nvmlEventSetFree(event_set)
            return None
        return event_set

    # -- collection ------------------------------------------------------------------------------

    def collect(self) -> GpuReading:
        """One pass over every device. Never raises for NVML trouble: it is reported in the reading."""
        start = time.perf_counter()
        if self._lib is None and not self._try_init():
            return GpuReading(nvml_up=False, time=time.time())
        lib = self._lib
        assert lib is not None
        if self._clock() - self._discovered_at >= self.rediscover_seconds:
            try:
                self._discover(lib)
            except pynvml.NVMLError as exc:
                log.warning("NVML device enumeration failed: %s", describe(exc))
                self._stats.errors[classify(exc).value] += 1
        samples: list[GpuSample] = []
        processes: list[GpuProcess] = []
        up: list[tuple[GpuDevice, bool]] = []
        # One task per device for its fast rows, processes and events, plus one per slow row per device.
        tasks: list[tuple[int, Callable[[], _Part]]] = []
        for i, dev in enumerate(self._devices):
            tasks.append((i, lambda dev=dev: self._read_device(lib, dev)))  # type: ignore[misc]
            tasks.extend((i, lambda dev=dev, spec=spec: self._read_slow(lib, dev, spec))  # type: ignore[misc]
                         for spec in self._slow_rows if not dev.is_mig or spec.mig)
        if self.parallel and len(tasks) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="nvml")
            results = list(self._pool.map(lambda task: task[1](), tasks))
        else:
            results = [task() for _, task in tasks]
        per_device: dict[int, list[_Part]] = {}
        for (i, _), result in zip(tasks, results, strict=True):
            per_device.setdefault(i, []).append(result)
        for i, dev in enumerate(self._devices):
            parts = per_device.get(i, [])
            ok = all(part is not None for part in parts)
            up.append((dev.info, ok))
            if ok:
                for part in parts:
                    assert part is not None
                    samples.extend(part[0])
                    processes.extend(part[1])
        by_uuid = {d.info.uuid: d.info for d in self._devices}
        with self._lock:
            xid_items = sorted(self._xids.items())
        xids = tuple(XidCount(by_uuid[u], xid, n) for (u, xid), n in xid_items if u in by_uuid)
        with self._lock:
            unsupported = Counter(uuid for uuid, _ in self._unsupported)
            errors = tuple(sorted(self._stats.errors.items()))
        return GpuReading(
            nvml_up=True, time=time.time(), driver_version=self._driver_version,
            devices=tuple(d.info for d in self._devices), device_up=tuple(up), samples=tuple(samples),
            processes=tuple(processes), xids=xids, errors=errors,
            unsupported=tuple(sorted(unsupported.items())), duration_seconds=time.perf_counter() - start,
        )

    def _read_device(self, lib: NvmlLib, dev: _Device) -> _Part:
        """The fast fields, processes and events of one device; None when it is lost."""
        try:
            dev_samples = self._read_fields(lib, dev, self._fast_rows)
            dev_processes = [] if dev.mig_enabled else self._read_processes(lib, dev)
        except _DeviceLost:
            return None
        self._drain_events(lib, dev)
        return dev_samples, dev_processes

    def _read_slow(self, lib: NvmlLib, dev: _Device, spec: FieldSpec) -> _Part:
        """One blocking row (PCIe throughput: a 20 ms sample) on its own, so it overlaps the others."""
        try:
            return self._read_fields(lib, dev, (spec,)), []
        except _DeviceLost:
            return None

    def _count(self, kind: ErrorClass) -> None:
        with self._lock:
            self._stats.errors[kind.value] += 1

    def _call(self, dev: _Device, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call NVML for one device+query; None when unsupported (remembered) or failed transiently."""
        if (dev.info.uuid, key) in self._unsupported:
            return None
        try:
            return fn(dev.handle, *args)
        except pynvml.NVMLError as exc:
            kind = classify(exc)
            self._count(kind)
            if kind is ErrorClass.NOT_SUPPORTED:
                with self._lock:
                    self._unsupported.add((dev.info.uuid, key))
                log.debug("GPU %s: %s not supported, not asked again", dev.info.uuid, key)
            elif kind is ErrorClass.GPU_LOST:
                log.warning("GPU %s (%s) marked down: %s", dev.info.index, dev.info.uuid, describe(exc))
                raise _DeviceLost from exc
            else:
                log.debug("GPU %s: %s failed: %s", dev.info.uuid, key, describe(exc))
            return None

    def _call_with_fallback(self, lib: NvmlLib, dev: _Device, spec: FieldSpec) -> Any:
        """The row's call, or its `fallback` once the driver has said the first is not there (an older
        driver lacks nvmlDeviceGetCurrentClocksEventReasons but has the ThrottleReasons original, or
        nvmlDeviceGetMemoryInfo_v2 but has v1)."""
        for name, args in spec.attempts():
            key = f"{name}{args}"
            if (dev.info.uuid, key) in self._unsupported:
                continue
            value = self._call(dev, key, getattr(lib, name), *args)
            if value is not None or (dev.info.uuid, key) not in self._unsupported:
                return value
        return None

    def _read_fields(self, lib: NvmlLib, dev: _Device, rows: tuple[FieldSpec, ...]) -> list[GpuSample]:
        out: list[GpuSample] = []
        cache: dict[str, Any] = {}  # rows sharing a call (utilization gpu/memory) make it once
        field_rows: list[FieldSpec] = []
        for spec in rows:
            if dev.is_mig and not spec.mig:
                continue
            if spec.kind == "scalar":
                if spec.key not in cache:
                    cache[spec.key] = self._call_with_fallback(lib, dev, spec)
                value = cache[spec.key]
                raw = getattr(value, spec.attr, None) if spec.attr else value  # v1 memory has no `reserved`
                if raw is not None:
                    out.append(GpuSample(spec.metric, dev.info, spec.labels, float(raw) * spec.scale))
            elif spec.kind == "bitmask":
                mask = self._call_with_fallback(lib, dev, spec)
                if mask is not None:
                    out.extend(GpuSample(spec.metric, dev.info, ((spec.label, name),), 1.0 if int(mask) & bit else 0.0)
                               for name, bit in spec.bits)
            elif spec.kind == "field_values":
                field_rows.append(spec)
        if field_rows:
            out.extend(self._field_values(lib, dev, field_rows))
        return out

    def _field_values(self, lib: NvmlLib, dev: _Device, rows: list[FieldSpec]) -> list[GpuSample]:
        """Every field-value row of the device in one nvmlDeviceGetFieldValues call. Each value carries its
        own return code; a NotSupported value is remembered and left out of later calls."""
        wanted: list[tuple[FieldSpec, int | None, str]] = []
        for spec in rows:
            scopes: tuple[int | None, ...] = dev.links if spec.scope == "link" else (None,)
            for link in scopes:
                key = f"field:{spec.field_id}@{link}"
                if (dev.info.uuid, key) not in self._unsupported:
                    wanted.append((spec, link, key))
        if not wanted:
            return []
        values = self._call(dev, "nvmlDeviceGetFieldValues", lib.nvmlDeviceGetFieldValues,
                            [(spec.field_id, link or 0) for spec, link, _ in wanted])
        if values is None:
            return []
        out: list[GpuSample] = []
        for (spec, link, key), v in zip(wanted, values, strict=False):
            ret = int(v.nvmlReturn)
            if ret != pynvml.NVML_SUCCESS:
                kind = classify(pynvml.NVMLError(ret))
                self._count(kind)
                if kind is ErrorClass.NOT_SUPPORTED:
                    with self._lock:
                        self._unsupported.add((dev.info.uuid, key))
                elif kind is ErrorClass.GPU_LOST:
                    raise _DeviceLost
                continue
            labels = spec.labels if link is None else (*spec.labels, ("link", str(link)))
            out.append(GpuSample(spec.metric, dev.info, labels, float(v.value.ullVal) * spec.scale))
        return out

    def _read_processes(self, lib: NvmlLib, dev: _Device) -> list[GpuProcess]:
        procs = self._call(dev, "processes", lib.nvmlDeviceGetComputeRunningProcesses)
        if not procs:
            return []
        return [GpuProcess(dev.info, int(p.pid), None if p.usedGpuMemory is None else float(p.usedGpuMemory))
                for p in procs]

    def _drain_events(self, lib: NvmlLib, dev: _Device) -> None:
        if dev.event_set is None:
            return
        for _ in range(MAX_EVENTS_PER_COLLECTION):
            try:
                data = lib.nvmlEventSetWait_v2(dev.event_set, 0)
            except pynvml.NVMLError as exc:
                if classify(exc) is not ErrorClass.TIMEOUT:
                    self._count(classify(exc))
                    log.debug("GPU %s: event wait failed: %s", dev.info.uuid, describe(exc))
                return
            if int(data.eventType) & pynvml.nvmlEventTypeXidCriticalError:
                with self._lock:
                    self._xids[(dev.info.uuid, int(data.eventData))] += 1
