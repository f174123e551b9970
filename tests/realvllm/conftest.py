"""One real vLLM server per session (it takes ~40 s to start on 2 cores), shared by the real-vLLM tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.realvllm.harness import VllmServer, VllmUnavailable, make_model_dir, vllm_python

# A deliberately small KV cache (32 blocks x 128 tokens on the CPU backend) and batch, so a modest burst
# saturates it and the queue builds.
SERVER_ARGS = ("--num-gpu-blocks-override", "32", "--max-num-seqs", "8", "--gpu-memory-utilization", "0.2")


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory):
    try:
        vllm_python()
    except VllmUnavailable as e:
        pytest.skip(str(e))  # fails in CI (tests/conftest.py): the real server is required there
    workdir: Path = tmp_path_factory.mktemp("vllm")
    server = VllmServer(make_model_dir(workdir / "model"), workdir / "vllm.log", SERVER_ARGS)
    server.start()
    yield server
    server.stop()
