"""KEDA scaler benchmark: GetMetrics at concurrency 32 over one HTTP/2 connection, answered from precomputed state.

The scaler runs in its own process, exactly as `serve_scaler` starts it, holding a `FleetState` scraped
from the demo fleet (three cycles over HTTP, then the fleet is stopped: the state is precomputed and
static, so the figure is the request path alone). Every engine is measured in the same run: `native` (the
C++ front end answering from the table Python writes: what `engine: auto` picks where the front end is
installed, as in the container image; built with `make native` if missing), `aio` (grpc.aio alone, what
`auto` falls back to), grpc's thread-pool server, and a grpc.aio server that returns a constant
pre-serialized reply with no llmobs code at all — the ceiling of Python gRPC on this machine. For native,
the run also checks that every measured call was answered by the front end itself (its own counts), not
forwarded to Python.

Load generator: Debian's `h2load` (nghttp2-client) when installed — C, one connection (`-c 1`) with 32
concurrent streams (`-m 32`), sending a prebuilt length-prefixed GetMetricsRequest with
`content-type: application/grpc` and `te: trailers`; latencies come from its per-request log. h2load
cannot read gRPC trailers (a failed call is still HTTP 200), so after every run the server's own
`llmobs_scaler_requests_total` counts are checked: every request h2load sent must be a `GetMetrics`
answered `OK`. Without h2load a Python grpc.aio client is used (it is itself the bottleneck on 2 cores;
the output says which generator ran).

Note (Little's law): at a closed-loop concurrency of 32, p99 ≤ 2 ms needs ≥ 16,000 req/s.

Last line: `ratio: X` = 2 ms ÷ p99 of the native engine (target ≥ 1, with ≥ 3,000 req/s).

    .venv/bin/python benchmarks/scaler.py [--requests 30000] [--warmup 3000] [--client h2load|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_S = 0.002
CONCURRENCY = 32
MODEL = "llama-3.1-8b-instruct"
META = {"scalerAddress": "llmobs:9401", "model": MODEL, "signal": "queue_depth", "target": "4"}
METHOD = "/externalscaler.ExternalScaler/GetMetrics"


async def _serve(engine: str) -> None:
    """Child process: precompute state from the demo fleet, serve the scaler, report stats on request."""
    from llmobs.demo.fleet import create_fleet_app, default_fleet
    from llmobs.pipeline import Pipeline
    from llmobs.runtime import serve_asgi
    from llmobs.serving.scaler import ScalerConfig, serve_scaler
    from llmobs.serving.scaler.frontend import read_stats
    from llmobs.sources.scrape import Scraper
    from llmobs.sources.targets import StaticTargetSource
    from llmobs.state import StateHolder

    fleet = default_fleet(speedup=20.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    holder = StateHolder()
    pipeline = Pipeline(StaticTargetSource(fleet.targets(f"http://127.0.0.1:{fleet_port}")), Scraper(timeout_seconds=5),
                        holder, window_seconds=10)
    for _ in range(3):
        await pipeline.run_cycle()
        await asyncio.sleep(0.3)
    await pipeline.scraper.aclose()
    fleet_server.should_exit = True
    await fleet_task
    handle = await serve_scaler(ScalerConfig(host="127.0.0.1", port=0, engine=engine, stale_after_intervals=1e6),
                                holder, interval_seconds=1.0)
    assert handle.engine == engine
    print(json.dumps({"port": handle.port}), flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def control() -> None:  # "stats" → request counts (and the native front end's own); EOF → exit
        for line in sys.stdin:
            if line.strip() == "stats":
                if handle._workdir is not None:
                    time.sleep(1.2)  # the front end writes its counts every second
                counts = {f"{m}/{c}": n for (m, c), n in handle.stats.counts().items()}
                if handle._workdir is not None:
                    counts.update({f"frontend/{m}/{c}": n
                                   for (m, c), n in read_stats(handle._workdir / "stats.tsv").items()})
                print(json.dumps(counts), flush=True)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=control, daemon=True).start()
    await done.wait()
    await handle.stop(grace=0.5)


async def _serve_floor() -> None:
    """Child process: grpc.aio answering GetMetrics with a fixed, pre-serialized response and no llmobs code —
    the framework's own ceiling on this machine, printed beside the scaler's figures."""
    import grpc

    from llmobs.serving.scaler import externalscaler_pb2 as pb

    answer = pb.GetMetricsResponse(metricValues=[pb.MetricValue(metricName="x", metricValueFloat=1.0)])
    body = answer.SerializeToString()
    served = [0]

    async def get_metrics(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        served[0] += 1
        return body

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "externalscaler.ExternalScaler", {"GetMetrics": grpc.unary_unary_rpc_method_handler(get_metrics)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps({"GetMetrics/OK": served[0]}), flush=True)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=control, daemon=True).start()
    await done.wait()
    await server.stop(0)


class Server:
    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", engine], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{engine} server exited before listening")
        self.port = int(json.loads(line)["port"])

    def ok_count(self) -> tuple[int, dict[str, int]]:
        self.proc.stdin.write("stats\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        counts = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        return counts.get("GetMetrics/OK", 0), counts

    def frontend_count(self) -> int:
        return self.ok_count()[1].get("frontend/GetMetrics/OK", 0)

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=30)


def request_message(port: int, engine: str) -> tuple[bytes, float]:
    """KEDA's sequence once (GetMetricSpec → GetMetrics) with the real client; returns the GetMetrics request
    body and its answer, so the benchmark sends exactly what KEDA sends."""
    import grpc

    from llmobs.serving.scaler import externalscaler_pb2 as pb
    from llmobs.serving.scaler import externalscaler_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        ref = pb.ScaledObjectRef(name="vllm", namespace="llm", scalerMetadata=META)
        name = "llmobs-queue-depth-llama-3-1-8b-instruct"
        if engine != "floor":
            name = stub.GetMetricSpec(ref, timeout=3).metricSpecs[0].metricName
        request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=name)
        [value] = stub.GetMetrics(request, timeout=3).metricValues
    return request.SerializeToString(), value.metricValueFloat


def run_h2load(port: int, body: Path, n: int, log: Path) -> tuple[float, list[float], int]:
    """→ (req/s from h2load, per-request latencies in s, succeeded)."""
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    cmd = ["h2load", "-n", str(n), "-c", "1", "-m", str(CONCURRENCY), "-t", "1", "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}",
           f"http://127.0.0.1:{port}{METHOD}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    rps = float(re.search(r"finished in [0-9.]+m?s, ([0-9.]+) req/s", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  out)
    if m is None:
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    status_2xx = re.search(r"status codes: (\d+) 2xx", out)
    succeeded = int(m.group(3))
    if int(m.group(4)) or int(m.group(5)) or status_2xx is None or int(status_2xx.group(1)) != n:
        raise RuntimeError(f"h2load saw failures:\n{out}")
    latencies = []
    for row in log.read_text().splitlines():
        cols = row.split("\t")
        if len(cols) >= 3 and cols[1] == "200":
            latencies.append(int(cols[2]) / 1e6)
    if len(latencies) != n:
        raise RuntimeError(f"h2load log has {len(latencies)} rows for {n} requests")
    return rps, latencies, succeeded


async def run_python(port: int, body: bytes, n: int) -> tuple[float, list[float], int]:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        latencies: list[float] = []
        remaining = [n]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                t0 = time.perf_counter()
                await call(body, timeout=3)
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, latencies, len(latencies)


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]


def measure(engine: str, client: str, n: int, warmup: int) -> dict[str, float]:
    server = Server(engine)
    try:
        request, value = request_message(server.port, engine)
        if engine == "native":
            time.sleep(1.5)  # the trigger is in the front end's table after the next cache publish (1 s)
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp) / "request.bin"
            body.write_bytes(struct.pack(">BI", 0, len(request)) + request)  # gRPC length-prefixed message
            log = Path(tmp) / "h2load.log"
            results = []
            for count in (warmup, n):
                before, _ = server.ok_count()
                frontend_before = server.frontend_count() if engine == "native" else 0
                if client == "h2load":
                    rps, lat, ok = run_h2load(server.port, body, count, log)
                else:
                    rps, lat, ok = asyncio.run(run_python(server.port, body.read_bytes()[5:], count))
                after, counts = server.ok_count()
                if after - before != count or ok != count:
                    raise RuntimeError(f"{engine}: sent {count}, server answered OK to {after - before}: {counts}")
                by_frontend = counts.get("frontend/GetMetrics/OK", 0) - frontend_before
                results.append((rps, lat, by_frontend))
        rps, lat, by_frontend = results[-1]
        return {"rps": rps, "p50": statistics.median(lat), "p99": quantile(lat, 0.99), "max": max(lat), "n": n,
                "value": value, "by_frontend": by_frontend}
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30000)
    parser.add_argument("--warmup", type=int, default=3000)
    parser.add_argument("--client", choices=["h2load", "python"], default=None)
    parser.add_argument("--serve", choices=["native", "aio", "threads", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve_floor() if args.serve == "floor" else _serve(args.serve))
        return
    from llmobs.serving.scaler.frontend import BINARY_NAME, locate_binary

    client = args.client or ("h2load" if shutil.which("h2load") else "python")
    if locate_binary(BINARY_NAME) is None:
        print(f"{BINARY_NAME} not installed: building it (make native)", flush=True)
        subprocess.run(["make", "-s", "native"], cwd=ROOT, check=True)
    print(f"load generator: {client}, concurrency {CONCURRENCY} on one HTTP/2 connection, "
          f"{args.requests} GetMetrics after {args.warmup} warm-up (model {MODEL}, signal queue_depth)")
    results = {}
    for engine in ("native", "aio", "threads", "floor"):
        r = measure(engine, client, args.requests, args.warmup)
        results[engine] = r
        tag = {"native": " (default where the front end is installed: C++ front end, answer table)",
               "aio": " (default without it)",
               "floor": " (grpc.aio, constant reply, no llmobs code: Python gRPC's ceiling)"}.get(engine, "")
        print(f"{engine}{tag}: p50 {r['p50'] * 1000:.3f} ms, p99 {r['p99'] * 1000:.3f} ms, "
              f"max {r['max'] * 1000:.3f} ms, {r['rps']:.0f} req/s, all {r['n']} answered OK "
              f"(value {r['value']:g})" + (f", {r['by_frontend']} by the front end" if engine == "native" else ""))
    best = results["native"]
    if best["by_frontend"] != args.requests:
        raise SystemExit(f"native: only {best['by_frontend']} of {args.requests} answered by the front end")
    print(f"target: p99 <= {TARGET_P99_S * 1000:g} ms and >= 3000 req/s; native engine: "
          f"p99 {best['p99'] * 1000:.3f} ms, {best['rps']:.0f} req/s")
    print(f"ratio: {TARGET_P99_S / best['p99']:.3f}")


if __name__ == "__main__":
    main()
