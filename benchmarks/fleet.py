"""Fleet benchmark: one llmobs exporter and Debian's Prometheus scraping 1,000 simulated vLLM endpoints.

The simulator runs in its own processes (`--sim-procs`, each a uvicorn server holding a slice of the
replicas of a `SimulatedFleet` driven by the Azure 2023 traces, serving real vLLM 0.32 pages on
loopback). The exporter runs in its own process exactly as `llmobs run` starts it (`start_exporter`,
HTTP server included), and Prometheus in another; both scrape the same endpoints at the same interval in
the same run. Each is measured from /proc: CPU seconds (utime + stime) over the measured window, the
peak RSS (VmHWM); the exporter also reports every scrape cycle's wall time.

Samples: llmobs counts the samples it parsed from good scrapes; Prometheus reports
`prometheus_tsdb_head_samples_appended_total`. CPU seconds per million samples are given for both, and
the last line is `ratio: X` = Prometheus' CPU per sample ÷ llmobs' (higher is better for llmobs).

Targets: exporter < 1 core, < 600 MB RSS, scrape-cycle p99 < 2.5 s.

    .venv/bin/python benchmarks/fleet.py [--endpoints 1000] [--interval 5] [--duration 300] [--sim-procs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from llmobs.demo.fleet import SimulatedFleet

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (not its children), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- child: one simulator slice
def slice_fleet(replicas: int, seed: int) -> SimulatedFleet:
    """`replicas` simulated vLLM replicas of two models (`llama-<seed>` on the conv trace, `coder-<seed>` on the
    code trace), every replica kept busy; benchmarks/freshness.py serves the same slices."""
    from llmobs.demo.fleet import ModelDeployment, SimulatedFleet
    from llmobs.demo.replica import ReplicaSpec
    from llmobs.demo.trace import default_traces_dir, load_request_trace

    traces = default_traces_dir()
    conv = load_request_trace(traces / "AzureLLMInferenceTrace_conv.csv")
    code = load_request_trace(traces / "AzureLLMInferenceTrace_code.csv")
    half = replicas // 2
    # The Azure traces carry a few requests/s in total: scale them to keep every replica busy.
    return SimulatedFleet([
        ModelDeployment(f"llama-{seed}", conv, replicas=half, speedup=max(1.0, half / 4),
                        spec=ReplicaSpec(kv_blocks=1024, max_num_seqs=48, tick_seconds=0.5)),
        ModelDeployment(f"coder-{seed}", code, replicas=replicas - half, speedup=max(1.0, (replicas - half) / 4),
                        spec=ReplicaSpec(kv_blocks=1024, max_num_seqs=48, tick_seconds=0.5)),
    ])


def serve_slice(port: int, replicas: int, seed: int) -> None:
    """Serve `replicas` simulated vLLM replicas (two models, conv and code traces) on 127.0.0.1:port."""
    import uvicorn

    from llmobs.demo.fleet import create_fleet_app

    fleet = slice_fleet(replicas, seed)
    (Path(os.environ["FLEET_TARGETS_DIR"]) / f"{port}.json").write_text(
        json.dumps([t.url for t in fleet.targets(f"http://127.0.0.1:{port}")]))
    uvicorn.run(create_fleet_app(fleet), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                backlog=4096, timeout_keep_alive=60)


# ---------------------------------------------------------------- child: the exporter
async def run_exporter(urls_file: Path, interval: float, duration: float, out: Path) -> None:
    """`start_exporter` on the given targets; record every cycle's duration and the samples parsed."""
    from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig
    from llmobs.runtime import start_exporter
    from llmobs.serving.gc import GcPolicy
    from llmobs.sources.targets import StaticTargetSource, Target

    urls = json.loads(urls_file.read_text())
    targets = [Target(u, u.split("//", 1)[1].replace("/replicas/", "/").removesuffix("/metrics")) for u in urls]
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=interval, timeout_seconds=min(3.0, interval),
                                                  max_concurrency=128),
                       server=ServerConfig(host="127.0.0.1", port=0))
    exporter = await start_exporter(cfg, StaticTargetSource(targets), cycle_hook=GcPolicy())  # as `llmobs run`
    scraper = exporter.pipeline.scraper
    inner = scraper.scrape
    counts = {"samples": 0, "ok": 0, "failed": 0}

    async def counting(target: Target):  # type: ignore[no-untyped-def]
        outcome = await inner(target)
        if outcome.page is not None and outcome.ok:
            counts["samples"] += len(outcome.page.samples)
            counts["ok"] += 1
        else:
            counts["failed"] += 1
        return outcome

    scraper.scrape = counting  # type: ignore[method-assign]
    gc_time = [0.0, 0.0]  # CPU seconds in the cyclic GC (all generations), start of the current collection

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time[1] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_time[1]

    gc.callbacks.append(on_gc)
    cycles: list[float] = []
    seen = 0
    marks: dict[str, float] = {}
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if exporter.pipeline.cycles != seen:
            seen = exporter.pipeline.cycles
            cycles.append(exporter.holder.current.cycle_duration_seconds)
            if seen == 2:  # warm-up over (parser caches filled, connections open): start measuring
                marks = {"cpu": cpu_seconds(os.getpid()), "t": time.monotonic(), "gc": gc_time[0],
                         **{k: float(v) for k, v in counts.items()}}
    state = exporter.holder.current
    result = {
        "cycles": cycles[2:], "cpu": cpu_seconds(os.getpid()) - marks.get("cpu", 0.0),
        "wall": time.monotonic() - marks.get("t", 0.0), "samples": counts["samples"] - marks.get("samples", 0),
        "ok": counts["ok"] - marks.get("ok", 0), "failed": counts["failed"] - marks.get("failed", 0),
        "gc": gc_time[0] - marks.get("gc", 0.0),
        "peak_rss_mb": peak_rss_mb(os.getpid()), "targets_up": sum(h.up for h in state.targets),
        "targets": len(state.targets), "signals": len(state.signals),
    }
    await exporter.stop()
    out.write_text(json.dumps(result))


