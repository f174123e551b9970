"""The scrape loop: sources → normalize → signals → published `FleetState`.

One cycle scrapes every target concurrently, feeds each model's tracker, and publishes a new
immutable state that the servers read. Per-target health (up, duration, last error, consecutive
failures, errors by kind) lives here because only the loop sees every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmobs.signals.coldstart import ColdStartRecorder, cold_starts
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.door import DoorSignals, DoorTracker
from llmobs.signals.types import Attribution, ModelEndpointSignals
from llmobs.sources.door import DoorTarget, read_door
from llmobs.sources.normalize import (
    DROP_IMPLAUSIBLE,
    DROP_MODEL_LIMIT,
    DROP_SERIES_LIMIT,
    LabelValueBudget,
    SampleGuard,
    normalize,
)
from llmobs.sources.scrape import ScrapeOutcome, Scraper
from llmobs.sources.targets import Target, TargetSource
from llmobs.sources.textformat import Sample
from llmobs.state import DoorHealth, FleetState, StateHolder, TargetHealth

log = logging.getLogger("llmobs.pipeline")


@dataclass(slots=True)
class _TargetBook:
    """Mutable per-target bookkeeping, turned into an immutable TargetHealth each cycle."""

    target: Target
    up: bool = False
    last_scrape_time: float | None = None
    last_success_time: float | None = None
    duration: float = 0.0
    last_error: str = ""
    last_error_kind: str = ""
    consecutive_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    missing: tuple[str, ...] = ()
    missing_logged: frozenset[str] = frozenset()
    trackers: dict[str, ModelEndpointTracker] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    guard: SampleGuard | None = None
    start_seen: tuple[float | None, float | None] | None = None  # (process start, pod created) last looked at
    resets_seen: int = 0
    saturation_unknown_logged: frozenset[str] = frozenset()

    def health(self) -> TargetHealth:
        return TargetHealth(
            endpoint=self.target.name,
            url=self.target.url,
            up=self.up,
            last_scrape_time=self.last_scrape_time,
            scrape_duration_seconds=self.duration,
            last_error=self.last_error,
            last_error_kind=self.last_error_kind,
            consecutive_failures=self.consecutive_failures,
            errors_by_kind=dict(self.errors),
            labels=dict(self.target.labels),
            skipped_lines=dict(self.skipped),
            missing_series=self.missing,
            last_success_time=self.last_success_time,
            counter_resets=sum(t.resets for t in self.trackers.values()),
            series_dropped=dict(self.dropped),
        )


@dataclass(frozen=True, slots=True)
class CardinalityLimits:
    """What one target may cost llmobs (`scrape.max_series_per_target`, `scrape.max_label_values`,
    `signals.max_models`); the excess is dropped and counted in `llmobs_series_dropped_total{reason}`.
    A target whose page names more than `max_models_per_target` models (`scrape.max_models_per_target`)
    is not used at all and is down with error kind `model_limit`: first come first served on the
    fleet-wide `max_models` would otherwise let one such target take every slot, and with discovery the
    order of targets is arbitrary."""

    max_series_per_target: int = 10_000
    max_label_values: int = 512
    max_models: int = 1_000
    max_models_per_target: int = 64


class ModelBudget:
    """Fleet-wide cap on distinct models, first come first served; a model's slot is freed when no
    endpoint holds it any more (its targets were removed), so churn cannot exhaust the cap for good."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self._owners: dict[str, set[str]] = {}

    def admit(self, model: str, owner: str) -> bool:
        owners = self._owners.get(model)
        if owners is None:
            if len(self._owners) >= self.max_models:
                return False
            owners = self._owners[model] = set()
        owners.add(owner)
        return True

    def release(self, owner: str) -> None:
        """Forget every model `owner` (a target URL) held."""
        for model in [m for m, owners in self._owners.items() if owner in owners]:
            owners = self._owners[model]
            owners.discard(owner)
            if not owners:
                del self._owners[model]

    def __len__(self) -> int:
        return len(self._owners)


PROCESS_START_SERIES = "process_start_time_seconds"


def process_start_time(samples: Sequence[Sample]) -> float | None:
    """The page's `process_start_time_seconds` (prometheus_client's standard process collector, which the vLLM
    API server exports): when the replica's process started. Read only when a target comes up, not per scrape."""
    for sample in samples:
        if sample.name == PROCESS_START_SERIES:
            return sample.value
    return None


