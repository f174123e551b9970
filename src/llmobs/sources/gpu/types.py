"""Value types of one NVML reading: frozen, so the collector can render them from another thread."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """A GPU or a MIG instance. `model` is the product name as gpu-feature-discovery labels nodes
    (`nvidia.com/gpu.product`: spaces → dashes), so it joins with the exporter's `gpu_model`."""

    index: int
    uuid: str
    name: str
    gpu_instance: str = ""     # MIG GPU-instance id; "" for a whole GPU
    parent_uuid: str = ""      # the physical GPU of a MIG instance

    @property
    def model(self) -> str:
        return product_label(self.name)


def product_label(nvml_name: str) -> str:
    """NVML's "NVIDIA H100 80GB HBM3" → "NVIDIA-H100-80GB-HBM3", gpu-feature-discovery's spelling."""
    return "-".join(nvml_name.split())


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One value of one catalogue row on one device; `labels` are the row's extra labels."""

    metric: str
    device: GpuDevice
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process holding memory on a device (None: the driver does not say how much)."""

    device: GpuDevice
    pid: int
    used_bytes: float | None


@dataclass(frozen=True, slots=True)
class XidCount:
    device: GpuDevice
    xid: int
    count: int


@dataclass(frozen=True, slots=True)
class GpuReading:
    """Everything one collection found. `nvml_up` False means no driver/library: nothing else is set."""

    nvml_up: bool
    time: float = 0.0
    driver_version: str = ""
    devices: tuple[GpuDevice, ...] = ()
    device_up: tuple[tuple[GpuDevice, bool], ...] = ()
    samples: tuple[GpuSample, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    xids: tuple[XidCount, ...] = ()
    errors: tuple[tuple[str, int], ...] = ()           # cumulative read errors by ErrorClass value
    unsupported: tuple[tuple[str, int], ...] = ()      # per device uuid: remembered NotSupported queries
    duration_seconds: float = 0.0
