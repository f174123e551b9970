"""The NVML boundary: the subset of `pynvml` (nvidia-ml-py) llmobs calls, and how its errors are read.

Everything NVML goes through an object with these pynvml function names. In production that object is
the `pynvml` module itself (its ctypes path into libnvidia-ml.so.1); tests pass a fake with the same
names that raises `pynvml.NVMLError(code)` exactly as the binding does. Catalogue rows name further
pynvml functions (`nvmlDeviceGetPowerUsage`, ...) that are looked up on the same object by name.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol

import pynvml


class NvmlLib(Protocol):
    """The pynvml calls the reader makes besides the catalogue's (which are fetched with getattr)."""

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str: ...
    def nvmlDeviceGetName(self, handle: Any) -> str: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any: ...
    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]: ...
    def nvmlDeviceGetNvLinkState(self, handle: Any, link: int) -> int: ...
    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: list[Any]) -> Any: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any: ...
    def nvmlEventSetCreate(self) -> Any: ...
    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: Any) -> None: ...
    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int) -> Any: ...
    def nvmlEventSetFree(self, event_set: Any) -> None: ...


def load_pynvml() -> NvmlLib:
    """The real binding. Importing it loads nothing; `nvmlInit()` is what dlopens libnvidia-ml.so.1."""
    lib: NvmlLib = pynvml  # the module is untyped: this Protocol is what the reader relies on
    return lib


class ErrorClass(Enum):
    """What an NVML error means for the reader."""

    NOT_SUPPORTED = "not_supported"  # permanent for this device+field: remember, never ask again
    GPU_LOST = "gpu_lost"            # the device is gone or wedged: mark it down, not the agent
    TIMEOUT = "timeout"              # event wait found nothing (the normal answer of a 0 ms wait)
    OTHER = "other"                  # transient: count it, drop the value this scrape


# A versioned struct the driver does not know (nvmlMemory_v2 on an old driver) is as permanent as NotSupported.
_ARGUMENT_VERSION_MISMATCH = getattr(pynvml, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH", 25)
_NOT_SUPPORTED = {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
                  pynvml.NVML_ERROR_NO_PERMISSION, pynvml.NVML_ERROR_INVALID_ARGUMENT, _ARGUMENT_VERSION_MISMATCH}
_GPU_LOST = {pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN, pynvml.NVML_ERROR_RESET_REQUIRED}
NO_DRIVER = {pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
             pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, pynvml.NVML_ERROR_NO_PERMISSION}


def error_code(exc: BaseException) -> int | None:
    """The NVML return code carried by a pynvml error (None for anything else)."""
    if isinstance(exc, pynvml.NVMLError):
        return int(exc.value)
    return None


def classify(exc: BaseException) -> ErrorClass:
    """Sort an exception from a pynvml call into what the reader should do about it."""
    code = error_code(exc)
    if code in _NOT_SUPPORTED:
        return ErrorClass.NOT_SUPPORTED
    if code in _GPU_LOST:
        return ErrorClass.GPU_LOST
    if code == pynvml.NVML_ERROR_TIMEOUT:
        return ErrorClass.TIMEOUT
    return ErrorClass.OTHER


def describe(exc: BaseException) -> str:
    """A short message that does not itself call into NVML (str(NVMLError) calls nvmlErrorString)."""
    code = error_code(exc)
    if code is None:
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} (NVML return code {code})"


def text(value: str | bytes) -> str:
    """pynvml returns str from recent versions and bytes from old ones."""
    return value.decode() if isinstance(value, bytes) else value
