"""Real door processes for the real-vLLM tests: the vLLM router (the Rust router of the `vllm-router` PyPI
package) and the LiteLLM proxy (`litellm[proxy]`), each from its own cached venv (scripts/install-door.sh),
started on loopback in front of a real vLLM server."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.realvllm.harness import free_port, stop_process_group

CACHE = Path.home() / ".cache" / "llmobs"
ROUTER_VENV = Path(os.environ.get("LLMOBS_ROUTER_VENV", CACHE / "router-venv"))
LITELLM_VENV = Path(os.environ.get("LLMOBS_LITELLM_VENV", CACHE / "litellm-venv"))


class DoorUnavailable(RuntimeError):
    """A door's venv is missing (run `make test`, which runs scripts/install-door.sh)."""


def _ready(venv: Path, program: str) -> Path:
    path = venv / "bin" / program
    if not (venv / ".llmobs-ready").exists() or not path.exists():
        raise DoorUnavailable(f"{program} missing at {venv}: run `bash scripts/install-door.sh`")
    return path


@dataclass
class _Process:
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def _spawn(self, cmd: list[str], cwd: Path | None = None) -> None:
        # LITELLM_LOCAL_MODEL_COST_MAP: the proxy would otherwise fetch its price list from the internet at start.
        env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=str(cwd) if cwd else None, start_new_session=True)

    def _wait(self, url: str, timeout: float, ok: tuple[int, ...] = (200,)) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}; log tail:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code in ok:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{url} not ready in {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace=20)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class VllmRouter(_Process):
    """`vllm-router` in regular mode, round robin, its Prometheus page on a port of its own.

    Started with no worker URL it listens at once (with one it would wait up to 10 minutes for the worker
    to be healthy before listening), answers 503 `no_available_workers`, and takes workers later through
    its `/add_worker` route: that is the zero-replica door a scale-from-zero test needs."""

    worker_urls: tuple[str, ...] = ()
    port: int = 0
    metrics_port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 120.0) -> None:
        self.port = self.port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        cmd = [str(_ready(ROUTER_VENV, "vllm-router")), "--host", "127.0.0.1", "--port", str(self.port),
               "--policy", "round_robin", "--prometheus-host", "127.0.0.1",
               "--prometheus-port", str(self.metrics_port), "--log-level", "warning",
               "--worker-startup-check-interval", "1"]
        if self.worker_urls:
            cmd += ["--worker-urls", *self.worker_urls]
        self._spawn(cmd)
        self._wait(f"{self.base_url}/health", timeout, ok=(200, 503))
        self._wait(self.metrics_url, timeout)

    def add_worker(self, url: str) -> None:
        response = httpx.post(f"{self.base_url}/add_worker", params={"url": url}, timeout=30)
        response.raise_for_status()


@dataclass
class LitellmProxy(_Process):
    """The LiteLLM proxy with the Prometheus callback, one model group per (public name, vLLM served name)."""

    workdir: Path = Path(".")
    models: dict[str, tuple[str, str]] = field(default_factory=dict)  # public name -> (served name, api_base)
    port: int = 0
    # The proxy refuses to start without a master key (every request would be unauthenticated); clients send it
    # as a bearer token. Its /metrics page needs none by default.
    master_key: str = field(default_factory=lambda: "sk-" + secrets.token_hex(16))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.base_url}/metrics/"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def start(self, timeout: float = 240.0) -> None:
        self.port = self.port or free_port()
        lines = ["model_list:"]
        for public, (served, api_base) in self.models.items():
            lines += [f"  - model_name: {public}", "    litellm_params:", f"      model: hosted_vllm/{served}",
                      f"      api_base: {api_base}", "      api_key: none", "      max_retries: 0"]
        # require_auth_for_metrics_endpoint: false, else the page asks for a key and checking one needs the
        # proxy's database (prisma), which this proxy has none of.
        lines += ["litellm_settings:", '  callbacks: ["prometheus"]', "  num_retries: 0",
                  "  require_auth_for_metrics_endpoint: false",
                  "general_settings:", f"  master_key: {self.master_key}"]
        config = self.workdir / "litellm.yaml"
        config.write_text("\n".join(lines) + "\n")
        cmd = [str(_ready(LITELLM_VENV, "litellm")), "--config", str(config), "--host", "127.0.0.1",
               "--port", str(self.port), "--num_workers", "1"]
        self._spawn(cmd, cwd=self.workdir)
        self._wait(f"{self.base_url}/health/liveliness", timeout)
