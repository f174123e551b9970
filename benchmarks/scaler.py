"""KEDA scaler benchmark: open-loop KEDA traffic against the exporter while it scrapes 1,000 replicas.

What KEDA really sends: each ScaledObject's triggers are polled every 15–30 s (IsActive, GetMetricSpec)
and the HPA syncs every 15 s (GetMetricSpec, GetMetrics), so 1,000 ScaledObjects make about 150 calls/s,
with a 3 s deadline. This benchmark sends ~7× that — 1,000 calls/s by default, over 4 HTTP/2 connections
— to the scaler of ONE llmobs process started as `llmobs run` starts it (`llmobs.runtime.start_exporter`,
scaler enabled, default scrape interval) while that same process scrapes 1,000 simulated vLLM replicas
(benchmarks/fleet.py's simulator, in its own processes). The call mix is KEDA's: half GetMetrics, a quarter
GetMetricSpec, a quarter IsActive, over 16 triggers (4 models × 4 signals).

Open loop (no coordinated omission): every call has a scheduled send time on a fixed grid (rate ÷
connections per connection, connections staggered), is sent at that time whether or not earlier calls
have returned, and its latency is measured from the *scheduled* time — so a stalled server or a late
client shows up in the figures instead of silently slowing the load down.

Load generator: Python grpc.aio in `--load-procs` processes of their own (each a share of the
connections; `grpc.use_local_subchannel_pool` so each channel is its own HTTP/2 connection). It needs only
grpcio, a dependency of llmobs itself, so nothing can be missing. Its headroom is printed: the CPU each
generator process used and how late it fired calls against their schedule (that lateness is inside the
reported latency, so the figures are an upper bound on the scaler's own).

Printed: p50/p99/max (overall and per method), the achieved rate, errors (calls past the 3 s deadline
count as late, at their latency; any other error stops the run), the exporter's CPU over the
measured window and its scrape cycles; last line `ratio: X` = 5 ms ÷ p99 (≥ 1: p99 within 5 ms).

    .venv/bin/python benchmarks/scaler.py [--rate 1000] [--connections 4] [--duration 40] [--endpoints 1000]
                                          [--engine aio|native]   # native: the opt-in C++ front end (make native)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from fleet import cpu_seconds, free_port, peak_rss_mb  # noqa: E402  (the fleet simulator and /proc helpers)

TARGET_P99_S = 0.005
KEDA_DEADLINE_S = 3.0
SIGNALS = ("queue_depth", "requests_running", "kv_utilization", "request_rate")
# KEDA's mix per trigger: the scale loop's IsActive + GetMetricSpec, the HPA's GetMetricSpec + GetMetrics.
MIX = ("GetMetrics", "GetMetricSpec", "GetMetrics", "IsActive")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


# ---------------------------------------------------------------- child: the exporter
async def run_exporter(urls_file: Path, out: Path, engine: str) -> None:
    """`start_exporter` (scaler on) on the simulated targets; report ports, then stats when told to stop."""
    from llmobs.config import LlmobsConfig, ServerConfig
    from llmobs.runtime import start_exporter
    from llmobs.serving.scaler.config import ScalerConfig
    from llmobs.sources.targets import StaticTargetSource, Target

    urls = json.loads(urls_file.read_text())
    targets = [Target(u, u.split("//", 1)[1].replace("/replicas/", "/").removesuffix("/metrics")) for u in urls]
    cfg = LlmobsConfig(server=ServerConfig(host="127.0.0.1", port=0),
                       scaler=ScalerConfig(enabled=True, host="127.0.0.1", port=0, engine=engine))
    exporter = await start_exporter(cfg, StaticTargetSource(targets))
    assert exporter.scaler is not None
    print(json.dumps({"scaler_port": exporter.scaler.port, "interval": cfg.scrape.interval_seconds}), flush=True)
    cycles: list[tuple[int, float]] = []
    seen = 0
    stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    while not stop.done():
        await asyncio.sleep(0.2)
        if exporter.pipeline.cycles != seen:
            seen = exporter.pipeline.cycles
            cycles.append((seen, exporter.holder.current.cycle_duration_seconds))
            print(json.dumps({"cycles": seen}), flush=True)
    state = exporter.holder.current
    out.write_text(json.dumps({
        "cycles": cycles, "targets_up": sum(h.up for h in state.targets), "targets": len(state.targets),
        "models": sorted({s.attribution.model for s in state.signals}), "peak_rss_mb": peak_rss_mb(os.getpid()),
        "counts": [[m, c, n] for (m, c), n in exporter.scaler.stats.counts().items()],
    }))
    await exporter.stop()


# ---------------------------------------------------------------- child: the open-loop load generator
async def run_load(port: int, models: list[str], rate: float, connections: int, first: int, total: int,
                   warmup: float, duration: float, out: Path) -> None:
    """Drive `connections` channels (global indexes first.., of `total`) at rate/total calls/s each."""
    import grpc

    from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
    from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc

    triggers = [{"scalerAddress": f"llmobs:{port}", "model": m, "signal": s} for m in models for s in SIGNALS]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(connections)]
    stubs = [pb_grpc.ExternalScalerStub(c) for c in channels]
    refs = [pb.ScaledObjectRef(name=f"so-{i}", namespace="bench", scalerMetadata=t) for i, t in enumerate(triggers)]
    names = [(await stubs[0].GetMetricSpec(r, timeout=KEDA_DEADLINE_S)).metricSpecs[0].metricName for r in refs]
    for stub in stubs:  # open every connection before the clock starts
        await stub.IsActive(refs[0], timeout=KEDA_DEADLINE_S)
    per_conn = rate / total
    results: list[tuple[float, str, float, str]] = []  # (scheduled, method, latency, code)
    lags: list[float] = []
    pending: set[asyncio.Task] = set()

    async def call(stub: pb_grpc.ExternalScalerStub, n: int, scheduled: float) -> None:
        method = MIX[n % len(MIX)]  # n: this connection's call count (+ an offset per connection)
        trigger = (n // len(MIX)) % len(refs)
        ref = refs[trigger]
        code = "OK"
        try:
            if method == "GetMetrics":
                await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=names[trigger]),
                                      timeout=KEDA_DEADLINE_S)
            elif method == "GetMetricSpec":
                await stub.GetMetricSpec(ref, timeout=KEDA_DEADLINE_S)
            else:
                await stub.IsActive(ref, timeout=KEDA_DEADLINE_S)
        except grpc.aio.AioRpcError as e:
            code = e.code().name
        results.append((scheduled, method, time.perf_counter() - scheduled, code))

    async def drive(stub: pb_grpc.ExternalScalerStub, index: int, start: float, end: float) -> None:
        period = 1.0 / per_conn
        n = 0
        while (scheduled := start + (index / total + n) * period) < end:
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - scheduled)
            task = asyncio.create_task(call(stub, n + 5 * index, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1

    start = time.perf_counter() + 0.5
    cpu0 = time.process_time()
    await asyncio.gather(*(drive(s, first + i, start, start + warmup + duration) for i, s in enumerate(stubs)))
    if pending:
        await asyncio.wait(pending, timeout=KEDA_DEADLINE_S + 1)
    cpu = time.process_time() - cpu0
    measured_from = start + warmup
    kept = [r for r in results if r[0] >= measured_from]
    out.write_text(json.dumps({"results": kept, "lag_p99": percentile(lags, 0.99), "lag_max": max(lags),
                               "cpu_cores": cpu / (warmup + duration), "sent": len(lags)}))
    for c in channels:
        await c.close()


# ---------------------------------------------------------------- parent
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000.0, help="calls/s in total (open loop)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--load-procs", type=int, default=2, help="load generator processes (connections split)")
    ap.add_argument("--duration", type=float, default=40.0, help="measured seconds, after the warm-up")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--sim-procs", type=int, default=2)
    ap.add_argument("--engine", choices=["aio", "native"], default="aio",
                    help="aio (default, the figure the ratio is about) or the opt-in native front end (built by "
                         "`make native`; the run stops with a message naming it when it is missing)")
    ap.add_argument("--exporter", nargs=2, metavar=("URLS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.exporter:
        asyncio.run(run_exporter(Path(args.exporter[0]), Path(args.exporter[1]), args.engine))
        return
    if args.load:
        spec = json.loads(args.load)
        asyncio.run(run_load(**{**spec, "out": Path(spec["out"])}))
        return
    if args.connections % args.load_procs:
        raise SystemExit("--connections must be a multiple of --load-procs")

    if args.engine == "native":
        from llmobs.serving.scaler.frontend import BINARY_NAME, locate_binary

        if locate_binary(BINARY_NAME) is None:
            raise SystemExit(f"--engine native needs {BINARY_NAME}: build it with `make native`")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the children (finally)
    work = Path(tempfile.mkdtemp(prefix="llmobs-scaler-bench-"))
    children: list[subprocess.Popen] = []
    env = {**os.environ, "FLEET_TARGETS_DIR": str(work), "PYTHONPATH": str(REPO / "src")}
    try:
        per = [args.endpoints // args.sim_procs + (i < args.endpoints % args.sim_procs) for i in range(args.sim_procs)]
        ports = [free_port() for _ in per]
        for i, (port, n) in enumerate(zip(ports, per, strict=True)):
            children.append(subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "fleet.py"), "--serve",
                                              str(port), str(n), str(i)], env=env))
        deadline = time.monotonic() + 120
        while not all((work / f"{p}.json").exists() for p in ports):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                raise SystemExit("simulator processes did not start")
            time.sleep(0.2)
        urls = [u for p in ports for u in json.loads((work / f"{p}.json").read_text())]
        for u in (urls[0], urls[-1]):
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(u, timeout=2).status_code == 200:
                        break
                time.sleep(0.1)
        (work / "urls.json").write_text(json.dumps(urls))

        exporter = subprocess.Popen([sys.executable, __file__, "--engine", args.engine, "--exporter",
                                     str(work / "urls.json"), str(work / "exporter.json")],
                                    env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        children.append(exporter)
        assert exporter.stdout is not None and exporter.stdin is not None
        hello = json.loads(exporter.stdout.readline())
        scaler_port, interval = hello["scaler_port"], hello["interval"]
        while json.loads(exporter.stdout.readline()).get("cycles", 0) < 2:  # warm: caches filled, conns open
            pass
        drain = subprocess.Popen(["cat"], stdin=exporter.stdout, stdout=subprocess.DEVNULL)  # keep its pipe empty
        children.append(drain)
        models = sorted({f"{kind}-{i}" for i in range(args.sim_procs) for kind in ("llama", "coder")})

        per_proc = args.connections // args.load_procs
        loads = []
        for p in range(args.load_procs):
            spec = {"port": scaler_port, "models": models, "rate": args.rate, "connections": per_proc,
                    "first": p * per_proc, "total": args.connections, "warmup": args.warmup,
                    "duration": args.duration, "out": str(work / f"load{p}.json")}
            loads.append(subprocess.Popen([sys.executable, __file__, "--load", json.dumps(spec)], env=env))
        children.extend(loads)
        time.sleep(1.5 + args.warmup)  # the generators' set-up (connections, specs) and warm-up
        cpu0, t0, load0 = cpu_seconds(exporter.pid), time.monotonic(), os.getloadavg()[0]
        for load in loads:
            if load.wait(timeout=args.duration + 120) != 0:
                raise SystemExit("a load generator failed")
        e_cpu, e_wall = cpu_seconds(exporter.pid) - cpu0, time.monotonic() - t0
        exporter.stdin.write("stop\n")
        exporter.stdin.flush()
        exporter.wait(timeout=60)
        e = json.loads((work / "exporter.json").read_text())
        reports = [json.loads((work / f"load{p}.json").read_text()) for p in range(args.load_procs)]
        results = [r for rep in reports for r in rep["results"]]
        latencies = [r[2] for r in results]
        errors: dict[str, int] = {}
        for r in results:
            if r[3] != "OK":
                errors[r[3]] = errors.get(r[3], 0) + 1
        span = max(r[0] for r in results) - min(r[0] for r in results)
        p50, p99, worst = (percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies))
        cycles = [d for n, d in e["cycles"] if n > 2]
        print(f"run: engine {args.engine}; {e['targets']} targets scraped every {interval:g} s "
              f"({e['targets_up']} up, models "
              f"{', '.join(e['models'])}); {args.rate:g} calls/s open loop over {args.connections} HTTP/2 "
              f"connections from {args.load_procs} Python grpc.aio processes; {args.duration:g} s measured after "
              f"{args.warmup:g} s; {os.cpu_count()} CPUs, load average {load0:.1f} → {os.getloadavg()[0]:.1f} "
              "(other work on the machine shows here)")
        print(f"llmobs process (a native front end's CPU not included): CPU {e_cpu / e_wall:.3f} cores, "
              f"peak RSS {e['peak_rss_mb']:.0f} MB, "
              f"scrape cycles during the run {len(cycles)} (p50 {percentile(cycles, 0.5):.2f} s, "
              f"max {max(cycles, default=float('nan')):.2f} s)")
        for rep_i, rep in enumerate(reports):
            print(f"load generator {rep_i}: {rep['cpu_cores']:.3f} CPU cores, send lag p99 "
                  f"{rep['lag_p99'] * 1e3:.2f} ms, max {rep['lag_max'] * 1e3:.2f} ms (included in latency)")
        for method in sorted(set(MIX)):
            lat = [r[2] for r in results if r[1] == method]
            print(f"  {method}: n {len(lat)}, p50 {percentile(lat, 0.5) * 1e3:.3f} ms, "
                  f"p99 {percentile(lat, 0.99) * 1e3:.3f} ms, max {max(lat) * 1e3:.3f} ms")
        print(f"all calls: n {len(results)}, achieved {len(results) / span:.0f} calls/s, errors "
              f"{errors or 'none'}; p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, max {worst * 1e3:.3f} ms")
        # Calls past KEDA's deadline (or still pending when the run ended) are late, and their latency is in
        # the figures; any other error is a wrong answer, and the run is not a measurement of the scaler.
        wrong = {code: n for code, n in errors.items() if code not in ("DEADLINE_EXCEEDED", "CANCELLED")}
        if wrong:
            raise SystemExit(f"calls answered with an error: {wrong}")
        print(f"ratio: {TARGET_P99_S / p99:.3f}")
    finally:
        for c in reversed(children):
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.wait(timeout=15)
            if c.poll() is None:
                c.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
