"""The real ctypes path of nvidia-ml-py against a fake `libnvidia-ml.so.1` written in C.

pynvml dlopens "libnvidia-ml.so.1" by that bare name, so a child process started with LD_LIBRARY_PATH
pointing at our build loads the fake exactly as it would load the driver's library: argument and struct
marshalling (nvmlMemory_t, nvmlUtilization_t, nvmlProcessInfo_v3 two-call sizing, nvmlEventData_t),
return codes turned into NVMLError subclasses, and our reader on top, are all exercised for real. The
library counts calls per function so the test can check NotSupported is not asked again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_NVML_C = r"""
#include <string.h>
#include <stdio.h>

typedef int nvmlReturn_t;
typedef struct { int index; } dev_t_;
typedef dev_t_ *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; }
    nvmlProcessInfo_t;
typedef struct { nvmlDevice_t device; unsigned long long eventType, eventData; unsigned int gpuInstanceId,
    computeInstanceId; } nvmlEventData_t;
typedef struct { int used; int pending_xids; } eventset_t;

#define OK 0
#define NOT_SUPPORTED 3
#define INSUFFICIENT_SIZE 7
#define TIMEOUT 10
#define GPU_IS_LOST 15

static dev_t_ devs[2] = {{0}, {1}};
static eventset_t the_set = {0, 2};
static int calls_pcie = 0, calls_power = 0, calls_wait = 0;

int fake_calls(const char *name) {
    if (!strcmp(name, "pcie")) return calls_pcie;
    if (!strcmp(name, "power")) return calls_power;
    if (!strcmp(name, "wait")) return calls_wait;
    return -1;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { return OK; }
nvmlReturn_t nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(nvmlReturn_t r) { return "fake nvml error"; }
nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n) { snprintf(v, n, "999.1.2"); return OK; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c) { *c = 2; return OK; }
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) { *d = &devs[i]; return OK; }
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *u, unsigned int n) {
    snprintf(u, n, "GPU-fake-%d", d->index); return OK; }
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *s, unsigned int n) {
    snprintf(s, n, "NVIDIA A100-SXM4-80GB"); return OK; }
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *c, unsigned int *p) { return NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned int link, int *s) { return NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    if (d->index == 1) return GPU_IS_LOST;
    u->gpu = 87; u->memory = 33; return OK; }
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    m->total = 85899345920ULL; m->used = 1073741824ULL * 70; m->free = m->total - m->used; return OK; }
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) { calls_power++; *mw = 312345; return OK; }
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) { *mw = 400000; return OK; }
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
    if (sensor != 0) return NOT_SUPPORTED; *t = 64; return OK; }
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz) {
    *mhz = type == 1 ? 1410 : (type == 2 ? 1593 : 0); return type == 1 || type == 2 ? OK : NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t d, int counter, unsigned int *v) {
    calls_pcie++; return NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter, unsigned long long *c) {
    *c = type == 1 ? 2 : 41; return OK; }  /* 1 = uncorrected, 0 = corrected */
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r) {
    *r = 0x40ULL | 0x4ULL; return OK; }
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *p) {
    if (p == NULL) { *count = 2; return INSUFFICIENT_SIZE; }
    if (*count < 2) return INSUFFICIENT_SIZE;
    p[0].pid = 4242; p[0].usedGpuMemory = 1073741824ULL * 60; p[0].gpuInstanceId = 0xFFFFFFFF;
    p[1].pid = 4343; p[1].usedGpuMemory = 1073741824ULL * 10; p[1].gpuInstanceId = 0xFFFFFFFF;
    *count = 2; return OK; }
nvmlReturn_t nvmlEventSetCreate(eventset_t **s) { *s = &the_set; the_set.used = 1; return OK; }
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, eventset_t *s) { return OK; }
nvmlReturn_t nvmlEventSetFree(eventset_t *s) { s->used = 0; return OK; }
nvmlReturn_t nvmlEventSetWait_v2(eventset_t *s, nvmlEventData_t *e, unsigned int timeout_ms) {
    calls_wait++;
    if (timeout_ms != 0) return 999;            /* the reader must never block */
    if (s->pending_xids == 0) return TIMEOUT;
    s->pending_xids--;
    e->device = &devs[0]; e->eventType = 0x8ULL; e->eventData = s->pending_xids ? 79 : 48;
    return OK; }