def _round_robin_by_host(targets: list[Target]) -> list[int]:
    """Target indices in the order to start their scrapes: one per host (scheme://host:port) in turn.

    The scraper's semaphore admits scrapes in start order, so starting them in list order would send all of
    the first `max_concurrency` requests to whichever host the list begins with when several targets share
    a host (a multi-model server, a proxy in front of replicas, a simulator), while the other hosts wait.
    With one target per host, as with plain vLLM pods, this is the list order."""
    queues: dict[str, list[int]] = {}
    for i, t in enumerate(targets):
        scheme, _, rest = t.url.partition("://")
        queues.setdefault(scheme + "://" + rest.split("/", 1)[0], []).append(i)
    if len(queues) == len(targets):
        return list(range(len(targets)))
    order: list[int] = []
    lists = list(queues.values())
    for k in range(max(map(len, lists), default=0)):
        order.extend(q[k] for q in lists if k < len(q))
    return order


class CycleHook(Protocol):
    """Something the owner of the process runs around the scrape loop (`llmobs run` passes
    `llmobs.serving.gc.GcPolicy`): `start` before the first cycle, `after_cycle` at the end of the idle time after
    each, `stop` when the loop ends."""

    def start(self) -> None: ...

    def after_cycle(self, cycles: int) -> None: ...

    def stop(self) -> None: ...


