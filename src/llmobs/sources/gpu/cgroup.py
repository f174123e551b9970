"""Process → pod: which Kubernetes pod and container a GPU process belongs to, from /proc/<pid>/cgroup.

The kubelet puts every container in a cgroup whose path names the pod UID and the container ID; the
spelling depends on the cgroup driver and runtime:

    cgroupfs driver   /kubepods/burstable/pod<uid-with-dashes>/<64-hex container id>
    systemd driver    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/
                      cri-containerd-<id>.scope | crio-<id>.scope | docker-<id>.scope
    cgroup v1         one line per hierarchy (`12:memory:/...`); v2: a single `0::/...` line

Static pods carry a 32-hex config hash instead of a UUID. Inside a cgroup namespace, paths outside the
reader's own cgroup are shown with leading `/..` components; the patterns below search, they do not
anchor, so those still match. `proc_root` is a parameter so tests use a temporary directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_POD = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?(?:/|$)")
_CONTAINER = re.compile(r"(?:^|/)(?:(cri-containerd|crio|docker|containerd|libpod)-)?([0-9a-f]{64})(?:\.scope)?$")
_RUNTIMES = {"cri-containerd": "containerd", "containerd": "containerd", "crio": "cri-o", "docker": "docker",
             "libpod": "podman"}


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """Where a process lives. Empty strings when the cgroup does not say (a host process, say)."""

    pod_uid: str = ""
    container_id: str = ""
    runtime: str = ""      # containerd, cri-o, docker; "" when the cgroupfs driver does not name it
    qos_class: str = ""    # guaranteed, burstable, besteffort (kubelet's cgroup tier)


def _candidate_paths(text: str) -> list[str]:
    """cgroup v2's unified line first, then v1 lines in file order (all name the same container)."""
    unified: list[str] = []
    legacy: list[str] = []
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        (unified if hierarchy == "0" and controllers == "" else legacy).append(path)
    return unified + legacy


def parse_cgroup(text: str) -> CgroupInfo:
    """Pod UID (dashed, as the API spells it), container ID and runtime from a /proc/<pid>/cgroup text."""
    for path in _candidate_paths(text):
        pod = _POD.search(path)
        container = _CONTAINER.search(path)
        if pod is None and container is None:
            continue
        uid = pod.group(1).replace("_", "-") if pod else ""
        cid, runtime = "", ""
        if container is not None:
            cid = container.group(2)
            runtime = _RUNTIMES.get(container.group(1) or "", "")
        if "conmon" in path.rsplit("/", 1)[-1]:
            cid, runtime = "", "cri-o"  # CRI-O's monitor process, not the container itself
        qos = ""
        if "kubepods" in path:
            qos = "besteffort" if "besteffort" in path else "burstable" if "burstable" in path else "guaranteed"
        return CgroupInfo(pod_uid=uid, container_id=cid, runtime=runtime, qos_class=qos)
    return CgroupInfo()


def read_cgroup(pid: int, proc_root: Path = Path("/proc")) -> CgroupInfo:
    """Read and parse /proc/<pid>/cgroup; an empty CgroupInfo when the process is gone or unreadable."""
    try:
        return parse_cgroup((proc_root / str(pid) / "cgroup").read_text())
    except OSError:
        return CgroupInfo()


def model_from_cmdline(argv: list[str]) -> str:
    """The model name vLLM reports as `model_name`: --served-model-name, else --model / `vllm serve <m>`.

    Lets the node agent name the model of a GPU process without scraping it (the central exporter
    learns the same name from the page's `model_name` label)."""
    served = model = ""
    for i, arg in enumerate(argv):
        key, eq, val = arg.partition("=")
        nxt = val if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        if key == "--served-model-name" and not served:
            served = nxt
        elif not model:
            is_serve = arg == "serve" and i > 0 and argv[i - 1].endswith("vllm") and not nxt.startswith("-")
            if key == "--model" or is_serve:
                model = nxt
    return served or model


def read_cmdline_model(pid: int, proc_root: Path = Path("/proc")) -> str:
    """model_from_cmdline() of /proc/<pid>/cmdline; "" when unreadable."""
    try:
        raw = (proc_root / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return model_from_cmdline([a.decode(errors="replace") for a in raw.split(b"\0") if a])
