"""Fault-injection soak: the exporter against a fleet where targets die, hang, answer garbage and restart.

Of the simulated vLLM replicas (demo fleet, vLLM 0.32 pages, Azure 2023 traces): 10 % are dead
(nothing listens on their port), 10 % answer slower than the scrape timeout, 5 % answer garbage (binary
junk, HTML served as text/plain, a truncated page, NaN values, a page of 100k lines), 5 % restart (every
counter back to zero) every `--restart-period` seconds (60), and the rest are healthy.

The simulator runs in its own process (as benchmarks/fleet.py's do, and as vLLM does on other machines),
so the exporter's process holds only the exporter: the scrape loop (`Pipeline` with the `GcPolicy` cycle hook, as
`llmobs run` starts it) and this script's bookkeeping. `--sim-in-process` serves the fleet from a
thread of the exporter's process instead (how tests/test_faults.py runs it), sharing its GIL.

Checked at the end, after the exporter's loop is stopped (the replicas advance only when their page is
read, so their counters then hold still): every healthy target is up with no failure, and its
reset-adjusted `requests_total` equals exactly what the simulated replica served; restarting targets
had their resets counted and never a negative rate; faulty targets are down with the right error kind;
nothing crashed (every cycle completed). Memory: the exporter's RSS is sampled every `--rss-every`
seconds; the report gives the first and last samples after warm-up and the growth between them.

    .venv/bin/python benchmarks/soak.py [--targets 200] [--duration 1800] [--interval 5] [--timeout 3]

tests/test_faults.py runs the same harness at 40 targets for a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from llmobs.demo.fleet import CONTENT_TYPE, ModelDeployment, SimulatedFleet
from llmobs.demo.replica import ReplicaSpec
from llmobs.demo.trace import default_traces_dir, load_request_trace
from llmobs.pipeline import Pipeline
from llmobs.sources.targets import Target

KINDS = ("dead", "slow", "garbage", "restart")
FRACTIONS = {"dead": 0.10, "slow": 0.10, "garbage": 0.05, "restart": 0.05}
# error kind llmobs must report for each fault (garbage pages may fail in several ways)
# (a 100k-line garbage page may also take longer than the timeout to arrive)
EXPECTED_ERRORS = {"dead": {"connect"}, "slow": {"timeout"},
                   "garbage": {"parse", "empty", "content_type", "too_large", "timeout"}}


def _garbage(rng: random.Random, page: str, huge: bool) -> str:
    choice = rng.randrange(5)
    if choice == 0:
        return "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(1, 4000)))
    if choice == 1:
        return "<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    if choice == 2:
        return "\n".join(f"junk_{i}{{a=\"{rng.random()}\"}} NaN" for i in range(100_000 if huge else 50))
    if choice == 3:
        return page[: rng.randrange(0, 200)].replace("vllm:", "vllm-")  # truncated and renamed: no vLLM series
    return "\x00" * rng.randrange(1, 100)


@dataclass
class FaultyFleet:
    """The demo fleet with a fault per replica name; serves /replicas/<name>/metrics like the real one."""

    fleet: SimulatedFleet
    faults: dict[str, str]
    slow_seconds: float
    restart_period: float
    seed: int = 0
    huge_garbage: bool = True  # some garbage pages are 100k lines (~3.5 MB): parsing them takes the scraper's time
    restarts: dict[str, int] = field(default_factory=dict)
    _last_restart: dict[str, float] = field(default_factory=dict)

    def app(self) -> Starlette:
        rng = random.Random(self.seed)

        async def metrics(request: Request) -> Response:
            name = request.path_params["name"]
            kind = self.faults.get(name, "healthy")
            now = time.time()
            if kind == "slow":
                await asyncio.sleep(self.slow_seconds)
            if kind == "restart":
                last = self._last_restart.setdefault(name, now)
                if now - last >= self.restart_period:
                    self.fleet.replica(name).restart(now)
                    self._last_restart[name] = now
                    self.restarts[name] = self.restarts.get(name, 0) + 1
            page = self.fleet.page(name, now)
            if kind == "garbage":
                huge = self.huge_garbage and rng.random() < 0.2
                return Response(_garbage(rng, page, huge), headers={"Content-Type": "text/plain"})
            return Response(page, headers={"Content-Type": CONTENT_TYPE})

        async def truth(request: Request) -> Response:
            """What each replica has served since its last restart (reading it advances nothing)."""
            return PlainTextResponse(json.dumps({"served": self.served(), "restarts": self.restarts}))

        async def layout(request: Request) -> Response:
            """The faults and the scrape targets (for the base URL asked for), for a scraper elsewhere."""
            base = request.query_params["base"]
            targets = [[t.url, t.name, t.labels] for t in self.fleet.targets(base)]
            return PlainTextResponse(json.dumps({"faults": self.faults, "targets": targets}))

        return Starlette(routes=[Route("/replicas/{name}/metrics", metrics), Route("/truth", truth),
                                 Route("/layout", layout)])

    def served(self) -> dict[str, float]:
        return {name: sum(self.fleet.replica(name).success.values()) for name in self.fleet.replica_names}


def serve_in_thread(app: Starlette) -> tuple[int, threading.Thread, list]:
    """Serve `app` on loopback from its own thread and event loop, so the simulator's work never sits in
    the scraper's loop (in production they are different machines). Returns (port, thread, [server])."""
    import uvicorn

    ready = threading.Event()
    holder: list = []

    def run() -> None:
        async def main() -> None:
            from llmobs.runtime import serve_asgi

            server, task, port = await serve_asgi(app, "127.0.0.1", 0)
            holder.extend([server, port])
            ready.set()
            await task

        asyncio.run(main())

    thread = threading.Thread(target=run, name="fleet-server", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("fleet server did not start")
    server: uvicorn.Server = holder[0]
    return holder[1], thread, [server]


def stop_thread_server(thread: threading.Thread, servers: list) -> None:
    servers[0].should_exit = True
    thread.join(timeout=15)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(n_targets: int, *, slow_seconds: float, restart_period: float, speedup: float = 4.0,
          seed: int = 0) -> tuple[FaultyFleet, dict[str, str]]:
    """A fleet of `n_targets` replicas over two models and the fault of each (FRACTIONS, deterministic)."""
    traces = default_traces_dir()
    half = n_targets // 2
    spec = ReplicaSpec(kv_blocks=1024, max_num_seqs=48, tick_seconds=0.5)
    fleet = SimulatedFleet([
        ModelDeployment("llama", load_request_trace(traces / "AzureLLMInferenceTrace_conv.csv"), replicas=half,
                        speedup=speedup * max(1.0, half / 8), spec=spec),
        ModelDeployment("coder", load_request_trace(traces / "AzureLLMInferenceTrace_code.csv"),
                        replicas=n_targets - half, speedup=speedup * max(1.0, (n_targets - half) / 8), spec=spec),
    ])
    names = fleet.replica_names
    random.Random(seed).shuffle(names)
    faults: dict[str, str] = {}
    start = 0
    for kind in KINDS:
        count = round(FRACTIONS[kind] * n_targets)
        for name in names[start:start + count]:
            faults[name] = kind
        start += count
    return FaultyFleet(fleet, faults, slow_seconds, restart_period, seed), faults


def targets_for(fleet: SimulatedFleet | list[Target], faults: dict[str, str], base_url: str) -> list[Target]:
    """Scrape targets; a dead replica's URL points at a port nothing listens on."""
    out = []
    dead_base = f"http://127.0.0.1:{closed_port()}"
    for t in fleet if isinstance(fleet, list) else fleet.targets(base_url):
        if faults.get(t.name) == "dead":
            t = Target(t.url.replace(base_url, dead_base), t.name, t.labels)
        out.append(t)
    return out


def serve_process(n_targets: int, timeout: float, restart_period: float) -> tuple[subprocess.Popen, int]:
    """Run the faulty fleet in a child process (`--serve`); returns it and its port once it answers."""
    import httpx

    port = closed_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--targets", str(n_targets),
                              "--timeout", str(timeout), "--restart-period", str(restart_period)],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit("simulator process exited")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/truth", timeout=5).status_code == 200:
                return child, port
        time.sleep(0.3)
    child.kill()
    raise SystemExit("simulator process did not start")


