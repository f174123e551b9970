"""One vLLM replica, step by step on virtual time: the V1 scheduler's rules at request granularity.

The rules, as vLLM V1's `Scheduler.schedule()` (vllm/v1/core/sched/scheduler.py, read in vLLM 0.32.0)
applies them:

* one token budget per step (`max_num_batched_tokens`); running requests are served first, each taking what
  it still needs (1 token when decoding, the rest of its prompt when prefilling), capped by the budget left —
  so a long prompt is prefilled in chunks over several steps (chunked prefill);
* KV memory is paged in blocks of `block_size` tokens (vllm/v1/core/kv_cache_manager.py); a request holds
  ceil(computed tokens / block_size) blocks. When a running request cannot get the blocks it needs, the
  newest running request is preempted (FCFS policy: the last of the running list), its blocks are freed and
  it goes back to the front of the waiting queue to be recomputed from scratch (V1 preempts by recompute);
  if the request itself is the newest, it is the one preempted;
* then, only if nothing was preempted this step, waiting requests are admitted in FCFS order while the
  batch has room (`max_num_seqs`), the budget lasts and their first chunk's blocks fit; the head of the
  queue blocks the ones behind it;
* with prefix caching, an admitted request first looks up its prompt's leading prefix blocks; hits are
  computed tokens it does not prefill (vLLM always recomputes at least the prompt's last token);
* a step that completes a request's scheduled tokens samples one new token: the first one ends the
  prefill (TTFT), the request finishes when it has its output length.

Simplifications, stated: cached prefix blocks are not shared between running requests (each request
allocates its own; vLLM shares them), so KV use is never under-counted; the prefix cache is an LRU of block
hashes as large as the KV cache (vLLM keeps freed blocks as cache until it reuses them). Step time comes
from a `StepProfile`.

Speed: a step costs O(1) for the decoding requests, however many: they advance together, so each keeps
its progress as an offset from a replica-wide decode counter, a heap orders their finishes, and a count
per position within a block says how many need a new block at the next step. Only prefilling requests are
touched one by one. When every running request is decoding and no waiting one could be admitted, the next
k steps are taken at once (k bounded by the first finish, the blocks left, and the `until` instant).
Decoding requests take their token first and running prefills share what is left of the budget, in
admission order (vLLM walks the running list in admission order; with max_num_batched_tokens ≥
max_num_seqs, as vLLM requires, the decode tokens always fit either way). A finished request's latency and
length histograms are filled when the page reads them (`stats`), a scrape interval's finishes at once.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import cache
from heapq import heappop, heappush
from itertools import chain
from operator import add, attrgetter

import numpy as np

from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.profile import StepProfile
from llmobs.simulate.stats import ReplicaStats

_VECTOR_BATCH = 48
"""From this many finished requests on, `_bin_finished` bins them with numpy (~55 µs + 0.4 µs a request) rather
than one by one (~1.4 µs a request): measured, the two cross at ~50."""


@cache
def _bounds_array(bounds: tuple[float, ...]) -> np.ndarray:
    """A histogram's bucket bounds as the array `np.searchsorted` reads (a handful of layouts, built once)."""
    return np.array(bounds, dtype=float)


