"""The core install is enough for the core job: scrape a vLLM page, derive the signals, serve /metrics.

Builds llmobs from this checkout and installs it *without extras* into a fresh venv (pip resolves the
core dependencies from PyPI, at constraints.txt's versions), then, in that venv: no optional library is
installed, `llmobs run` scrapes a vLLM page served on loopback and exports its signals, and features
whose extra is missing print one line naming the extra and exit 2.

The venv is cached under ~/.cache/llmobs, keyed by pyproject.toml and constraints.txt (the inputs that
decide the dependencies); llmobs itself is reinstalled from this checkout on every run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.pageserver import FixturePageServer

pytestmark = pytest.mark.packaging

ROOT = REPO
FIXTURE = ROOT / "tests" / "fixtures" / "vllm-0.32.0-cpu-metrics.txt"
HEAVY = ("numpy", "pandas", "sklearn", "statsmodels", "matplotlib", "grpc", "opentelemetry")
OPTIONAL = ("numpy", "pandas", "sklearn", "statsmodels", "matplotlib", "grpc", "google.protobuf", "opentelemetry",
            "kubernetes", "pynvml")


def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *args], check=True, timeout=900, capture_output=True)


def _venv(extras: str) -> Path:
    """llmobs from this checkout with `extras` ("" = the core) in a venv of its own, cached by the inputs
    that decide its dependencies."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes())
    venv = Path.home() / ".cache" / "llmobs" / f"{extras or 'core'}-venv-{key.hexdigest()[:16]}"
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        _pip(venv, "-c", str(ROOT / "constraints.txt"), target)
        (venv / ".complete").touch()
    else:  # same dependencies: refresh llmobs itself from this checkout
        _pip(venv, "--no-deps", "--force-reinstall", str(ROOT))
    return venv


@pytest.fixture(scope="module")
def core_venv() -> Path:
    return _venv("")


def _run(venv: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=timeout, cwd=venv, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv)})


@pytest.fixture
def vllm_page() -> Iterator[str]:
    """A vLLM /metrics page (a real one, saved) served on loopback."""
    with FixturePageServer() as url:
        yield url


def test_core_install_has_no_optional_library(core_venv: Path) -> None:
    check = ("import importlib.util as u, llmobs, llmobs.config, llmobs.runtime, llmobs.cli\n"
             f"print([m for m in {OPTIONAL!r} if u.find_spec(m.split('.')[0]) is not None])")
    result = _run(core_venv, "python", "-c", check)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_core_install_scrapes_and_exports(core_venv: Path, vllm_page: str, tmp_path: Path) -> None:
    config = tmp_path / "llmobs.yaml"
    config.write_text(f"targets:\n  - url: {vllm_page}\n    labels: {{node: n1}}\n"
                      "scrape: {interval_seconds: 0.3}\nserver: {host: 127.0.0.1, port: 0}\n")
    proc = subprocess.Popen([str(core_venv / "bin" / "llmobs"), "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{core_venv / 'bin'}:/usr/bin:/bin"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert port, first
        url = f"http://127.0.0.1:{port.group(1)}/metrics"
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            page = urllib.request.urlopen(url, timeout=5).read().decode()
            if "llmobs_request_rate{" in page:
                break
            time.sleep(0.3)
        assert re.search(r'^llmobs_target_up\{endpoint="127\.0\.0\.1:\d+",gpu_model="",node="n1"\} 1\.0$', page, re.M)
        assert re.search(r'^llmobs_kv_cache_utilization_ratio\{.*model="[^"]+".*\} ', page, re.M), page[-2000:]
        assert "llmobs_request_rate{" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()  # the pipe is ours to close (ResourceWarning otherwise)


@pytest.mark.parametrize(("args", "extra"), [
    (("forecast", "backtest", "--trace", str(FIXTURE)), "forecast"),
    (("forecast", "simulate", "--trace", str(FIXTURE), "--capacity-per-replica", "2"), "forecast"),
    (("forecast", "capacity", "--model-config", str(FIXTURE)), "forecast"),
    (("agent",), "agent"),
])
def test_feature_without_its_extra_is_one_line(core_venv: Path, args: tuple[str, ...], extra: str) -> None:
    result = _run(core_venv, "llmobs", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {extra} needs the [{extra}] extra (")
    assert lines[0].endswith(f"is not installed): pip install 'llmobs[{extra}]'")


@pytest.mark.parametrize(("section", "extra"), [
    ("scaler: {enabled: true, port: 0}", "scaler"),
    ("otlp: {enabled: true}", "otlp"),
    ("forecast: {enabled: true}", "forecast"),
    ("kubernetes: {enabled: true}", "kubernetes"),
])
def test_exporter_component_without_its_extra_is_one_line(core_venv: Path, tmp_path: Path, section: str,
                                                          extra: str) -> None:
    config = tmp_path / "llmobs.yaml"
    config.write_text(f"server: {{host: 127.0.0.1, port: 0}}\n{section}\n")
    for check in ((), ("--check-config",)):
        result = _run(core_venv, "llmobs", "run", "--config", str(config), *check)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pip install 'llmobs[{extra}]'" in lines[0], result.stderr


def test_agent_extra_alone_runs_the_node_agent(tmp_path: Path) -> None:
    """The node agent's image installs `[agent]` only: no forecasting, gRPC or OpenTelemetry, and the agent
    serves (`llmobs_nvml_up` is 0 here without a driver, 1 with one)."""
    venv = _venv("agent")
    check = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m) is not None])"
    assert _run(venv, "python", "-c", check).stdout.strip() == "[]"
    config = tmp_path / "agent.yaml"
    config.write_text("host: 127.0.0.1\nport: 0\ninterval_seconds: 0.5\n")
    proc = subprocess.Popen([str(venv / "bin" / "llmobs"), "agent", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "NODE_NAME": "n1"})
    try:
        assert proc.stdout is not None
        port = None
        for _ in range(20):
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"llmobs agent on 127\.0\.0\.1:(\d+)", line)
            if found:
                port = found.group(1)
                break
        assert port, "the agent did not start"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert re.search(r"^llmobs_nvml_up [01]\.0$", page, re.M), page[:2000]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()  # the pipe is ours to close (ResourceWarning otherwise)