class Pipeline:
    def __init__(
        self,
        source: TargetSource,
        scraper: Scraper,
        holder: StateHolder,
        *,
        window_seconds: float = 60.0,
        ttft_slo_seconds: float = 1.0,
        tpot_slo_seconds: float = 0.1,
        e2e_slo_seconds: float = 30.0,
        limits: CardinalityLimits | None = None,
        cycle_hook: CycleHook | None = None,
        watching_since: float | None = None,
        doors: Sequence[DoorTarget] = (),
    ) -> None:
        self.source = source
        self.scraper = scraper
        self.holder = holder
        self.window_seconds = window_seconds
        self.ttft_slo_seconds = ttft_slo_seconds
        self.tpot_slo_seconds = tpot_slo_seconds
        self.e2e_slo_seconds = e2e_slo_seconds
        self.limits = limits or CardinalityLimits()
        self.models = ModelBudget(self.limits.max_models)
        self._books: dict[str, _TargetBook] = {}
        self.cycles = 0
        self.cycle_hook = cycle_hook  # process-wide settings (the GC) are the process owner's, not ours
        # Replicas that started before this instant were not seen starting: their start is not a cold start.
        self.watching_since = time.time() if watching_since is None else watching_since
        self.cold_starts = ColdStartRecorder()
        self.doors = DoorScrapes(doors, scraper, window_seconds, self.limits.max_models_per_target)

    async def run_cycle(self) -> FleetState:
        t0 = time.perf_counter()
        # one book per URL: a source that lists a URL twice (config refuses it; a hand-built source may not)
        # would feed one replica's pages to one tracker twice a cycle; the first listing wins, as in
        # CombinedTargetSource
        current: dict[str, Target] = {}
        for t in self.source.targets():
            current.setdefault(t.url, t)
        targets = list(current.values())
        for url in list(self._books):
            if url not in current:
                del self._books[url]  # target gone: its state goes with it
                self.models.release(url)
        for t in targets:
            book = self._books.get(t.url)
            if book is None or book.target != t:
                if book is not None:
                    self.models.release(t.url)  # its trackers start afresh
                self._books[t.url] = _TargetBook(t) if book is None else self._relabel(book, t)
            elif book.target is not t:
                book.target = t  # equal, but its pod times (not part of equality) may be newer
        self.scraper.forget(set(current) | self.doors.urls)
        await asyncio.gather(self._scrape_all(targets), self.doors.scrape())
        signals = []
        for book in self._books.values():
            for tracker in book.trackers.values():
                s = tracker.signals()
                if s is not None:
                    signals.append(s)
                    self._log_unknown_saturation(book, s)
        state = FleetState(
            time=time.time(),
            signals=tuple(signals),
            targets=tuple(b.health() for b in self._books.values()),
            cycle_duration_seconds=time.perf_counter() - t0,
            window_seconds=self.window_seconds,
            cold_starts=self.cold_starts.summaries(),
            doors=self.doors.signals,
            door_health=self.doors.health(),
        )
        self.holder.publish(state)
        self.cycles += 1
        return state

    async def _scrape_all(self, targets: list[Target]) -> None:
        """Scrape every target concurrently and record each outcome in target order as soon as it and all
        before it are in: the order (which decides first-come admissions) is the targets', and a page is
        dropped once recorded instead of all pages being held until the slowest target answers."""
        pending: list[ScrapeOutcome | None] = [None] * len(targets)
        recorded = 0

        async def one(i: int, target: Target) -> None:
            nonlocal recorded
            pending[i] = await self.scraper.scrape(target)
            while recorded < len(pending):
                outcome = pending[recorded]
                if outcome is None:
                    break
                pending[recorded] = None
                recorded += 1
                self._record(self._books[outcome.target.url], outcome)

        await asyncio.gather(*(one(i, targets[i]) for i in _round_robin_by_host(targets)))

    @staticmethod
    def _relabel(book: _TargetBook, target: Target) -> _TargetBook:
        """Same URL, new name or labels: keep the counters' history, fresh attribution."""
        fresh = _TargetBook(target, errors=book.errors, skipped=book.skipped, dropped=book.dropped)
        return fresh

    def _record(self, book: _TargetBook, outcome: ScrapeOutcome) -> None:
        book.last_scrape_time = outcome.started
        book.duration = outcome.duration
        was_up = book.up
        if not outcome.ok or outcome.page is None:
            self._fail(book, outcome.error_kind, outcome.error)
            return
        page = outcome.page
        book.skipped.update(page.skipped)
        samples = page.samples
        limit = self.limits.max_series_per_target
        if len(samples) > limit:
            book.dropped[DROP_SERIES_LIMIT] += len(samples) - limit
            samples = samples[:limit]
        if book.guard is None:
            book.guard = SampleGuard(book.target.url, LabelValueBudget(self.limits.max_label_values), self.models,
                                     max_models=self.limits.max_models_per_target)
        scrape = normalize(samples, outcome.started, guard=book.guard,
                           layout=page.layout if samples is page.samples else None)
        book.dropped.update(scrape.dropped)
        if scrape.over_model_limit:
            self.models.release(book.target.url)  # the models it was admitted with go back to the fleet
            book.trackers.clear()  # and it exports none of them
            self._fail(book, "model_limit", f"page names more than {self.limits.max_models_per_target} models "
                       "(scrape.max_models_per_target); none of them is used")
            return
        if not scrape.models:
            book.missing = scrape.missing
            if scrape.dropped.get(DROP_MODEL_LIMIT):
                self._fail(book, "model_limit", f"the fleet-wide model budget is full (signals.max_models="
                           f"{self.limits.max_models}): none of this target's models could be admitted")
            else:
                self._fail(book, "parse", "page has no vLLM series (is this a vLLM /metrics endpoint?)")
            return
        book.up = True
        book.consecutive_failures = 0
        book.last_success_time = outcome.started
        book.missing = scrape.missing
        new_missing = set(scrape.missing) - book.missing_logged
        if new_missing:
            log.warning("target %s does not expose expected vLLM series %s (version drift?)",
                        book.target.name, sorted(new_missing))
            book.missing_logged = book.missing_logged | new_missing
        t = book.target
        for model, model_scrape in scrape.models.items():
            tracker = book.trackers.get(model)
            if tracker is None:
                tracker = book.trackers[model] = ModelEndpointTracker(
                    Attribution(model, t.name, t.node, t.gpu_model), self.window_seconds, self.ttft_slo_seconds,
                    self.tpot_slo_seconds, self.e2e_slo_seconds, t.scheduler, role=t.labels.get("role", "mixed"),
                )
            tracker.observe(model_scrape, outcome.started)
            if tracker.take_role_conflict_started():
                log.warning("target %s (%s): its page contradicts the configured disaggregation role %r; its "
                            "role label reads \"unknown\" until it agrees (llmobs_disaggregation_role_conflicts_total)",
                            t.name, model, tracker.role)
            implausible = tracker.take_implausible()
            if implausible:
                book.dropped[DROP_IMPLAUSIBLE] += implausible
        resets = sum(t.resets for t in book.trackers.values())
        if not was_up or resets != book.resets_seen:  # came up, or restarted between two scrapes
            book.resets_seen = resets
            self._observe_start(book, page.samples, outcome.started, scrape.models)

    def _observe_start(self, book: _TargetBook, samples: Sequence[Sample], first_scrape: float,
                       models: Iterable[str]) -> None:
        """Record a cold start when the target's process (or pod) is one not looked at before: a target that
        was only unreachable for a while, or whose counters merely looked reset, is the same replica."""
        process_start = process_start_time(samples)
        key = (process_start, book.target.created_at)
        if key == book.start_seen or key == (None, None):
            return
        book.start_seen = key
        for model in models:
            spans, rejected = cold_starts(
                model, book.target.name, first_scrape=first_scrape, watching_since=self.watching_since,
                process_start=process_start, pod_created=book.target.created_at, ready_at=book.target.ready_at,
            )
            self.cold_starts.record(model, spans, rejected)
            for span in spans:
                log.info("replica %s of %s: %s -> %s took %.1fs", book.target.name, model, span.start, span.stage,
                         span.seconds)
            if rejected:
                log.warning("replica %s of %s: cold start not measured (%s)", book.target.name, model,
                            ", ".join(rejected))

    @staticmethod
    def _log_unknown_saturation(book: _TargetBook, s: ModelEndpointSignals) -> None:
        """Say once per target and reason why a bottleneck cannot be named (llmobs_saturation_unknown has it
        per cycle)."""
        reasons = frozenset(s.saturation.unknown if s.saturation is not None else ())
        new = reasons - book.saturation_unknown_logged
        if new:
            log.info("target %s: bottleneck unknown for model %s: %s", book.target.name, s.attribution.model,
                     ", ".join(sorted(new)))
            book.saturation_unknown_logged = book.saturation_unknown_logged | new

    @staticmethod
    def _fail(book: _TargetBook, kind: str, error: str) -> None:
        """Mark the target down for this scrape with error `kind` (`llmobs_scrape_errors_total{kind}`)."""
        book.up = False
        book.consecutive_failures += 1
        book.errors[kind] += 1
        book.last_error, book.last_error_kind = error, kind
        if book.consecutive_failures == 1:
            log.warning("target %s down: %s: %s", book.target.name, kind, error)

    async def run_forever(self, interval_seconds: float, stop: asyncio.Event | None = None) -> None:
        """Cycle at a fixed cadence; a slow cycle delays the next one instead of piling up."""
        stop = stop or asyncio.Event()
        if self.cycle_hook is not None:
            self.cycle_hook.start()
        try:
            await self._run_forever(interval_seconds, stop)
        finally:
            if self.cycle_hook is not None:
                self.cycle_hook.stop()

    async def _run_forever(self, interval_seconds: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.run_cycle()
            except Exception:  # keep serving the last good state; the error is visible in the log
                log.exception("scrape cycle failed")
            delay = max(0.0, interval_seconds - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if self.cycle_hook is not None and not stop.is_set():
                # At the end of the idle time, not right after the publish: the state's readers (the scaler's
                # push to KEDA, measured by benchmarks/freshness.py) build from it first, and a collection then
                # delays the next scrape's start instead of the news of this one.
                self.cycle_hook.after_cycle(self.cycles)


# --- doors: routers and proxies in front of the replicas, scraped for per-model demand --------------------------

DOOR_MODEL_LIMIT = "model_limit"


@dataclass(slots=True)
class _DoorBook:
    target: DoorTarget
    tracker: DoorTracker
    up: bool = False
    last_success_time: float | None = None
    problems: Counter[str] = field(default_factory=Counter)


class DoorScrapes:
    """Scrapes the configured doors each cycle beside the replicas and keeps each door's tracker.

    A failure is counted by kind (the scraper's error kinds and the readers' drop reasons) and never stops the
    cycle; a door whose page names more models than
    `max_models` is not used that cycle (`model_limit`)."""

    def __init__(self, doors: Sequence[DoorTarget], scraper: Scraper, window_seconds: float, max_models: int) -> None:
        self.scraper = scraper
        self.max_models = max_models
        self._books = [_DoorBook(d, DoorTracker(d, window_seconds)) for d in doors]
        self.urls = {d.url for d in doors}
        self.signals: tuple[DoorSignals, ...] = ()

    async def scrape(self) -> None:
        if not self._books:
            return
        outcomes = await asyncio.gather(*(self.scraper.scrape(b.target.scrape_target()) for b in self._books))
        signals: list[DoorSignals] = []
        for book, outcome in zip(self._books, outcomes, strict=True):
            signals += self._record(book, outcome)
        self.signals = tuple(signals)

    def _record(self, book: _DoorBook, outcome: ScrapeOutcome) -> list[DoorSignals]:
        book.up = False
        if not outcome.ok or outcome.page is None:
            book.problems[outcome.error_kind or "error"] += 1
            return []
        try:
            reading = read_door(book.target.kind, outcome.page.samples, book.target.model)
        except Exception as e:  # a parser bug on a hostile page must not stop the cycle
            log.warning("door %s: page not read: %r", book.target.name, e)
            book.problems["error"] += 1
            return []
        book.problems.update(reading.dropped)
        # A page without any of this kind's series is an idle door (LiteLLM writes its series on the first
        # request), not a failure: it is read as no models, so the first request counts on the next page.
        if len(reading.models) > self.max_models:
            book.problems[DOOR_MODEL_LIMIT] += 1
            return []
        book.up = True
        book.last_success_time = outcome.started
        before = book.tracker.implausible
        signals = book.tracker.observe(reading, outcome.started)
        if book.tracker.implausible > before:
            book.problems[DROP_IMPLAUSIBLE] += book.tracker.implausible - before
        return signals

    def health(self) -> tuple[DoorHealth, ...]:
        return tuple(DoorHealth(b.target.name, b.target.kind, b.target.url, b.up, b.last_success_time,
                                dict(b.problems)) for b in self._books)
