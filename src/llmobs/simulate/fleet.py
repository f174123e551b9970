"""A fleet of simulated vLLM replicas on virtual time, whose size a controller changes.

What is modelled, and the choices made where a real cluster could differ:

* Routing: each request goes, at its arrival, to the ready replica with the fewest requests in it
  (running + waiting; ties to the oldest replica) — the load-aware choice of the vLLM production-stack and
  llm-d routers — or round robin over ready replicas (`routing="round_robin"`, the production-stack
  router's `--routing-logic roundrobin`). With no ready replica, a request goes to the starting replica that
  will be ready first and waits there; with no replica at all, it waits in the router until one is added.
* Scaling: at every sync instant (`sync_interval_s`, the HPA sync period) the controller sees what the
  scrapes saw and returns the replica count it wants (None: no change). New replicas serve after
  `cold_start_s`; a removed replica is a starting one first (newest first), else the newest ready one,
  which gets no new requests and drains: it finishes what it holds, and its GPU time runs until then.
  The initial replicas are ready at time 0.
* Observation: at every scrape instant (`scrape_interval_s`) each ready replica renders its vLLM 0.32
  `/metrics` page, which goes through llmobs' own path (the exporter's warm `TextParser` and `normalize`,
  then `SignalTracker`); the controller reads only those signals, never the simulator's state. Starting
  replicas have no page yet. A fixed fleet (no controller) renders no pages: nobody would read them.
* Requests vLLM would refuse (prompt ≥ max_model_len) are rejected at arrival; outputs that would run
  past max_model_len stop there (finish reason "length").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmobs.demo.page import render_page
from llmobs.signals.tracker import SignalTracker
from llmobs.signals.types import ModelEndpointSignals
from llmobs.simulate.control import Controller, ControlView, ReplicaLoad
from llmobs.simulate.engine import EngineConfig, ReplicaEngine, SimRequest
from llmobs.simulate.errors import SimulationInputError, is_number, plain
from llmobs.simulate.profile import StepProfile
from llmobs.simulate.results import SimulationResult
from llmobs.simulate.stats import PageTemplate
from llmobs.simulate.workload import Workload
from llmobs.sources.normalize import LabelValueBudget, SampleGuard, normalize
from llmobs.sources.page import Page
from llmobs.sources.textformat import TextParser

ROUTING = ("least_loaded", "round_robin")
MAX_LABEL_VALUES = 512  # the exporter's default `scrape.max_label_values`
MAX_INTERVALS = 2_200_000
"""Most scrape/sync intervals one run walks (its span ÷ the shorter interval): a year of 15 s intervals is 2.1 M,
the longest bundled trace (ServeGen, 14 days) 80 k. The run steps through every interval, and with a controller
each one renders and parses every ready replica's page (measured: 7 idle days on 2 replicas take 39 s), so a year
is already half an hour; a span of decades (a 1970 or 2100 timestamp in a trace) would hang the run. Checked
before any work (`check_span`)."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """The fleet's engines and how it is run, scraped and scaled."""

    engine: EngineConfig
    profile: StepProfile
    model: str = "model"
    initial_replicas: int = 1
    max_replicas: int = 1000
    cold_start_s: float = 120.0
    scrape_interval_s: float = 15.0
    sync_interval_s: float = 15.0
    routing: str = "least_loaded"
    signal_window_s: float = 60.0
    ttft_slo_s: float = 1.0
    tail_s: float = 3600.0  # how long after the last arrival the run may go on to finish queued work

    def __post_init__(self) -> None:
        # Refused here, not mid-run: a float replica count or a string interval would fail deep in the loop.
        if not isinstance(self.engine, EngineConfig) or not isinstance(self.profile, StepProfile):
            raise SimulationInputError("FleetConfig needs an EngineConfig and a StepProfile, not "
                                       f"{type(self.engine).__name__} and {type(self.profile).__name__}")
        if not isinstance(self.model, str):
            raise SimulationInputError(f"model must be a name (a string), not {plain(self.model)}")
        if not isinstance(self.routing, str) or self.routing not in ROUTING:
            raise SimulationInputError(f"routing {plain(self.routing)}: use one of {', '.join(ROUTING)}")
        for key in ("initial_replicas", "max_replicas"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise SimulationInputError(f"{key} must be a whole number of replicas, not {plain(value)}")
            object.__setattr__(self, key, int(value))  # numpy integers too, as plain ints
        if self.max_replicas < 1:
            raise SimulationInputError(f"max_replicas must be ≥ 1, not {self.max_replicas}: a fleet that may "
                                       "never have a replica serves nothing")
        if not 0 <= self.initial_replicas <= self.max_replicas:
            raise SimulationInputError(f"initial_replicas {self.initial_replicas} must be in [0, max_replicas "
                                       f"{self.max_replicas}]")
        for key in ("cold_start_s", "tail_s"):
            value = getattr(self, key)
            if not (is_number(value) and math.isfinite(value) and value >= 0):
                raise SimulationInputError(f"{key} must be a finite number of seconds ≥ 0, not {plain(value)}")
        for key in ("scrape_interval_s", "sync_interval_s", "signal_window_s", "ttft_slo_s"):
            value = getattr(self, key)
            if not (is_number(value) and math.isfinite(value) and value > 0):
                raise SimulationInputError(f"{key} must be a finite number of seconds > 0, not {plain(value)}")


FIXED_FLEET_FACTOR = 100
"""A fixed fleet (no controller) renders no page: an interval costs it ~0.3 µs, so it may walk this many times
`MAX_INTERVALS` (about a minute). Load tests space requests 1,000 s apart to serve each alone: 40,000 of them
are 2.7 M intervals of 15 s."""


def check_span(workload: Workload, config: FleetConfig, *, controlled: bool = True) -> None:
    """Refuse a run that would walk more than `MAX_INTERVALS` scrape/sync intervals (`FIXED_FLEET_FACTOR` times
    that without a controller): from 0 to the last arrival, plus `tail_s` (a fleet that cannot finish its queue
    runs on to that horizon)."""
    last = float(workload.arrival[-1]) if len(workload) else 0.0
    step = min(config.scrape_interval_s, config.sync_interval_s)
    intervals = (last + config.tail_s) / step
    limit = MAX_INTERVALS if controlled else MAX_INTERVALS * FIXED_FLEET_FACTOR
    if intervals > limit:
        raise SimulationInputError(
            f"{workload.source}: the run would span {_span(last + config.tail_s)} (last arrival at {_span(last)}, "
            f"+ tail_s {config.tail_s:g} s): {intervals:,.0f} scrape/sync intervals of {step:g} s, more than "
            f"{limit:,} ({'about a year' if controlled else 'a century'} at 15 s); cut the trace (--start/--duration), "
            "fix its timestamps, or lengthen the intervals")


def _span(seconds: float) -> str:
    return f"{seconds / 86400:,.1f} days" if seconds >= 86400 else f"{seconds:,.0f} s"


class PageReader:
    """Reads one replica's successive pages the way llmobs' exporter reads one scrape target's: a warm
    `TextParser` (the page repeats its series every scrape) and a `SampleGuard` that keeps the page layout's
    routing, then `normalize`. `parse_page` runs the same parser and normalizer cold; the pages read the same
    either way (the parser's warm paths are property-tested against its line-by-line reference)."""

    __slots__ = ("guard", "parser")

    def __init__(self, owner: str) -> None:
        self.parser = TextParser()
        self.guard = SampleGuard(owner, LabelValueBudget(MAX_LABEL_VALUES))

    def read(self, text: str) -> Page:
        parsed = self.parser.parse(text)
        scrape = normalize(parsed, 0.0, guard=self.guard, layout=parsed.layout)
        return Page(models=scrape.models, skipped=dict(parsed.skipped), missing=scrape.missing,
                    samples=len(parsed), dropped=scrape.dropped)


class _Replica:
    __slots__ = ("added_at", "ended_at", "engine", "reader", "ready_at", "signals", "tracker")

    def __init__(self, engine: ReplicaEngine, added_at: float, ready_at: float, tracker: SignalTracker) -> None:
        self.engine = engine
        self.added_at = added_at
        self.ready_at = ready_at
        self.ended_at = -1.0
        self.tracker = tracker
        self.reader = PageReader(tracker.endpoint)
        self.signals: ModelEndpointSignals | None = None


def replica_page(engine: ReplicaEngine, model: str) -> str:
    """The replica's vLLM 0.32 `/metrics` page now, as the demo fleet renders its replicas."""
    return render_page(model, engine.created, running=len(engine.running), waiting=len(engine.waiting),
                       kv_usage=engine.kv_usage, block_size=engine.config.block_size,
                       kv_blocks=engine.config.kv_blocks, r=engine.stats)


class FleetSimulator:
    """Runs a workload through a fleet; `run()` returns one `SimulationResult`."""

    def __init__(self, workload: Workload, config: FleetConfig, controller: Controller | None = None) -> None:
        self.workload = workload
        self.config = config
        self.controller = controller
        self.live: list[_Replica] = []  # ready or starting, in the order they were added
        self.retired: list[_Replica] = []
        self.pending: list[SimRequest] = []
        self.timeline: list[tuple[float, int, int]] = []
        self.scrapes = 0
        self._next_id = 0
        self._rr = 0
        self._ready: list[_Replica] = []  # live replicas ready at `_ready_until`'s last check
        self._ready_engines: list[ReplicaEngine] = []  # their engines, which the least-loaded router scans
        self._round_robin = config.routing == "round_robin"
        self._ready_until = -math.inf  # the ready list holds until this instant (the next replica's ready_at)
        self._ready_since = math.inf
        self._prompt_cumsum = np.concatenate(([0.0], np.cumsum(workload.prompt, dtype=float)))
        self._page: PageTemplate | None = None  # built at the first scrape (a fixed fleet renders no page)

    # --- replicas
    def _add(self, now: float, ready_at: float) -> None:
        cfg = self.config
        engine = ReplicaEngine(cfg.engine, cfg.profile, start=ready_at, replica_id=self._next_id,
                               hash_block_tokens=self.workload.hash_block_tokens)
        tracker = SignalTracker(f"replica-{self._next_id}", window_seconds=cfg.signal_window_s,
                                ttft_slo_seconds=cfg.ttft_slo_s)
        self._next_id += 1
        replica = _Replica(engine, now, ready_at, tracker)
        self.live.append(replica)
        self._ready_until = -math.inf
        for r in self.pending:
            engine.submit(r)
        self.pending.clear()

    def _remove(self, now: float) -> None:
        starting = [r for r in self.live if r.ready_at > now]
        victim = starting[-1] if starting else self.live[-1]
        self.live.remove(victim)
        self._ready_until = -math.inf
        engine = victim.engine
        if victim.ready_at > now:  # never served: what waits there goes to the replicas left (or the router)
            for request in engine.take_waiting():
                self._route(request, now)
            victim.ended_at = now
        else:
            engine.drain()  # gets no new requests from now on: finishing what it holds is all that is left
            victim.ended_at = max(now, engine.clock)
        self.retired.append(victim)

    def _counts(self, now: float) -> tuple[int, int]:
        ready = sum(1 for r in self.live if r.ready_at <= now)
        return ready, len(self.live) - ready

    def _scale_to(self, desired: int, now: float) -> None:
        desired = max(0, min(int(desired), self.config.max_replicas))
        changed = desired != len(self.live)
        while len(self.live) < desired:
            self._add(now, now + self.config.cold_start_s)
        while len(self.live) > desired:
            self._remove(now)
        if changed:
            self.timeline.append((now, *self._counts(now)))

    # --- observation and control
    def _scrape(self, now: float) -> None:
        if self.controller is None:
            return  # nobody reads the pages of a fixed fleet: rendering them would only cost time
        self.scrapes += 1
        page = self._page
        if page is None:
            e = self.config.engine
            page = self._page = PageTemplate(self.config.model, e.block_size, e.kv_blocks, e.max_model_len)
        for replica in self.live:
            if replica.ready_at > now:
                continue
            engine = replica.engine
            engine.advance(now)
            text = page.render(len(engine.running), len(engine.waiting), engine.kv_usage, engine.created,
                               engine.stats)  # = replica_page(engine, model), rendered from a template
            out = replica.tracker.observe(replica.reader.read(text), now)
            if out:
                replica.signals = out[0]

    def _door(self, now: float) -> tuple[float, float]:
        """Arrivals per second and their prompt tokens per second at the router over the signal window."""
        window = self.config.signal_window_s
        lo, hi = np.searchsorted(self.workload.arrival, (now - window, now), side="right")
        if now - window < 0:
            lo = 0  # the window reaches back past the start: the requests that arrived at 0 count too
        span = min(window, now) or window
        return (hi - lo) / span, float(self._prompt_cumsum[hi] - self._prompt_cumsum[lo]) / span

    def _sync(self, now: float) -> None:
        if self.controller is None:
            return
        ready, starting = self._counts(now)
        signals = tuple(r.signals for r in self.live if r.ready_at <= now and r.signals is not None)
        door_rate, door_prompt = self._door(now)
        loads = tuple(ReplicaLoad.from_signals(s) for s in signals)
        desired = self.controller(ControlView(now, ready, starting, loads, door_rate, door_prompt, signals))
        if desired is not None:
            self._scale_to(desired, now)

    # --- routing
    def _ready_at(self, now: float) -> list[_Replica]:
        """Live replicas ready at `now`, recomputed only when the fleet changed or a replica became ready."""
        if now >= self._ready_until or now < self._ready_since:
            self._ready = [r for r in self.live if r.ready_at <= now]
            self._ready_engines = [r.engine for r in self._ready]
            self._ready_since = now
            self._ready_until = min((r.ready_at for r in self.live if r.ready_at > now), default=math.inf)
        return self._ready

    def _route(self, request: SimRequest, now: float) -> None:
        ready = self._ready if self._ready_since <= now < self._ready_until else self._ready_at(now)
        if not ready:
            if not self.live:
                self.pending.append(request)
                return
            first = min(self.live, key=lambda r: r.ready_at)
            first.engine.submit(request)
            return
        if self._round_robin:
            self._rr = (self._rr + 1) % len(ready)
            chosen = ready[self._rr].engine
        else:
            best: ReplicaEngine | None = None
            fewest = 0
            for engine in self._ready_engines:  # one loop: `min(key=...)` after it would cost twice as much
                if engine.next_change <= now:
                    engine.settle(now)
                load = engine.load
                if best is None or load < fewest:  # the first of the least loaded: ties go to the oldest
                    best, fewest = engine, load
            assert best is not None
            chosen = best
        chosen.advance(now)
        chosen.submit(request)

    def run(self) -> SimulationResult:
        check_span(self.workload, self.config, controlled=self.controller is not None)
        cfg, w = self.config, self.workload
        for _ in range(cfg.initial_replicas):
            self._add(0.0, 0.0)
        self.timeline.append((0.0, *self._counts(0.0)))
        n = len(w)
        requests: list[SimRequest | None] = [None] * n
        rejected = np.zeros(n, dtype=bool)
        limit = cfg.engine.max_model_len
        arrival = w.arrival.tolist()
        prompt = w.prompt.tolist()
        output = w.output.tolist()
        hashes = w.hashes
        overhead = cfg.profile.request_overhead_s
        next_scrape = cfg.scrape_interval_s
        next_sync = cfg.sync_interval_s
        for i in range(n):
            t = arrival[i]
            while next_scrape <= t or next_sync <= t:
                if next_scrape <= next_sync:
                    self._scrape(next_scrape)
                    next_scrape += cfg.scrape_interval_s
                else:
                    self._sync(next_sync)
                    next_sync += cfg.sync_interval_s
            p = prompt[i]
            if p >= limit:
                rejected[i] = True
                continue
            o = output[i]
            truncated = p + o > limit
            req = SimRequest(i, t, p, limit - p if truncated else o, hashes[i] if hashes else (), truncated)
            requests[i] = req
            self._route(req, t + overhead)  # the API server's time: the engine sees it later
        end = arrival[-1] if n else 0.0
        horizon = end + cfg.tail_s
        now = end
        while (self.pending or any(r.engine.outstanding for r in self.live)) and min(next_scrape, next_sync) <= horizon:
            if next_scrape <= next_sync:
                now = next_scrape
                self._scrape(now)
                next_scrape += cfg.scrape_interval_s
            else:
                now = next_sync
                self._sync(now)
                next_sync += cfg.sync_interval_s
            if self.controller is None:  # no scrape advances a fixed fleet: do it here, or it idles to the horizon
                for replica in self.live:
                    replica.engine.advance(now)
        for replica in self.live:
            replica.engine.advance(now)
            end = max(end, replica.engine.clock if replica.engine.steps else now)
        gpu_seconds = 0.0
        for replica in self.live:
            gpu_seconds += max(0.0, end - replica.added_at)
        for replica in self.retired:
            gpu_seconds += max(0.0, replica.ended_at - replica.added_at)
        gpu_seconds *= cfg.profile.gpus_per_replica
        return self._result(requests, rejected, gpu_seconds, end)

    def _result(self, requests: list[SimRequest | None], rejected: np.ndarray, gpu_seconds: float,
                end: float) -> SimulationResult:
        w = self.workload
        n = len(w)
        first = np.full(n, -1.0)
        finish = np.full(n, -1.0)
        output = w.output.astype(np.int64).copy()
        preempt = np.zeros(n, dtype=np.int64)
        replica = np.full(n, -1, dtype=np.int64)
        for req in requests:
            if req is None:
                continue
            first[req.index] = req.first_token
            finish[req.index] = req.finish
            output[req.index] = req.output
            preempt[req.index] = req.preemptions
            replica[req.index] = req.replica
        steps = sum(r.engine.steps for r in (*self.live, *self.retired))
        notes = list(w.notes)
        if rejected.any():
            notes.append(f"{int(rejected.sum())} requests rejected: prompt ≥ max_model_len "
                         f"{self.config.engine.max_model_len}")
        spans = tuple((r.added_at, r.ended_at) for r in self.retired) + tuple((r.added_at, end) for r in self.live)
        return SimulationResult(w.arrival, first, finish, w.prompt, output, preempt, replica, rejected,
                                gpu_seconds, end, steps, tuple(self.timeline), tuple(notes), spans,
                                self.config.profile.gpus_per_replica)


def simulate(workload: Workload, config: FleetConfig, controller: Controller | None = None) -> SimulationResult:
    """Serve `workload` with the fleet `config` describes, scaled by `controller` (fixed size when None)."""
    return FleetSimulator(workload, config, controller).run()


def check_slo(config: FleetConfig, ttft_s: float, tpot_s: float) -> None:
    """Refuse an SLO that no policy can meet on this hardware, whatever the number of replicas: a TPOT below
    one decode step of a lone request, or a TTFT below the prefill of a one-token prompt on an idle replica."""
    for name, value in (("TTFT", ttft_s), ("TPOT", tpot_s)):
        if not (math.isfinite(value) and value > 0):
            raise SimulationInputError(f"{name} SLO must be a positive number of seconds, not {plain(value)}")
    p = config.profile
    fastest_token = p.step_seconds(0, 1, 1)
    if tpot_s < fastest_token:
        raise SimulationInputError(
            f"TPOT SLO {tpot_s * 1000:g} ms is below one decode step of a lone request on profile {p.name} "
            f"({fastest_token * 1000:.2f} ms): no number of replicas can meet it")
    fastest_first = p.step_seconds(1, 0, 0)
    if ttft_s < fastest_first:
        raise SimulationInputError(
            f"TTFT SLO {ttft_s * 1000:g} ms is below the shortest possible prefill on profile {p.name} "
            f"({fastest_first * 1000:.2f} ms): no number of replicas can meet it")
