"""Runs Debian's real Prometheus server on loopback for tests: own storage dir, own console dirs, a
scrape config pointing at llmobs, optional rule files. Tests query it over the HTTP API."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str) -> str:
    """Path of a real binary; a test without it skips locally, and the CI hook turns that into a failure."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (make test installs Debian's prometheus package)")
    return path


@dataclass
class PrometheusServer:
    workdir: Path
    scrape_targets: list[str]
    scrape_interval: str = "1s"
    rule_files: list[Path] = field(default_factory=list)
    evaluation_interval: str = "1s"
    job: str = "llmobs"
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        binary = require_binary("prometheus")
        self.port = self.port or free_port()
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.scrape_targets}]}],
        }
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        for d in ("consoles", "console_libraries"):
            (self.workdir / d).mkdir(exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen([
                binary, f"--config.file={config_path}", f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.console.templates={self.workdir / 'consoles'}",
                f"--web.console.libraries={self.workdir / 'console_libraries'}",
            ], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "prometheus.log").read_text()[-3000:]
        return ""

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"no series for {expr!r} within {timeout}s")

    def alerts(self) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/alerts", timeout=10)
        r.raise_for_status()
        return r.json()["data"]["alerts"]