_REQUEST_FIELDS = attrgetter("arrival", "first_scheduled", "first_token", "finish", "prompt", "output", "preemptions")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The vLLM engine settings the scheduler obeys. Defaults: vLLM 0.32's for `vllm serve` on a GPU of
    ≥ 70 GiB that is not an A100 (H100, H200): 1024 sequences, 8192 batched tokens
    (`EngineArgs._set_default_max_num_seqs_and_batched_tokens_args` in vllm/engine/arg_utils.py), 16-token
    blocks."""

    kv_blocks: int
    block_size: int = 16
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    max_model_len: int = 32768
    prefix_caching: bool = True

    def __post_init__(self) -> None:
        for key in ("kv_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                shown = repr(value) if isinstance(value, str) else str(value)  # a number without its numpy type
                raise SimulationInputError(f"engine {key} must be an integer ≥ 1, not {shown}")
            # numpy integers (a profile's arithmetic) are stored as plain ints: the engine's arithmetic and its
            # list indexing stay exactly those of Python ints
            object.__setattr__(self, key, int(value))
        if not isinstance(self.prefix_caching, bool | np.bool_):
            shown = repr(self.prefix_caching) if isinstance(self.prefix_caching, str) else str(self.prefix_caching)
            raise SimulationInputError(f"engine prefix_caching must be True or False, not {shown}")
        object.__setattr__(self, "prefix_caching", bool(self.prefix_caching))
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise SimulationInputError(  # vLLM's own check (SchedulerConfig)
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be ≥ max_num_seqs ({self.max_num_seqs})")
        if self.kv_blocks * self.block_size < self.max_model_len:
            # vLLM refuses to start in this case too ("max seq len ... larger than the maximum number of
            # tokens that can be stored in KV cache"): one request of the longest allowed length must fit.
            raise SimulationInputError(
                f"the KV cache ({self.kv_blocks} blocks × {self.block_size} = {self.kv_blocks * self.block_size:,}"
                f" tokens) cannot hold one request of max_model_len {self.max_model_len:,} tokens: lower "
                "max_model_len or give the replica more KV memory")


class SimRequest:
    """One request's progress and timestamps (seconds of virtual time; -1 = not yet).

    While decoding, `computed` and `generated` hold their values at decode count `sync`; the replica's
    decode counter minus `sync` is what was added since (`ReplicaEngine._sync`)."""

    __slots__ = ("arrival", "blocks", "computed", "decoding", "done_at", "finish", "first_scheduled", "first_token",
                 "generated", "hashes", "index", "output", "preemptions", "prompt", "replica", "sync", "truncated")

    def __init__(self, index: int, arrival: float, prompt: int, output: int, hashes: tuple[int, ...] = (),
                 truncated: bool = False) -> None:
        self.index = index
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.hashes = hashes
        self.truncated = truncated
        self.computed = 0
        self.generated = 0
        self.blocks = 0
        self.decoding = False
        self.sync = 0
        self.done_at = 0
        self.first_scheduled = -1.0
        self.first_token = -1.0
        self.finish = -1.0
        self.preemptions = 0
        self.replica = -1


class ReplicaEngine:
    """A replica's scheduler and clock. `advance(until)` runs steps until the clock reaches `until`;
    a request `submit`ted at time t (after `advance(t)`) is first seen by the next step, as in vLLM.

    The engine runs a few steps per simulated request, so its hot methods bind the profile's coefficients
    and the config's limits to attributes once (`_bs`, `_kv_token_s`, ...) and inline the small helpers they
    call (noted where it is done); the arithmetic is written exactly as in the helpers, term for term, so
    every time comes out to the same bits."""

    __slots__ = ("_at_position", "_binned", "_bs", "_decode_count", "_decode_seq_s", "_decoding", "_deferred",
                 "_finishes", "_fixed_s", "_hash_tokens", "_kv_token_s", "_length_bucket", "_max_seqs", "_offset_sum",
                 "_prefill_step_s", "_prefill_token_s", "_prefix", "_prefix_capacity", "_stats", "_time_bounds",
                 "_token_budget", "clock", "config", "created", "finished", "free_blocks", "load", "next_change",
                 "prefilling", "profile", "replica_id", "running", "steps", "waiting")

    def __init__(self, config: EngineConfig, profile: StepProfile, *, start: float, hash_block_tokens: int = 512,
                 replica_id: int = 0) -> None:
        self.config = config
        self.profile = profile
        self.replica_id = replica_id
        self.clock = start
        self.created = start
        self.waiting: deque[SimRequest] = deque()
        self.running: dict[SimRequest, None] = {}  # admission order: the last is the first preempted
        self.prefilling: list[SimRequest] = []  # running requests still prefilling, admission order
        self.load = 0  # len(running) + len(waiting), kept as a count: a router reads it at every arrival
        self.free_blocks = config.kv_blocks
        self.finished: list[SimRequest] = []
        self._binned = 0  # finished[:_binned] are in the stats' histograms (`_bin_finished`)
        self._stats = ReplicaStats(start, config.max_model_len)
        self._length_bucket: dict[int, int] = {}  # a prompt or output length -> its bucket in the stats
        stats = self._stats
        if not stats.h_e2e.bounds == stats.h_inference.bounds == stats.h_decode.bounds:
            raise RuntimeError("the e2e, inference and decode histograms must share their bounds")  # see _bin_one
        self._time_bounds = (*stats.h_e2e.bounds, math.inf)
        self.steps = 0
        self.next_change = start  # before this instant the number of requests in the replica cannot fall
        # the limits and coefficients the step loop reads, bound once
        self._bs = config.block_size
        self._token_budget = config.max_num_batched_tokens
        self._max_seqs = config.max_num_seqs
        self._fixed_s = profile.fixed_s
        self._prefill_token_s = profile.prefill_token_s
        self._decode_seq_s = profile.decode_seq_s
        self._kv_token_s = profile.kv_token_s
        self._prefill_step_s = profile.prefill_step_s
        # decoding requests, advanced together
        self._decode_count = 0
        self._decoding = 0
        self._offset_sum = 0  # Σ (computed − sync) over decoding requests: their KV = this + n·decode count
        self._at_position = [0] * config.block_size  # decoding requests by (computed − sync) mod block_size
        self._finishes: list[tuple[int, int, SimRequest]] = []  # (decode count at finish, index, request)
        self._hash_tokens = hash_block_tokens
        self._prefix: OrderedDict[int, None] = OrderedDict()
        self._prefix_capacity = max(1, config.kv_blocks * config.block_size // hash_block_tokens)
        # The decode run `settle` found and left for later. It depends only on the requests' state (not on
        # the clock), so it holds until a request comes or a step is taken (`submit`, `take_waiting`,
        # `_step` and `_take_decode_run` drop it): the next `settle` or `advance` takes it without planning
        # it again — most runs would otherwise be planned twice, once to see they end past the instant asked.
        self._deferred: tuple[int, float] | None = None

    # --- state read by the page and the router
    @property
    def stats(self) -> ReplicaStats:
        """The replica's vLLM counters and histograms, as its page shows them."""
        self._bin_finished()
        return self._stats

    @property
    def kv_usage(self) -> float:
        return 1.0 - self.free_blocks / self.config.kv_blocks

    @property
    def outstanding(self) -> int:
        return len(self.running) + len(self.waiting)

    def submit(self, request: SimRequest) -> None:
        request.replica = self.replica_id
        self.waiting.append(request)
        self.load += 1
        self._deferred = None
        self.next_change = self.clock

    def take_waiting(self) -> list[SimRequest]:
        """Remove and return the requests waiting here (a replica removed before it served hands them back)."""
        queued = list(self.waiting)
        self.waiting.clear()
        self.load -= len(queued)
        self._deferred = None
        return queued

    def advance(self, until: float) -> None:
        """Run steps back to back until the clock is at or past `until`; idle time jumps."""
        while self.clock < until:
            if not self.load:
                self.clock = until
                break
            if not self._decode_run(until):
                self._step()
        self.next_change = self.clock

    def settle(self, until: float) -> None:
        """Make `outstanding` true at `until` while doing as little as possible: a run of decode steps that
        finishes nothing before `until` is left for later (taking it later in one piece or in two gives the
        same steps and times), so a router can look at every replica at every arrival cheaply."""
        if self.next_change > until:
            return
        kv_token_s = self._kv_token_s
        while self.clock < until:
            if not self.load:
                break
            plan = self._deferred or self._decode_plan()
            if plan is None:
                self._step()  # not part of a decode run: `_decode_run` would decline it too
                continue
            k, first = plan
            ahead = self.clock + k * first + kv_token_s * self._decoding * k * (k - 1) / 2
            if ahead > until:
                self._deferred = plan
                self.next_change = ahead
                return
            self._take_decode_run(k, first)
        self.next_change = self.clock

    def _decode_plan(self) -> tuple[int, float] | None:
        """The decode run that would start now — its length k (to the first finish or until blocks run low)
        and its first step's time — or None when the next step is not part of such a run."""
        n = self._decoding
        if not n or self.prefilling:
            return None
        free = self.free_blocks
        waiting = self.waiting
        # could the head of the queue join the batch (room, budget, blocks for its first chunk) beside the
        # n decode tokens and the n blocks they may need? Then the next step admits it: not a decode run
        if waiting and len(self.running) < self._max_seqs:
            budget = self._token_budget - n
            if budget > 0:
                head = waiting[0]
                chunk = head.prompt + head.generated
                if chunk > budget:
                    chunk = budget
                if -(-chunk // self._bs) <= free - n:
                    return None
        heap = self._finishes
        top = heap[0]  # skip stale entries first (a decoding request always has its live entry here)
        while not (top[2].decoding and top[2].done_at == top[0]):
            heappop(heap)  # entries of requests preempted since
            top = heap[0]
        k = self._bs * (free // n)
        to_finish = top[0] - self._decode_count
        if to_finish < k:
            k = to_finish
        if k < 2:
            return None
        return k, self._fixed_s + self._decode_seq_s * n + self._kv_token_s * (self._offset_sum
                                                                              + n * self._decode_count)

    def drain(self) -> None:
        """Run until every submitted request has finished."""
        while self.running or self.waiting:
            if not self._decode_run(math.inf):
                self._step()

    # --- the decoding group
    def _sync(self, r: SimRequest) -> None:
        delta = self._decode_count - r.sync
        r.computed += delta
        r.generated += delta
        r.sync = self._decode_count
        r.blocks = -(-r.computed // self._bs)

    def _stop_decoding(self, r: SimRequest) -> None:
        self._sync(r)
        offset = r.computed - self._decode_count
        self._decoding -= 1
        self._offset_sum -= offset
        self._at_position[offset % self._bs] -= 1
        r.decoding = False  # its heap entry is now stale and skipped

    def _blocks_for_decode_steps(self, k: int) -> int:
        """New blocks the decoding requests need over the next k steps (a block is needed by a request whose
        computed tokens fill whole blocks). Over one step that is the requests at position −d mod block_size
        (d: the decode count); over k steps, the positions −d, −d−1, … −d−k+1 (mod block_size): every
        position once per whole block_size steps, then a run of `rest` positions going down from −d, which
        is one slice of the position counts or two when it wraps past 0."""
        bs = self._bs
        at = self._at_position
        top = -self._decode_count % bs
        if k == 1:
            return at[top]
        full, rest = divmod(k, bs)
        if rest <= top + 1:
            return full * self._decoding + sum(at[top + 1 - rest:top + 1])
        return full * self._decoding + sum(at[:top + 1]) + sum(at[bs + top + 1 - rest:])

    def _pop_finished(self, now: float) -> None:
        heap = self._finishes
        d = self._decode_count
        bs = self._bs
        at = self._at_position
        while heap and heap[0][0] <= d:
            r = heappop(heap)[2]
            if r.decoding and r.done_at <= d:  # `_stop_decoding`, inlined: the hot path of every finish
                offset = r.computed - r.sync
                r.computed = offset + d
                r.generated += d - r.sync
                r.sync = d
                r.blocks = -(-r.computed // bs)
                self._decoding -= 1
                self._offset_sum -= offset
                at[offset % bs] -= 1
                r.decoding = False
                self._retire(r, now)

    # --- scheduling
    def _decode_run(self, until: float) -> bool:
        """Take k ≥ 2 identical pure-decode steps at once when nothing can change before the k-th; False
        when the next step must be taken alone."""
        plan = self._deferred or self._decode_plan()
        if plan is None:
            return False
        k, first = plan
        growth = self._kv_token_s * self._decoding  # each step reads n more KV tokens than the one before
        if until != math.inf:
            span = until - self.clock
            if growth > 0:  # smallest k with k·first + growth·k(k−1)/2 ≥ span
                b = first - growth / 2
                k_time = math.ceil((-b + math.sqrt(b * b + 2 * growth * span)) / growth)
            else:
                k_time = math.ceil(span / first)
            if k_time < k:
                k = k_time
            if k < 2:
                return False
        self._take_decode_run(k, first)
        return True

    def _take_decode_run(self, k: int, first: float) -> None:
        self._deferred = None
        n = self._decoding
        growth = self._kv_token_s * n
        elapsed = k * first + growth * k * (k - 1) / 2
        self.free_blocks -= self._blocks_for_decode_steps(k)
        d = self._decode_count = self._decode_count + k
        self.steps += k
        stats = self._stats
        tokens = n * k
        stats.generation_tokens += tokens
        h = stats.h_itl  # SimHistogram.observe, inlined (the first bucket checked first: see `_bin_one`)
        value = elapsed / k
        b = h.bounds
        h.counts[0 if value <= b[0] else bisect_left(b, value)] += tokens
        h.sum += value * tokens
        h.count += tokens
        clock = self.clock = self.clock + elapsed
        if self._finishes[0][0] <= d:  # the run ends at the first finish unless blocks or time cut it short
            self._pop_finished(clock)

    def _preempt_newest(self) -> SimRequest:
        victim, _ = self.running.popitem()
        if victim.decoding:
            self._stop_decoding(victim)
        else:
            self.prefilling.remove(victim)
        self.free_blocks += victim.blocks
        victim.blocks = 0
        victim.computed = 0
        victim.preemptions += 1
        self._stats.preemptions += 1
        self.waiting.appendleft(victim)
        return victim

    def _prefix_lookup(self, r: SimRequest) -> int:
        """Prompt tokens already in the prefix cache (whole leading blocks, at least one token left to run)."""
        hits = 0
        cache = self._prefix
        for h in r.hashes:
            if h not in cache:
                break
            cache.move_to_end(h)
            hits += 1
        cached = min(hits * self._hash_tokens, r.prompt - 1)
        return cached - cached % self._bs

    def _prefix_insert(self, r: SimRequest) -> None:
        cache = self._prefix
        for h in r.hashes:
            cache[h] = None
            cache.move_to_end(h)
        while len(cache) > self._prefix_capacity:
            cache.popitem(last=False)

    def _step(self) -> None:
        self._deferred = None
        bs = self._bs
        running = self.running
        stats = self._stats
        budget = self._token_budget - self._decoding
        scheduled: list[tuple[SimRequest, int]] = []
        preempted = False
        prefill = context = 0  # prompt tokens scheduled, and the KV tokens their requests already hold
        if self.prefilling:
            for r in list(self.prefilling):
                if r not in running:
                    continue  # preempted earlier in this step
                n = min(r.prompt + r.generated - r.computed, budget)
                if n <= 0:
                    break
                need = -(-(r.computed + n) // bs) - r.blocks
                while need > self.free_blocks and r in running:
                    preempted = True
                    self._preempt_newest()
                if r not in running:
                    break
                self.free_blocks -= need
                r.blocks += need
                budget -= n
                scheduled.append((r, n))
                prefill += n
                context += r.computed
        while self._decoding:
            need = self._at_position[-self._decode_count % bs]  # `_blocks_for_decode_steps(1)`, inlined
            if need <= self.free_blocks:
                self.free_blocks -= need
                break
            preempted = True
            self._preempt_newest()
        waiting = self.waiting
        if not preempted and waiting:
            prefix_caching = self.config.prefix_caching
            max_seqs = self._max_seqs
            free = self.free_blocks
            while waiting and len(running) < max_seqs and budget > 0:
                r = waiting[0]
                cached = 0
                if prefix_caching:
                    cached = self._prefix_lookup(r) if r.hashes else 0
                    stats.prefix_queries += r.prompt
                n = r.prompt + r.generated - cached
                if n > budget:
                    n = budget
                need = -(-(cached + n) // bs)
                if need > free:
                    break
                waiting.popleft()
                stats.prefix_hits += cached
                r.computed = cached
                free -= need
                r.blocks = need
                if r.first_scheduled < 0:
                    r.first_scheduled = self.clock
                running[r] = None
                self.prefilling.append(r)
                budget -= n
                scheduled.append((r, n))
                prefill += n
                context += cached
            self.free_blocks = free
        decoding = self._decoding
        if not scheduled and not decoding:
            raise RuntimeError("simulated replica made no progress")  # unreachable: the config check forbids it
        if preempted:  # the preemptions may have taken scheduled requests out of the batch: count those left
            prefill = context = 0
            for r, n in scheduled:
                if r in running:
                    prefill += n
                    context += r.computed
        context += self._offset_sum + decoding * self._decode_count
        # StepProfile.step_seconds, inlined (the same terms in the same order)
        elapsed = (self._fixed_s + self._prefill_token_s * prefill + self._decode_seq_s * decoding
                   + self._kv_token_s * context)
        if prefill > 0:
            elapsed = elapsed + self._prefill_step_s
        end = self.clock + elapsed
        self.clock = end
        self.steps += 1
        d = self._decode_count
        if decoding:
            d += 1
            self._decode_count = d
            stats.generation_tokens += decoding
            h = stats.h_itl  # SimHistogram.observe, inlined (the first bucket checked first: see `_bin_one`)
            b = h.bounds
            h.counts[0 if elapsed <= b[0] else bisect_left(b, elapsed)] += decoding
            h.sum += elapsed * decoding
            h.count += decoding
            if self._finishes[0][0] <= d:
                self._pop_finished(end)
        for r, n in scheduled:
            if preempted and r not in running:  # (without a preemption every scheduled request still runs)
                continue  # preempted after it was scheduled: its work is lost
            computed = r.computed + n
            r.computed = computed
            if computed < r.prompt + r.generated:
                continue  # a prefill chunk, more to come
            r.generated += 1
            stats.generation_tokens += 1
            self.prefilling.remove(r)
            if r.first_token < 0:
                r.first_token = end
                h = stats.h_ttft  # SimHistogram.observe, inlined
                value = end - r.arrival
                h.counts[bisect_left(h.bounds, value)] += 1
                h.sum += value
                h.count += 1
                stats.prompt_tokens += r.prompt
                if r.hashes and self.config.prefix_caching:
                    self._prefix_insert(r)
            if r.generated >= r.output:
                self._retire(r, end)
            else:  # it joins the decoding group, at offset computed − d from the decode counter
                r.decoding = True
                r.sync = d
                done_at = r.done_at = d + r.output - r.generated
                self._decoding += 1
                offset = computed - d
                self._offset_sum += offset
                self._at_position[offset % bs] += 1
                heappush(self._finishes, (done_at, r.index, r))

    def _retire(self, r: SimRequest, now: float) -> None:
        del self.running[r]
        self.load -= 1
        r.finish = now
        self.free_blocks += r.blocks
        r.blocks = 0
        self.finished.append(r)  # its nine latency and length histograms are filled when read: `_bin_finished`
        self._stats.success["length" if r.truncated else "stop"] += 1

    def _bin_finished(self) -> None:
        """Observe the requests finished since the last call in the per-request histograms (e2e, queue,
        inference, prefill, decode, prompt and output lengths, preemptions, TPOT).

        Nothing reads those histograms between two pages, so they are filled when the page is rendered
        (`stats`), all of a scrape interval's finishes at once: a bisection per histogram per request cost
        as much as the rest of the simulation of a request. Counts and sums come out to the same bits as
        observing each request when it finished: the bucket is `bisect_left`'s, and each sum adds the
        values one by one in finishing order (`np.add.accumulate` is sequential)."""
        finished = self.finished
        start = self._binned
        if start == len(finished):
            return
        self._binned = len(finished)
        batch = finished[start:]
        if len(batch) < _VECTOR_BATCH:
            for r in batch:
                self._bin_one(r)
            return
        stats = self._stats
        m = len(batch)
        columns = np.fromiter(chain.from_iterable(map(_REQUEST_FIELDS, batch)), float, 7 * m).reshape(m, 7).T
        arrival, started, first, finish, prompt, output, preemptions = columns
        decode = finish - first
        many = output > 1
        for h, values in ((stats.h_e2e, finish - arrival), (stats.h_queue, started - arrival),
                          (stats.h_inference, finish - started), (stats.h_prefill, first - started),
                          (stats.h_decode, decode), (stats.h_prompt, prompt), (stats.h_generation, output),
                          (stats.h_preempt, preemptions), (stats.h_tpot, decode[many] / (output[many] - 1))):
            if not len(values):
                continue
            buckets = np.bincount(np.searchsorted(_bounds_array(h.bounds), values, side="left"),
                                  minlength=len(h.counts))
            h.counts = list(map(add, h.counts, buckets.tolist()))
            h.sum = float(np.add.accumulate(np.concatenate(((h.sum,), values)))[-1])
            h.count += len(values)

    def _bin_one(self, r: SimRequest) -> None:
        """`_bin_finished` for one request, the way a small batch is cheaper to observe."""
        stats = self._stats
        now, arrival, started, first = r.finish, r.arrival, r.first_scheduled, r.first_token
        # SimHistogram.observe, inlined and unrolled: 8 histograms per request (9 with TPOT). Where nearly
        # every value falls in the first bucket (queue and prefill times under 0.3 s, no preemption), one
        # comparison with the first bound spares the bisection.
        # e2e, inference and decode times share their bounds and differ by the queue and prefill times,
        # short next to the buckets: each one's bucket is checked first for the next (`_time_bounds` ends
        # with +inf, so that check needs no end case)
        bounds = self._time_bounds
        h = stats.h_e2e
        value = now - arrival
        i = bisect_left(bounds, value)
        h.counts[i] += 1
        h.sum += value
        h.count += 1
        h = stats.h_queue
        value = started - arrival
        b = h.bounds
        h.counts[0 if value <= b[0] else bisect_left(b, value)] += 1
        h.sum += value
        h.count += 1
        h = stats.h_inference
        value = now - started
        if not ((not i or bounds[i - 1] < value) and value <= bounds[i]):
            i = bisect_left(bounds, value)
        h.counts[i] += 1
        h.sum += value
        h.count += 1
        h = stats.h_prefill
        value = first - started
        b = h.bounds
        h.counts[0 if value <= b[0] else bisect_left(b, value)] += 1
        h.sum += value
        h.count += 1
        h = stats.h_decode
        value = now - first
        if not ((not i or bounds[i - 1] < value) and value <= bounds[i]):
            i = bisect_left(bounds, value)
        h.counts[i] += 1
        h.sum += value
        h.count += 1
        # prompt and output lengths: whole numbers that repeat, whose bucket (the two histograms share their
        # bounds) is looked up once per distinct length
        buckets = self._length_bucket
        h = stats.h_prompt
        tokens = r.prompt
        try:
            i = buckets[tokens]
        except KeyError:
            i = buckets[tokens] = bisect_left(h.bounds, tokens)
        h.counts[i] += 1
        h.sum += tokens
        h.count += 1
        h = stats.h_generation
        tokens = r.output
        try:
            i = buckets[tokens]
        except KeyError:
            i = buckets[tokens] = bisect_left(h.bounds, tokens)
        h.counts[i] += 1
        h.sum += tokens
        h.count += 1
        h = stats.h_preempt
        preemptions = r.preemptions
        if preemptions:
            h.counts[bisect_left(h.bounds, preemptions)] += 1
            h.sum += preemptions
        else:
            h.counts[0] += 1  # (adding 0 to the sum changes nothing)
        h.count += 1
        if r.output > 1:
            h = stats.h_tpot
            value = (now - first) / (r.output - 1)
            h.counts[bisect_left(h.bounds, value)] += 1
            h.sum += value
            h.count += 1
