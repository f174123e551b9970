"""The requests a simulation serves: arrival time, prompt and output tokens, and prefix-block hashes.

Per-request traces (Azure 2023, Mooncake FAST'25) carry their own lengths and are read through
`llmobs.sources.traces`, the one place that knows their columns. ServeGen files only hold 600 s rate
windows with mean lengths, so requests are drawn from them: Poisson arrivals at each window's rate and
lengths from an exponential distribution with the window's mean (the maximum-entropy choice when only a
mean is known), rounded up to ≥ 1 token, from a seeded generator. Windows with rate 0 are gaps in
ServeGen's data (see data/traces/README.md), not idle time: they produce no requests, and the notes say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmobs.simulate.errors import SimulationInputError, is_number, plain
from llmobs.sources.traces import (
    MissingColumnsError,
    TraceFormatError,
    check_finite,
    check_gaps,
    check_sorted,
    numeric_column,
    request_rows,
    require_columns,
)

MAX_TOKENS = 10_000_000  # a prompt or output longer than this is a broken row, not a long request
MOONCAKE_BLOCK_TOKENS = 512  # Mooncake's hash_ids name 512-token prefix blocks
MAX_DRAWN_REQUESTS = 20_000_000
"""Most requests drawn from rate windows in one go. Drawing holds ~50 bytes a request (arrival, prompt and output
as floats, then as integers): 20 M is ~1 GB, and ten times what one request-level run takes
(`whatif.REQUEST_LEVEL_LIMIT`, past which traffic goes to the fluid mode, which draws nothing). Checked on the
expected count (Σ rate × width) before anything is drawn: ServeGen's 14 days at ~800 req/s would be a billion."""