def run_simulator(port: int, n_targets: int, timeout: float, restart_period: float) -> None:
    """Child: serve the faulty fleet of `build` on 127.0.0.1:port until terminated."""
    import uvicorn

    faulty, _ = build(n_targets, slow_seconds=timeout * 2, restart_period=restart_period)
    uvicorn.run(faulty.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096)


def check(pipeline: Pipeline, faults: dict[str, str], served: dict[str, float]) -> list[str]:
    """Problems found in the pipeline's last state (empty when every property holds)."""
    problems: list[str] = []
    state = pipeline.holder.current
    health = {h.endpoint: h for h in state.targets}
    by_endpoint: dict[str, list] = {}
    for s in state.signals:
        by_endpoint.setdefault(s.attribution.endpoint, []).append(s)
        rates = (s.request_rate, s.prompt_tokens_rate, s.generation_tokens_rate, *s.finished_rate_by_reason.values())
        if any(r < 0 or math.isnan(r) for r in rates):
            problems.append(f"{s.attribution.endpoint}: negative or NaN rate {rates}")
    for name, h in health.items():
        kind = faults.get(name, "healthy")
        signals = by_endpoint.get(name, [])
        if kind == "healthy":
            if not h.up or h.errors_by_kind:
                problems.append(f"healthy {name}: up={h.up} errors={h.errors_by_kind} ({h.last_error})")
            total = sum(v for s in signals for k, v in s.totals.items() if k.startswith("requests:"))
            if total != served[name]:
                problems.append(f"healthy {name}: requests_total {total} != served {served[name]}")
        elif kind == "restart":
            if not h.up:
                problems.append(f"restarting {name}: down ({h.last_error_kind}: {h.last_error})")
        else:
            if h.up or not set(h.errors_by_kind) <= EXPECTED_ERRORS[kind] or not h.errors_by_kind:
                problems.append(f"{kind} {name}: up={h.up} errors={h.errors_by_kind}")
            if signals:
                problems.append(f"{kind} {name}: has signals")
    return problems


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(n_targets: int, duration: float, interval: float, timeout: float, restart_period: float,
               rss_every: float, sim_in_process: bool = False) -> None:
    import httpx

    from llmobs.serving.gc import GcPolicy
    from llmobs.sources.scrape import Scraper
    from llmobs.sources.targets import StaticTargetSource
    from llmobs.state import StateHolder

    child = None
    if sim_in_process:
        faulty, faults = build(n_targets, slow_seconds=timeout * 2, restart_period=restart_period)
        port, thread, servers = serve_in_thread(faulty.app())
        base = f"http://127.0.0.1:{port}"
        targets = targets_for(faulty.fleet, faults, base)
    else:
        child, port = serve_process(n_targets, timeout, restart_period)
        base = f"http://127.0.0.1:{port}"
        layout = httpx.get(f"{base}/layout", params={"base": base}, timeout=30).json()
        faults = layout["faults"]
        targets = targets_for([Target(u, n, lab) for u, n, lab in layout["targets"]], faults, base)
    pipeline = Pipeline(StaticTargetSource(targets), Scraper(timeout_seconds=timeout, max_concurrency=128),
                        StateHolder(), cycle_hook=GcPolicy())
    stop = asyncio.Event()
    loop_task = asyncio.create_task(pipeline.run_forever(interval, stop))
    cpu0 = time.process_time()
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    cycle_times: list[float] = []
    seen = 0
    next_rss = t0 + min(60.0, duration / 5)
    while time.monotonic() - t0 < duration:
        await asyncio.sleep(0.5)
        if pipeline.cycles != seen:
            seen = pipeline.cycles
            cycle_times.append(pipeline.holder.current.cycle_duration_seconds)
        if time.monotonic() >= next_rss:
            samples.append((time.monotonic() - t0, rss_mb()))
            next_rss += rss_every
    stop.set()
    await loop_task
    cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)
    if child is None:
        served, restarts = faulty.served(), dict(faulty.restarts)
    else:
        truth = httpx.get(f"{base}/truth", timeout=30).json()
        served, restarts = truth["served"], truth["restarts"]
    problems = check(pipeline, faults, served)
    await pipeline.scraper.aclose()
    if child is None:
        stop_thread_server(thread, servers)
    else:
        child.terminate()
        child.wait(timeout=30)
    counts = {k: sum(1 for v in faults.values() if v == k) for k in KINDS}
    counts["healthy"] = n_targets - sum(counts.values())
    print(f"soak: {n_targets} targets {counts}, interval {interval:g} s, timeout {timeout:g} s, "
          f"restart every {restart_period:g} s, {duration:.0f} s, {pipeline.cycles} cycles, "
          f"{sum(restarts.values())} restarts")
    where = "exporter and simulator share this process" if child is None else "exporter process; simulator apart"
    print(f"cycles: p50 {sorted(cycle_times)[len(cycle_times) // 2]:.2f} s, max {max(cycle_times):.2f} s; "
          f"CPU {cpu:.3f} cores ({where})")
    print("rss MB over time: " + ", ".join(f"{t:.0f}s={m:.0f}" for t, m in samples))
    if len(samples) >= 2:
        print(f"rss growth after warm-up: {samples[-1][1] - samples[0][1]:+.1f} MB "
              f"(peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    print(f"problems: {len(problems)}")
    for p in problems[:20]:
        print("  " + p)
    print("result: " + ("PASS" if not problems else "FAIL"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--duration", type=float, default=1800.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--restart-period", type=float, default=60.0)
    ap.add_argument("--rss-every", type=float, default=60.0)
    ap.add_argument("--sim-in-process", action="store_true",
                    help="serve the simulated fleet from a thread of this process (default: its own process)")
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.serve:
        run_simulator(args.serve, args.targets, args.timeout, args.restart_period)
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(soak(args.targets, args.duration, args.interval, args.timeout, args.restart_period,
                         args.rss_every, args.sim_in_process))


if __name__ == "__main__":
    main()