# ---------------------------------------------------------------- parent
def start_prometheus(workdir: Path, urls: list[str], interval: float) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus not installed (apt-get install prometheus)")
    groups = []
    for u in urls:  # one job; each replica's own path through the reserved __metrics_path__ label
        hostport, _, path = u.removeprefix("http://").partition("/")
        name = path.removeprefix("replicas/").removesuffix("/metrics")
        groups.append({"targets": [hostport], "labels": {"__metrics_path__": "/" + path, "instance": name}})
    jobs = [{"job_name": "vllm", "scrape_interval": f"{interval:g}s", "scrape_timeout": f"{min(3.0, interval):g}s",
             "static_configs": groups}]
    import yaml

    (workdir / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": f"{interval:g}s"},
                                                            "scrape_configs": jobs}))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}",
                                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                f"--web.console.templates={workdir}", f"--web.console.libraries={workdir}"],
                               stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                return process, port
        time.sleep(0.2)
    raise SystemExit(f"prometheus not ready: {(workdir / 'prometheus.log').read_text()[-2000:]}")


def prometheus_samples(port: int) -> float:
    """Samples Prometheus has appended to its head block, read off its own /metrics (it does not scrape
    itself here, so its self-metrics are not in the TSDB)."""
    from llmobs.sources.textformat import parse_text

    page = parse_text(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    return sum(s.value for s in page.samples if s.name == "prometheus_tsdb_head_samples_appended_total")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=300.0, help="measured seconds (after a 2-cycle warm-up)")
    ap.add_argument("--sim-procs", type=int, default=4)
    ap.add_argument("--serve", nargs=3, type=int, metavar=("PORT", "REPLICAS", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--exporter", nargs=2, metavar=("URLS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_slice(*args.serve)
        return
    if args.exporter:
        asyncio.run(run_exporter(Path(args.exporter[0]), args.interval, args.duration + 2.5 * args.interval,
                                 Path(args.exporter[1])))
        return

    work = Path(tempfile.mkdtemp(prefix="llmobs-fleet-bench-"))
    children: list[subprocess.Popen] = []
    env = {**os.environ, "FLEET_TARGETS_DIR": str(work), "PYTHONPATH": str(REPO / "src")}
    try:
        per = [args.endpoints // args.sim_procs + (i < args.endpoints % args.sim_procs) for i in range(args.sim_procs)]
        ports = [free_port() for _ in per]
        for i, (port, n) in enumerate(zip(ports, per, strict=True)):
            children.append(subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(n), str(i)], env=env))
        deadline = time.monotonic() + 120
        while not all((work / f"{p}.json").exists() for p in ports):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                raise SystemExit("simulator processes did not start")
            time.sleep(0.2)
        urls = [u for p in ports for u in json.loads((work / f"{p}.json").read_text())]
        for u in (urls[0], urls[-1]):  # wait until each process answers
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(u, timeout=2).status_code == 200:
                        break
                time.sleep(0.1)
        page = httpx.get(urls[0], timeout=5).text
        (work / "urls.json").write_text(json.dumps(urls))
        print(f"simulator: {len(urls)} endpoints in {args.sim_procs} processes, "
              f"{sum(1 for line in page.splitlines() if line and not line.startswith('#'))} samples per page, "
              f"{len(page)} bytes", flush=True)

        prom, prom_port = start_prometheus(work, urls, args.interval)
        children.append(prom)
        exporter = subprocess.Popen([sys.executable, __file__, "--interval", str(args.interval), "--duration",
                                     str(args.duration), "--exporter", str(work / "urls.json"),
                                     str(work / "exporter.json")], env=env)
        children.append(exporter)
        # Prometheus: measure over the same window, after the same warm-up.
        time.sleep(2.5 * args.interval)
        p_cpu0, p_samples0, t0 = cpu_seconds(prom.pid), prometheus_samples(prom_port), time.monotonic()
        time.sleep(args.duration)
        p_cpu, p_samples, p_wall = cpu_seconds(prom.pid) - p_cpu0, prometheus_samples(prom_port) - p_samples0, \
            time.monotonic() - t0
        p_rss = peak_rss_mb(prom.pid)
        up = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "sum(up)"}, timeout=10)
        p_up = float(up.json()["data"]["result"][0]["value"][1])
        exporter.wait(timeout=args.duration + 120)
        e = json.loads((work / "exporter.json").read_text())

        e_core = e["cpu"] / e["wall"]
        e_per_m = e["cpu"] / (e["samples"] / 1e6)
        p_per_m = p_cpu / (p_samples / 1e6)
        p99 = percentile(e["cycles"], 0.99)
        print(f"run: {len(urls)} endpoints, interval {args.interval:g} s, measured {e['wall']:.0f} s "
              f"({len(e['cycles'])} cycles) after a {2.5 * args.interval:g} s warm-up; {os.cpu_count()} CPUs")
        print(f"llmobs exporter: CPU {e_core:.3f} cores (target < 1), peak RSS {e['peak_rss_mb']:.0f} MB "
              f"(target < 600), cycle p50 {percentile(e['cycles'], 0.5):.3f} s, p99 {p99:.3f} s, "
              f"max {max(e['cycles']):.3f} s (target p99 < 2.5), targets up {e['targets_up']}/{e['targets']}, "
              f"scrapes ok {e['ok']:.0f} failed {e['failed']:.0f}, signals {e['signals']}")
        print(f"llmobs: {e['samples'] / 1e6:.2f} M samples, {e['cpu']:.1f} CPU s ({e['gc']:.1f} s in the cyclic GC), "
              f"{e_per_m:.2f} CPU s per M samples")
        print(f"prometheus: CPU {p_cpu / p_wall:.3f} cores, peak RSS {p_rss:.0f} MB, targets up {p_up:.0f}, "
              f"{p_samples / 1e6:.2f} M samples, {p_cpu:.1f} CPU s, {p_per_m:.2f} CPU s per M samples")
        verdict = e_core < 1 and e["peak_rss_mb"] < 600 and p99 < 2.5
        print(f"targets met: {'yes' if verdict else 'NO'}")
        print(f"ratio: {p_per_m / e_per_m:.3f}")
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