@dataclass(frozen=True)
class Workload:
    """Requests sorted by arrival (seconds from the first). `hashes[i]` are request i's prefix-block ids,
    each covering `hash_block_tokens` tokens (empty when the trace has none)."""

    source: str
    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    hashes: tuple[tuple[int, ...], ...] = ()
    hash_block_tokens: int = MOONCAKE_BLOCK_TOKENS
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # The engine indexes lists with these values, so whole-valued float lengths (numpy's default for
        # arithmetic) become int64 here rather than a TypeError mid-run; anything else that would fail later is
        # refused now, naming the request.
        for key in ("arrival", "prompt", "output"):
            value = getattr(self, key)
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
            if array.ndim != 1 or array.dtype.kind not in "iuf":
                raise SimulationInputError(
                    f"{self.source}: {key} must be a 1-D array of numbers, one per request, not a "
                    f"{array.ndim}-D array of {array.dtype}")
            if array is not value:
                object.__setattr__(self, key, array)
        n = len(self.arrival)
        if not (len(self.prompt) == len(self.output) == n) or (self.hashes and len(self.hashes) != n):
            raise SimulationInputError(f"{self.source}: arrival, prompt, output (and hashes) differ in length")
        _check_lengths(self.prompt, "prompt", self.source, minimum=1)
        _check_lengths(self.output, "output", self.source, minimum=1)
        for key in ("prompt", "output"):
            if getattr(self, key).dtype.kind == "f":
                object.__setattr__(self, key, getattr(self, key).astype(np.int64))
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(self.arrival) | (self.arrival < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SimulationInputError(f"{self.source}: request {i} has arrival time {float(self.arrival[i]):g}; "
                                       "arrival times must be finite seconds ≥ 0 from the start of the run")
        back = np.flatnonzero(np.diff(self.arrival) < 0)
        if back.size:
            i = int(back[0]) + 1
            raise SimulationInputError(
                f"{self.source}: request {i} arrives at {float(self.arrival[i]):g}s, before request {i - 1} "
                f"({float(self.arrival[i - 1]):g}s); arrival times must be sorted")
        block = self.hash_block_tokens
        if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
            raise SimulationInputError(f"{self.source}: hash_block_tokens must be an integer ≥ 1 (tokens per "
                                       f"prefix block), not {plain(block)}")
        object.__setattr__(self, "hash_block_tokens", int(block))

    def __len__(self) -> int:
        return len(self.arrival)

    def compressed(self, factor: float) -> Workload:
        """The same requests `factor` times faster (rate × factor): a bigger load from the same trace."""
        if not (is_number(factor) and math.isfinite(factor) and factor > 0):
            raise SimulationInputError(f"time compression factor must be a finite number > 0, not {plain(factor)}")
        return Workload(self.source, self.arrival / factor, self.prompt, self.output, self.hashes,
                        self.hash_block_tokens, (*self.notes, f"arrivals compressed ×{factor:g}"))

    def repeated(self, times: int) -> Workload:
        """The trace played `times` times back to back (for longer benchmark runs)."""
        if isinstance(times, bool) or not isinstance(times, int | np.integer) or times < 1:
            raise SimulationInputError(f"repeat count must be an integer ≥ 1, not {plain(times)}")
        span = float(self.arrival[-1]) + 1.0 if len(self) else 0.0
        arrival = np.concatenate([self.arrival + k * span for k in range(times)])
        hashes = self.hashes * times if self.hashes else ()
        return Workload(self.source, arrival, np.tile(self.prompt, times), np.tile(self.output, times), hashes,
                        self.hash_block_tokens, (*self.notes, f"trace repeated ×{times}"))


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SimulationInputError(f"seed must be an integer ≥ 0, not {plain(seed)}")


def _check_cut(start_s: object, duration_s: object) -> float | None:
    """`start_s` and `duration_s` as `load_workload` takes them; returns the duration (None: to the end)."""
    if not (is_number(start_s) and math.isfinite(start_s) and start_s >= 0):
        raise SimulationInputError(f"start must be a finite number of seconds ≥ 0 into the trace, not "
                                   f"{plain(start_s)}")
    if duration_s is None or (is_number(duration_s) and duration_s == math.inf):
        return None
    if not (is_number(duration_s) and math.isfinite(duration_s) and duration_s > 0):
        raise SimulationInputError(f"duration must be a number of seconds > 0 (or None for the rest of the "
                                   f"trace), not {plain(duration_s)}")
    return float(duration_s)


def _check_lengths(values: np.ndarray, what: str, source: str, minimum: int) -> None:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < minimum) | (values > MAX_TOKENS) | (values != np.floor(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SimulationInputError(
            f"{source}: request {i} has {what} length {float(values[i]):g}; lengths must be whole tokens in "
            f"[{minimum}, {MAX_TOKENS:,}]")


def _lengths(values: np.ndarray, what: str, source: str) -> np.ndarray:
    _check_lengths(values, what, source, minimum=1)
    return values.astype(np.int64)


def _hash_ids(df: pd.DataFrame, path: str) -> tuple[tuple[int, ...], ...]:
    out = []
    for row, cell in enumerate(df["hash_ids"].fillna("").astype(str)):
        try:
            out.append(tuple(int(x) for x in cell.split()))
        except ValueError:
            raise SimulationInputError(f"{path}: hash_ids row {row + 2} is not space-separated integers: "
                                       f"{cell[:40]!r}") from None
    return tuple(out)


def read_trace_csv(path: str | Path) -> pd.DataFrame:
    """A trace file as a frame; a missing or unreadable file is one `SimulationInputError` naming it."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise SimulationInputError(f"trace file {path} not found") from None
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulationInputError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None


def load_workload(path: str | Path, *, seed: int = 0, start_s: float = 0.0, duration_s: float | None = None,
                  rate_scale: float = 1.0) -> Workload:
    """Requests from a trace file (format detected from its header, as `llmobs forecast` does).

    `start_s`, `duration_s` and `rate_scale` select and scale the ServeGen windows to draw from (its 14 days
    at ~800 req/s would be a billion requests); on per-request traces they cut the time range. A NaN or negative
    start, a duration that is NaN or ≤ 0, or a seed that is not an integer ≥ 0 is refused, not an empty Workload.
    """
    _check_seed(seed)
    duration_s = _check_cut(start_s, duration_s)
    p = Path(path)
    name = str(p)
    df = read_trace_csv(p)
    if df.empty:
        raise SimulationInputError(f"{name}: no data rows")
    try:
        rows = request_rows(df, name, p.name)
        if rows is not None:
            keep = rows.seconds >= start_s
            if duration_s is not None:
                keep &= rows.seconds < start_s + duration_s
            hashes = _hash_ids(df, name) if "hash_ids" in df.columns else ()
            hashes = tuple(h for h, k in zip(hashes, keep, strict=True) if k) if hashes else ()
            arrival = rows.seconds[keep] - start_s
            return Workload(rows.source, arrival, _lengths(rows.prompt[keep], "prompt", name),
                            _lengths(rows.output[keep], "output", name), hashes)
    except MissingColumnsError as exc:
        raise SimulationInputError(f"{exc}; the simulator needs each request's prompt and output lengths") from None
    except TraceFormatError as exc:
        raise SimulationInputError(str(exc)) from None
    if "window_start_s" in df.columns:
        return _draw_from_windows(df, name, p.name, seed, start_s, duration_s, rate_scale)
    raise SimulationInputError(
        f"{name}: unknown trace format (columns: {', '.join(map(str, df.columns))}); expected Azure "
        "(TIMESTAMP, ContextTokens, GeneratedTokens), Mooncake (timestamp_ms, input_length, output_length) "
        "or ServeGen (window_start_s, total_rate_rps, mean_input_tokens_est, mean_output_tokens_est)")


def rate_window_columns(df: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A rate-window table's window starts, rates and mean input/output tokens, as numbers; every problem a
    drawing or a fluid run would trip over later (a missing column, a start that is not finite, out of order,
    repeated or a year after the one before) is one `SimulationInputError` naming the row. Rates and means
    are left to the caller, which knows which windows it uses."""
    try:
        require_columns(df, ("window_start_s", "total_rate_rps", "mean_input_tokens_est", "mean_output_tokens_est"),
                        name)
        start = numeric_column(df, "window_start_s", name)
        check_finite(start, "window_start_s", name)
        check_sorted(start, "window_start_s", name)
        repeat = np.flatnonzero(np.diff(start) == 0)
        if repeat.size:  # overlapping windows would draw arrivals out of order
            i = int(repeat[0]) + 1
            raise TraceFormatError(f"{name}: column window_start_s row {i + 2} repeats row {i + 1}'s "
                                   f"{float(start[i]):g}s; give one row per window")
        check_gaps(start, "window_start_s", name)
        rate = numeric_column(df, "total_rate_rps", name)
        mean_in = numeric_column(df, "mean_input_tokens_est", name)
        mean_out = numeric_column(df, "mean_output_tokens_est", name)
    except TraceFormatError as exc:
        raise SimulationInputError(str(exc)) from None
    return start, rate, mean_in, mean_out


def _draw_from_windows(df: pd.DataFrame, name: str, short: str, seed: int, start_s: float,
                       duration_s: float | None, rate_scale: float) -> Workload:
    _check_seed(seed)
    duration_s = _check_cut(start_s, duration_s)
    if not (is_number(rate_scale) and math.isfinite(rate_scale) and rate_scale > 0):
        raise SimulationInputError(f"rate scale must be a finite number > 0, not {plain(rate_scale)}")
    start, rate, mean_in, mean_out = rate_window_columns(df, name)
    width = float(np.median(np.diff(start))) if len(start) > 1 else 600.0
    end = start_s + duration_s if duration_s is not None else float(start[-1]) + width
    # Check every window the loop below draws from before drawing any: a bad value raises, not a half-drawn run.
    cut_lo, cut_hi = np.maximum(start, start_s), np.minimum(start + width, end)  # as the loop below cuts them
    drawn = cut_hi > cut_lo
    with np.errstate(invalid="ignore"):
        wrong = drawn & ((rate < 0) | np.isinf(rate))
        traffic = drawn & np.isfinite(rate) & (rate > 0)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise SimulationInputError(f"{name}: window at {float(start[i]):g}s has total_rate_rps {float(rate[i]):g}; a "
                                   "rate must be a finite number ≥ 0 requests/s (0 or empty: a gap in the data)")
    for values, what in ((mean_in, "mean_input_tokens_est"), (mean_out, "mean_output_tokens_est")):
        with np.errstate(invalid="ignore"):
            bad = traffic & ~((values > 0) & (values <= MAX_TOKENS))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SimulationInputError(
                f"{name}: window at {float(start[i]):g}s has {what} {float(values[i]):g}; a window with traffic needs "
                f"a positive mean of at most {MAX_TOKENS:,} tokens")
    expected = float(np.sum(rate[traffic] * rate_scale * (cut_hi - cut_lo)[traffic]))
    if expected > MAX_DRAWN_REQUESTS:
        raise SimulationInputError(
            f"{name}: the windows between {start_s:g}s and {end:g}s at rate × {rate_scale:g} would draw about "
            f"{expected:,.0f} requests, more than {MAX_DRAWN_REQUESTS:,} (memory); draw a shorter span "
            "(start/duration) or a lower rate scale, or simulate long traffic in the fluid mode")
    rng = np.random.default_rng(seed)
    arrivals, prompts, outputs = [], [], []
    gaps = 0
    for w0, r, mi, mo in zip(start, rate, mean_in, mean_out, strict=True):
        lo, hi = max(w0, start_s), min(w0 + width, end)
        if hi <= lo:
            continue
        if not (np.isfinite(r) and r > 0):
            gaps += 1
            continue
        n = int(rng.poisson(r * rate_scale * (hi - lo)))
        arrivals.append(np.sort(rng.uniform(lo, hi, n)))  # a Poisson process, given its count, is uniform
        prompts.append(np.ceil(rng.exponential(mi, n)).clip(1, MAX_TOKENS))
        outputs.append(np.ceil(rng.exponential(mo, n)).clip(1, MAX_TOKENS))
    if not arrivals:
        last = float(start[-1]) + width
        if start_s >= last:
            raise SimulationInputError(f"{name}: the start {start_s:g}s is past the windows' end ({last:g}s, "
                                       f"{last / 86400:.1f} days): choose an earlier start")
        raise SimulationInputError(f"{name}: no windows with traffic between {start_s:g}s and {end:g}s")
    notes = [f"ServeGen windows: Poisson arrivals at rate × {rate_scale:g}, exponential lengths around each "
             f"window's means, seed {seed}"]
    if gaps:
        notes.append(f"{gaps} windows with rate 0 are data gaps: no requests drawn there")
    arrival = np.concatenate(arrivals) - start_s
    return Workload(f"servegen:{short}", arrival, np.concatenate(prompts).astype(np.int64),
                    np.concatenate(outputs).astype(np.int64), notes=tuple(notes))


def draw_from_rate_windows(windows: pd.DataFrame, source: str, *, seed: int = 0) -> Workload:
    """Requests drawn from rate windows read elsewhere (a Prometheus history), exactly as from ServeGen's:
    `windows` holds ServeGen's four columns; windows without a positive rate draw no requests. The notes are
    the caller's to write (what a gap means depends on where the windows came from)."""
    drawn = _draw_from_windows(windows, source, source, seed, 0.0, None, 1.0)
    return Workload(source, drawn.arrival, drawn.prompt, drawn.output)