"""

CHILD = r"""
import ctypes, json, logging, sys
logging.basicConfig(level=logging.DEBUG)
from llmobs.sources.gpu.reader import NvmlReader
r = NvmlReader()
first = r.collect()
second = r.collect()
lib = ctypes.CDLL("libnvidia-ml.so.1")
lib.fake_calls.argtypes = [ctypes.c_char_p]
out = {
    "up": second.nvml_up, "driver": second.driver_version,
    "device_up": {d.uuid: ok for d, ok in second.device_up},
    "samples": [[s.metric, s.device.uuid, dict(s.labels), s.value] for s in second.samples],
    "processes": [[p.device.uuid, p.pid, p.used_bytes] for p in second.processes],
    "xids": [[x.device.uuid, x.xid, x.count] for x in second.xids],
    "calls": {k: lib.fake_calls(k.encode()) for k in ("pcie", "power", "wait")},
}
r.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fake_lib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler is needed to build the fake libnvidia-ml.so.1 (apt-get install gcc)"
    d = tmp_path_factory.mktemp("fake-nvml")
    (d / "fake_nvml.c").write_text(FAKE_NVML_C)
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(d / "libnvidia-ml.so.1"), str(d / "fake_nvml.c")],
                   check=True, capture_output=True, timeout=60)
    return d


def test_reader_through_real_ctypes_against_fake_library(fake_lib_dir: Path) -> None:
    env = dict(os.environ, LD_LIBRARY_PATH=f"{fake_lib_dir}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["up"] is True and out["driver"] == "999.1.2"
    # GPU 1 answers GPU_IS_LOST on its first field: down, while GPU 0 is read.
    assert out["device_up"] == {"GPU-fake-0": True, "GPU-fake-1": False}
    values = {(m, u, tuple(sorted(lb.items()))): v for m, u, lb, v in out["samples"]}
    g0 = "GPU-fake-0"
    assert values[("llmobs_gpu_utilization_ratio", g0, ())] == pytest.approx(0.87)
    assert values[("llmobs_gpu_memory_bandwidth_utilization_ratio", g0, ())] == pytest.approx(0.33)
    assert values[("llmobs_gpu_memory_used_bytes", g0, ())] == 70 * 2**30  # v1: the C fake has no _v2 symbol
    assert ("llmobs_gpu_memory_reserved_bytes", g0, ()) not in values
    assert values[("llmobs_gpu_memory_total_bytes", g0, ())] == 80 * 2**30
    assert values[("llmobs_gpu_power_watts", g0, ())] == pytest.approx(312.345)
    assert values[("llmobs_gpu_power_limit_watts", g0, ())] == pytest.approx(400.0)
    assert values[("llmobs_gpu_temperature_celsius", g0, ())] == 64
    assert values[("llmobs_gpu_sm_clock_hertz", g0, ())] == 1410e6
    assert values[("llmobs_gpu_memory_clock_hertz", g0, ())] == 1593e6
    assert values[("llmobs_gpu_ecc_errors_total", g0, (("type", "uncorrected"),))] == 2
    assert values[("llmobs_gpu_ecc_errors_total", g0, (("type", "corrected"),))] == 41
    assert values[("llmobs_gpu_throttle_reasons", g0, (("reason", "hw_thermal"),))] == 1
    assert values[("llmobs_gpu_throttle_reasons", g0, (("reason", "sw_power_cap"),))] == 1
    assert values[("llmobs_gpu_throttle_reasons", g0, (("reason", "sw_thermal"),))] == 0
    assert not any(m.startswith("llmobs_gpu_pcie") for m, *_ in out["samples"])
    assert not any(u == "GPU-fake-1" for _, u, *_ in out["samples"])
    # Two-call sizing of nvmlDeviceGetComputeRunningProcesses_v3 through ctypes.
    assert out["processes"] == [[g0, 4242, 60 * 2**30], [g0, 4343, 10 * 2**30]]
    # Both queued XIDs drained with 0 ms waits in the first collection, none re-counted in the second.
    assert sorted(out["xids"]) == [[g0, 48, 1], [g0, 79, 1]]
    # PCIe tx and rx (read in their own threads) answered NotSupported once on each GPU and were never
    # asked again; power was read on both collections of GPU 0 only (GPU 1 is lost before it).
    assert out["calls"]["pcie"] == 4
    assert out["calls"]["power"] == 2
    assert out["calls"]["wait"] >= 3
