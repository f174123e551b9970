"""Process → pod from /proc/<pid>/cgroup, table-driven over the layouts kubelet and the runtimes write
(samples in the exact format of real nodes), plus the vLLM command-line model reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmobs.sources.gpu.cgroup import CgroupInfo, model_from_cmdline, parse_cgroup, read_cgroup, read_cmdline_model

UID = "0a2b3c4d-1111-4222-8333-444455556666"
UID_ = UID.replace("-", "_")
CID = "8f2e4c1b9d7a6e5f4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291807f6e5d"

CASES = [
    # containerd, systemd driver, cgroup v2 (GKE/EKS/most current nodes)
    ("containerd-systemd-v2",
     f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope\n",
     CgroupInfo(UID, CID, "containerd", "burstable")),
    # containerd, cgroupfs driver, cgroup v2, guaranteed QoS (no QoS tier directory)
    ("containerd-cgroupfs-v2-guaranteed", f"0::/kubepods/pod{UID}/{CID}\n", CgroupInfo(UID, CID, "", "guaranteed")),
    # CRI-O (OpenShift), systemd driver, cgroup v2
    ("crio-systemd-v2",
     f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope\n",
     CgroupInfo(UID, CID, "cri-o", "besteffort")),
    # CRI-O's conmon monitor shares the pod but is not the container
    ("crio-conmon-v2",
     f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{CID}.scope\n",
     CgroupInfo(UID, "", "cri-o", "burstable")),
    # dockershim era: docker, cgroupfs driver, cgroup v1 (one line per hierarchy)
    ("docker-cgroupfs-v1",
     f"12:pids:/kubepods/burstable/pod{UID}/{CID}\n11:memory:/kubepods/burstable/pod{UID}/{CID}\n"
     f"10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{CID}\n",
     CgroupInfo(UID, CID, "", "burstable")),
    # docker, systemd driver, cgroup v1
    ("docker-systemd-v1",
     f"11:devices:/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope\n"
     f"4:memory:/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope\n",
     CgroupInfo(UID, CID, "docker", "guaranteed")),
    # containerd, systemd driver, cgroup v1 hybrid (v1 lines plus an empty unified line)
    ("containerd-systemd-v1-hybrid",
     f"12:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope\n0::/\n",
     CgroupInfo(UID, CID, "containerd", "burstable")),
    # kind / nested kubelet under a systemd slice, seen from a private cgroup namespace ("/.." prefix)
    ("nested-cgroupns",
     f"0::/../../kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
     f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n",
     CgroupInfo(UID, CID, "containerd", "besteffort")),
    # static pod: the cgroup names the kubelet's 32-hex config hash, not a UUID
    ("static-pod", f"0::/kubepods/burstable/pod6f1e9b0c2a3d4e5f60718293a4b5c6d7/{CID}\n",
     CgroupInfo("6f1e9b0c2a3d4e5f60718293a4b5c6d7", CID, "", "burstable")),
    # plain docker, no Kubernetes
    ("docker-no-k8s", f"0::/system.slice/docker-{CID}.scope\n", CgroupInfo("", CID, "docker", "")),
    # a host process (nvidia-persistenced, a bare-metal vLLM)
    ("host-process", "0::/system.slice/nvidia-persistenced.service\n", CgroupInfo()),
    ("init-scope-v1", "12:memory:/\n11:pids:/init.scope\n", CgroupInfo()),
    ("empty", "", CgroupInfo()),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in CASES], ids=[c[0] for c in CASES])
def test_parse_cgroup(text: str, expected: CgroupInfo) -> None:
    assert parse_cgroup(text) == expected


def test_read_cgroup_uses_the_proc_root(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(CASES[0][1])
    assert read_cgroup(4242, tmp_path).pod_uid == UID
    assert read_cgroup(999, tmp_path) == CgroupInfo()  # the process exited between NVML and /proc


@pytest.mark.parametrize(("argv", "model"), [
    (["/usr/bin/python3", "/usr/local/bin/vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", "8000"],
     "meta-llama/Llama-3.1-8B-Instruct"),
    (["vllm", "serve", "Qwen/Qwen2.5-7B", "--served-model-name", "qwen", "qwen-alias"], "qwen"),
    (["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/llama", "--tensor-parallel-size",
      "2"], "/models/llama"),
    (["python3", "-m", "vllm.entrypoints.openai.api_server", "--model=/models/m", "--served-model-name=m1"], "m1"),
    (["vllm", "serve", "--config", "c.yaml"], ""),
    (["nvidia-smi"], ""),
])
def test_model_from_cmdline(argv: list[str], model: str) -> None:
    assert model_from_cmdline(argv) == model


def test_read_cmdline_model(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cmdline").write_bytes(b"vllm\0serve\0org/model\0--port\x008000\0")
    assert read_cmdline_model(7, tmp_path) == "org/model"
    assert read_cmdline_model(8, tmp_path) == ""
