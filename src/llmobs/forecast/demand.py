"""Demand series: the one place in the forecast package that reads files or HTTP.

Every source becomes the same shape, a `DemandSeries`: a pandas frame on a regular time grid
(`step_seconds`) with `request_rate` (requests/s), `prompt_tokens_rate` and `generation_tokens_rate`
(tokens/s) and, where derivable, `kv_tokens_in_flight`. NaN marks a gap (no data), which is different
from 0 (no traffic); forecasters and the backtest treat the two differently.

Sources:

* trace files (the formats in `data/traces/README.md`): Azure LLM inference 2023 (per request),
  Mooncake FAST25 (per request, relative ms), ServeGen (600 s rate windows, 0 = gap);
* llmobs' own signal history (`StateHolder.history(model)`), without I/O;
* a Prometheus server's `query_range` API, through an httpx client whose transport tests can swap.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from llmobs import durations
from llmobs.forecast.errors import ForecastInputError
from llmobs.sources.traces import TraceFormatError, check_sorted, numeric_column, request_rows, require_columns
from llmobs.state import ModelDemandPoint

COLUMNS = ("request_rate", "prompt_tokens_rate", "generation_tokens_rate")
EPOCH = pd.Timestamp("2024-01-01 00:00:00")  # a Monday: anchor for traces with relative time
DEFAULT_TRACE_DIR = Path(__file__).resolve().parents[3] / "data" / "traces"
MAX_GRID_ROWS = 1_000_000
"""Most rows a demand series read from a file may have. A rate-window trace may fill out to this many windows
(19 years of 600 s windows): a hole in `window_start_s` wider than that is a typo, and filling it with gap rows
would exhaust memory. The same bound caps the buckets a `--step` cuts a trace into (14 days at 1.21 s): the
backtest's feature matrix then stays in the hundreds of MB, where a 14-day trace at 1 ms (1.2 billion buckets)
needed ~24 GB and was killed for memory before any message."""
MAX_RATE_RPS = 1e9
"""Largest request rate a trace may state. No deployment serves a billion requests a second; a larger value is a
unit or export error, and scored as demand it would turn every WAPE into an absurd number (1e308 req/s → 7.7e301)."""
MAX_MEAN_TOKENS = 10_000_000
"""Largest mean prompt or output length a rate window may state: the request-level simulator's bound on one
request's length (`llmobs.simulate.workload.MAX_TOKENS`), beyond any model's context."""


def _smallest_step(span_seconds: float) -> str:
    """The smallest step (rounded up to 3 significant digits) that cuts `span_seconds` into ≤ MAX_GRID_ROWS."""
    x = span_seconds / MAX_GRID_ROWS
    unit = 10.0 ** (math.floor(math.log10(x)) - 2)
    return f"{math.ceil(x / unit - 1e-9) * unit:.3g}s"


def _check_buckets(source: str, span_seconds: float, step_seconds: float, buckets: float) -> None:
    """Refuse a step that would cut the trace into more than MAX_GRID_ROWS buckets, before allocating them."""
    if buckets > MAX_GRID_ROWS:
        raise ForecastInputError(
            f"{source}: --step {step_seconds:g}s cuts the trace's {span_seconds:,.0f}s into {buckets:,.0f} buckets "
            f"(at most {MAX_GRID_ROWS:,}); use --step {_smallest_step(span_seconds)} or more")


def read_input_text(path: str | Path, what: str) -> str:
    """Read a user-given text file (model config, GPU table, saved /metrics page) or say why not."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ForecastInputError(f"cannot read {what} {path}: {reason}") from exc


def read_package_text(name: str) -> str:
    """A data file shipped inside `llmobs.forecast` (the GPU table)."""
    return resources.files("llmobs.forecast").joinpath(name).read_text()


def parse_duration(text: str | float | int) -> float:
    """Seconds from `90`, `30s`, `10m`, `1.5h`, `1d` (a bare number is seconds): `llmobs.durations`, the one
    duration syntax of llmobs, with its errors as the forecast package's input error."""
    try:
        return durations.parse_duration(text)
    except durations.DurationError as exc:
        raise ForecastInputError(str(exc)) from None


@dataclass(frozen=True)
class DemandSeries:
    """Demand on a regular grid; NaN = gap. `notes` say what was assumed while reading."""

    frame: pd.DataFrame
    step_seconds: float
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def request_rate(self) -> pd.Series:
        """Requests per second, the series the forecaster and the replica recommendation use."""
        return self.frame["request_rate"]

    def __len__(self) -> int:
        return len(self.frame)

    def slice(self, start: int, stop: int | None = None) -> DemandSeries:
        """Rows [start, stop) as a new series (for tests and tuning/test splits)."""
        return DemandSeries(self.frame.iloc[start:stop], self.step_seconds, self.source, self.notes)

    def resample(self, step_seconds: float, finer: str = "hold") -> DemandSeries:
        """Re-grid to a coarser step (means of rates) or a finer one.

        A coarser bucket is a gap only if all its rows are gaps. On a finer grid `hold` repeats the
        rate of the window it falls in (what a rate over that window says and no more); `linear`
        interpolates between window centres (smoother, as real traffic is; an assumption, stated in
        the notes).
        """
        if step_seconds == self.step_seconds:
            return self
        if step_seconds < self.step_seconds:
            span = len(self.frame) * self.step_seconds
            _check_buckets(self.source, span, step_seconds, span / step_seconds)
        rule = pd.Timedelta(seconds=step_seconds)
        if step_seconds > self.step_seconds:
            frame = self.frame.resample(rule, origin="start").mean()
            note = f"resampled {self.step_seconds:g}s → {step_seconds:g}s (mean)"
        else:
            end = self.frame.index[-1] + pd.Timedelta(seconds=self.step_seconds) - rule
            idx = pd.date_range(self.frame.index[0], end, freq=rule)
            if finer == "linear":
                half = pd.Timedelta(seconds=self.step_seconds / 2)
                centres = self.frame.copy()
                centres.index = centres.index + half
                mid = idx + rule / 2
                frame = centres.reindex(centres.index.union(mid)).interpolate(
                    method="time", limit_area="inside"
                ).reindex(mid).bfill().ffill()
                frame.index = idx
                # Interpolation must not invent data inside gaps: keep them as gaps.
                gaps = self.frame.reindex(idx, method="ffill").isna()
                frame = frame.mask(gaps)
                note = f"resampled {self.step_seconds:g}s → {step_seconds:g}s (linear between window centres)"
            elif finer == "hold":
                frame = self.frame.reindex(idx, method="ffill")
                note = f"resampled {self.step_seconds:g}s → {step_seconds:g}s (each window's rate held)"
            else:
                raise ForecastInputError(f"unknown resampling {finer!r}; use hold or linear")
        return DemandSeries(frame, step_seconds, self.source, (*self.notes, note))


def _bucket_requests(
    seconds: np.ndarray, prompt: np.ndarray, output: np.ndarray, start: pd.Timestamp, step: float, source: str
) -> DemandSeries:
    """Per-request rows → rates per bucket. Empty buckets are real zeros; a trailing partial bucket
    is dropped because its rate would be underestimated."""
    if seconds.size == 0:
        raise ForecastInputError(f"{source}: no requests")
    rel = seconds - seconds[0]
    span = rel[-1]
    n_full = int(span // step)
    notes: list[str] = []
    if n_full < 1:
        raise ForecastInputError(f"{source}: trace spans {span:.0f}s, shorter than one {step:g}s step")
    _check_buckets(source, span, step, n_full)
    if span - n_full * step > 0:
        notes.append(f"trailing partial {span - n_full * step:.0f}s bucket dropped")
    idx = (rel // step).astype(np.int64)
    keep = idx < n_full
    counts = np.bincount(idx[keep], minlength=n_full)
    p = np.bincount(idx[keep], weights=np.nan_to_num(prompt[keep]), minlength=n_full)
    g = np.bincount(idx[keep], weights=np.nan_to_num(output[keep]), minlength=n_full)
    index = pd.date_range(start, periods=n_full, freq=pd.Timedelta(seconds=step))
    frame = pd.DataFrame(
        {"request_rate": counts / step, "prompt_tokens_rate": p / step, "generation_tokens_rate": g / step},
        index=index,
    )
    notes.append("kv_tokens_in_flight not derivable: the trace has no completion times")
    return DemandSeries(frame, step, source, tuple(notes))


def read_trace(path: str | Path, step_seconds: float | None = None, finer: str = "hold") -> DemandSeries:
    """Read one of the supported trace formats (detected from its header) into a demand series.

    Default step: 60 s for per-request traces, the file's own 600 s for ServeGen rate windows.
    Per-request traces are bucketed at the step; rate windows are re-gridded (`finer`: hold or linear
    when the step is finer than the windows, see `DemandSeries.resample`).
    """
    if str(path).strip() == "":  # Path("") is ".", the working directory: say what was really given
        raise ForecastInputError("trace path is empty: give a trace CSV file")
    p = Path(path)
    name = str(p)
    if p.is_dir():
        raise ForecastInputError(f"trace {name} is a directory, not a trace file")
    if p.exists() and not p.is_file():  # a device or a FIFO: reading /dev/zero or a pipe would never end
        raise ForecastInputError(f"trace {name} is not a regular file (a device, pipe or socket); give a trace CSV")
    if not p.is_file():
        raise ForecastInputError(f"trace file {name} not found")
    try:
        df = pd.read_csv(p)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ForecastInputError(f"{name}: not a readable CSV ({exc})") from exc
    if df.empty:
        raise ForecastInputError(f"{name}: no data rows")
    try:
        rows = request_rows(df, name, p.name)
        if rows is not None:
            return _bucket_requests(rows.seconds, rows.prompt, rows.output,
                                    rows.start if rows.start is not None else EPOCH, step_seconds or 60.0, rows.source)
        cols = set(df.columns)
        if "window_start_s" in cols:
            require_columns(df, ["window_start_s", "total_rate_rps"], name)
            return _read_servegen(df, name, p.name, step_seconds, finer)
    except TraceFormatError as exc:
        raise ForecastInputError(str(exc)) from None
    raise ForecastInputError(
        f"{name}: unknown trace format (columns: {', '.join(map(str, df.columns))}); expected Azure "
        "(TIMESTAMP, ContextTokens, GeneratedTokens), Mooncake (timestamp_ms, input_length, output_length) "
        "or ServeGen (window_start_s, total_rate_rps)"
    )


def _finite_column(df: pd.DataFrame, col: str, name: str, limit: float, what: str) -> np.ndarray:
    """A numeric column whose empty cells are NaN (a gap) but whose ±inf cells are refused: an infinite
    rate or mean is a broken export, and downstream it would become an infinite number of requests. So is a
    finite value above `limit` (`what` says why no real value is that large): it would be scored as demand."""
    values = numeric_column(df, col, name)
    inf = np.isinf(values)
    if inf.any():
        row = int(np.flatnonzero(inf)[0])
        raise ForecastInputError(
            f"{name}: column {col} row {row + 2} is {values[row]:g}, not a finite number (fix or delete that row)")
    huge = values > limit
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        raise ForecastInputError(
            f"{name}: column {col} row {row + 2} is {values[row]:g}, above {limit:g} ({what}); fix or delete that row")
    return values


def _read_servegen(
    df: pd.DataFrame, name: str, short: str, step_seconds: float | None, finer: str
) -> DemandSeries:
    start = numeric_column(df, "window_start_s", name)
    # NaN compares false everywhere, so it would slip past the order checks below and only fail deep in pandas.
    unusable = ~(np.isfinite(start) & (start >= 0))
    if unusable.any():
        row = int(np.flatnonzero(unusable)[0])
        raise ForecastInputError(
            f"{name}: column window_start_s row {row + 2} is {start[row]:g}, not a window start in seconds ≥ 0 "
            "(fix or delete that row)")
    check_sorted(start, "window_start_s", name)
    diffs = np.diff(start)
    if diffs.size and (diffs <= 0).any():
        row = int(np.flatnonzero(diffs <= 0)[0]) + 1
        raise ForecastInputError(f"{name}: window_start_s row {row + 2} repeats {start[row]:g}")
    window = float(np.median(diffs)) if diffs.size else 600.0
    rows = (start[-1] - start[0]) / window + 1
    if rows > MAX_GRID_ROWS:
        row = int(np.argmax(diffs)) + 1
        raise ForecastInputError(
            f"{name}: window_start_s row {row + 2} jumps from {start[row - 1]:g} to {start[row]:g}: filling the hole "
            f"with {window:g}s gap windows would make {rows:,.0f} rows (at most {MAX_GRID_ROWS:,}); fix that row")
    rate = _finite_column(df, "total_rate_rps", name, MAX_RATE_RPS, "no deployment serves a billion requests/s")
    notes: list[str] = []
    gaps = ~(rate > 0)  # 0 is ServeGen's own gap marker; an empty or negative cell is no data either
    if gaps.any():
        notes.append(f"{int(gaps.sum())} windows with total_rate_rps 0, negative or empty treated as gaps "
                     "(missing data)")
    rate = np.where(gaps, np.nan, rate)
    longest = "longer than any model's context"
    inp = (_finite_column(df, "mean_input_tokens_est", name, MAX_MEAN_TOKENS, longest)
           if "mean_input_tokens_est" in df else rate * np.nan)
    out = (_finite_column(df, "mean_output_tokens_est", name, MAX_MEAN_TOKENS, longest)
           if "mean_output_tokens_est" in df else rate * np.nan)
    index = EPOCH + pd.to_timedelta(start, unit="s")
    frame = pd.DataFrame(
        {"request_rate": rate, "prompt_tokens_rate": rate * inp, "generation_tokens_rate": rate * out},
        index=index,
    )
    # Missing windows (holes in window_start_s) become NaN rows on the regular grid.
    grid = pd.date_range(index[0], index[-1], freq=pd.Timedelta(seconds=window))
    off = ~index.isin(grid)
    if off.any():  # reindexing onto the grid would drop such a window without a word
        row = int(np.flatnonzero(off)[0])
        raise ForecastInputError(
            f"{name}: window_start_s row {row + 2} starts at {start[row]:g}, off the {window:g}s grid of the "
            "other windows (their median spacing); windows must be evenly spaced, holes are fine")
    if len(grid) != len(index):
        notes.append(f"{len(grid) - len(index)} missing windows filled as gaps")
        frame = frame.reindex(grid)
    notes.append("kv_tokens_in_flight not derivable: rate windows only")
    series = DemandSeries(frame, window, f"servegen:{short}", tuple(notes))
    return series.resample(step_seconds, finer) if step_seconds else series


def from_history(
    points: Sequence[ModelDemandPoint], step_seconds: float, kv_capacity_tokens: float | None = None
) -> DemandSeries:
    """llmobs' own per-model history (one point per scrape cycle) on a regular grid.

    Points are averaged into `step_seconds` buckets; buckets without a point are gaps. KV tokens in
    flight = max KV utilization × capacity when the capacity is known. Out-of-order points (a clock
    stepped back) are sorted, not refused: the live forecast must keep going; the notes say so.
    """
    if not points:
        raise ForecastInputError("history is empty")
    times = np.array([p.time for p in points], dtype=float)
    notes: tuple[str, ...] = ()
    if (np.diff(times) < 0).any():  # a wall clock stepped back: order by time, say so, go on
        order = np.argsort(times, kind="stable")
        points = [points[i] for i in order]
        times = times[order]
        notes = ("history timestamps went backwards; sorted",)
    data = {
        "request_rate": [p.request_rate for p in points],
        "prompt_tokens_rate": [p.prompt_tokens_rate for p in points],
        "generation_tokens_rate": [p.generation_tokens_rate for p in points],
    }
    if kv_capacity_tokens:
        data["kv_tokens_in_flight"] = [p.kv_cache_utilization_max * kv_capacity_tokens for p in points]
    index = pd.to_datetime(times, unit="s")
    frame = pd.DataFrame(data, index=index)
    rule = pd.Timedelta(seconds=step_seconds)
    frame = frame.resample(rule, origin="epoch").mean()
    return DemandSeries(frame, step_seconds, "llmobs-history", notes)


DEFAULT_PROMQL: Mapping[str, str] = {
    "request_rate": 'sum(llmobs_request_rate{{model="{model}"}})',
    "prompt_tokens_rate": 'sum(llmobs_prompt_tokens_rate{{model="{model}"}})',
    "generation_tokens_rate": 'sum(llmobs_generation_tokens_rate{{model="{model}"}})',
    "kv_tokens_in_flight": (
        'sum(llmobs_kv_cache_utilization_ratio{{model="{model}"}} '
        '* llmobs_kv_cache_capacity_tokens{{model="{model}"}})'
    ),
}
"""Queries over llmobs' own exported series (docs/metrics.md)."""

VLLM_PROMQL: Mapping[str, str] = {
    "request_rate": 'sum(rate(vllm:request_success_total{{model_name="{model}"}}[{window}]))',
    "prompt_tokens_rate": 'sum(rate(vllm:prompt_tokens_total{{model_name="{model}"}}[{window}]))',
    "generation_tokens_rate": 'sum(rate(vllm:generation_tokens_total{{model_name="{model}"}}[{window}]))',
}
"""The same straight from vLLM's counters, for a Prometheus that scrapes vLLM and not llmobs."""


class PrometheusError(ForecastInputError):
    """The Prometheus API refused a query or answered something that is not a range result."""


def _json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's own words, for messages about a malformed answer."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _sample_number(value: object) -> float | None:
    """A sample's time or value as Prometheus writes them (a JSON number, or a string such as "1.5", "NaN",
    "+Inf"); None when it is neither (another type, text, a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


_SKIPPED_NOT_PAIR = "samples that are not a [time, value] pair skipped"
_SKIPPED_BAD_VALUE = "samples with a value that is not a number skipped"
_SKIPPED_BAD_TIME = "samples with a timestamp that is not a finite number skipped"
_SKIPPED_OUT_OF_RANGE = "samples with a timestamp outside the queried range skipped"
_SKIPPED_REPEATED = "samples at a repeated timestamp skipped, the first one kept"
_SKIPPED_HISTOGRAM = "native-histogram samples skipped, not float values"
_NON_FINITE = "NaN or ±Inf values kept as gaps"
_NEGATIVE = "steps with a negative value kept as gaps, as demand cannot be negative"
"""What `PrometheusRangeReader` counts while reading a range; each count becomes a note of the series."""


def _skipped_text(counts: Mapping[str, int]) -> str:
    """The counts as one clause per reason, for a note or an error (one line either way)."""
    return "; ".join(f"{n} {what}" for what, n in counts.items() if n)


class PrometheusRangeReader:
    """Reads range queries from a Prometheus HTTP API (`/api/v1/query_range`).

    Synchronous on purpose: it runs in the CLI and benchmarks, never on the exporter's event loop.
    Pass `transport` (e.g. `httpx.MockTransport`) to test without a server.
    """

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        try:
            self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        except httpx.InvalidURL as exc:  # not an HTTPError: it would escape the callers' one-line errors
            raise PrometheusError(f"Prometheus URL {base_url!r} is not a URL ({exc}): give e.g. "
                                  "http://prometheus:9090") from exc

    def close(self) -> None:
        """Close the underlying HTTP client."""
        self._client.close()

    def __enter__(self) -> PrometheusRangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query_range(self, query: str, start: float, end: float, step_seconds: float) -> pd.Series:
        """One range query summed to a single series on the [start, end] grid (NaN where absent).

        An answer that is not a range result (not a JSON object, no `data`, `result` not a list, a series
        without `values`) is a `PrometheusError`. A single unreadable sample is skipped instead, so one bad
        point does not sink a whole history; `demand` counts the skipped samples in its notes. See
        `_read_range` for what counts as unreadable.
        """
        return self._read_range(query, start, end, step_seconds)[0]

    def _read_range(
        self, query: str, start: float, end: float, step_seconds: float
    ) -> tuple[pd.Series, Counter[str]]:
        """`query_range`'s series, and how many samples were skipped or kept as gaps, by reason.

        Prometheus sends each series' samples as sorted, unique `[unix seconds, "value"]` pairs inside
        [start, end]. A robust client does not count on it: a pair that is not two items, a value that is
        not a number, a timestamp that is not finite or falls outside the range (it would match no grid
        step, and a far one overflows pandas' dates) is skipped; samples are sorted; of samples at the
        same timestamp the first one in the answer is kept. NaN and ±Inf values (Prometheus' 0/0 and x/0)
        are no demand figure: they stay gaps, as does a grid step no series has a sample for.
        """
        if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(step_seconds) and step_seconds > 0):
            raise PrometheusError(
                f"query range start {start}, end {end}, step {step_seconds}s: all must be finite, the step > 0")
        if end <= start:
            raise PrometheusError(f"query range end {end} is not after start {start}")
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_seconds:g}s"}
        try:
            resp = self._client.get("/api/v1/query_range", params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PrometheusError(f"Prometheus unreachable at {self._client.base_url}: {exc}") from exc
        try:
            body = resp.json()
        except (ValueError, RecursionError) as exc:
            raise PrometheusError(
                f"Prometheus answered HTTP {resp.status_code} with non-JSON body: "
                f"is {self._client.base_url} a Prometheus server?") from exc
        if not isinstance(body, dict):
            raise PrometheusError(
                f"Prometheus answered {query!r} with a JSON {_json_kind(body)}, not an API object "
                f"(HTTP {resp.status_code}): is {self._client.base_url} a Prometheus server?")
        if resp.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus refused {query!r}: HTTP {resp.status_code} {body.get('errorType', '')}: "
                f"{body.get('error', '')}".rstrip(": ")
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(
                f"Prometheus answered {query!r} without a `data` object (got {_json_kind(data)}): "
                f"is {self._client.base_url} a Prometheus server?")
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"query {query!r} did not return a range matrix")
        results = data.get("result")
        if not isinstance(results, list):
            raise PrometheusError(
                f"Prometheus answered {query!r} with `data.result` {_json_kind(results)}, not a list of series")
        counts: Counter[str] = Counter()
        grid = pd.to_datetime(np.arange(start, end + step_seconds / 2, step_seconds), unit="s")
        total = pd.Series(np.nan, index=grid)
        for i, result in enumerate(results):
            times, values = self._samples(result, f"series {i + 1} of {len(results)} for {query!r}", counts)
            low, high = start - step_seconds / 2, end + step_seconds / 2
            inside = (times >= low) & (times <= high)
            counts[_SKIPPED_OUT_OF_RANGE] += int((~inside).sum())
            times, values = times[inside], values[inside]
            order = np.argsort(times, kind="stable")  # stable: the first of equal timestamps stays first
            times, values = times[order], values[order]
            repeated = np.zeros(times.size, dtype=bool)
            repeated[1:] = np.diff(times) == 0
            counts[_SKIPPED_REPEATED] += int(repeated.sum())
            times, values = times[~repeated], values[~repeated]
            counts[_NON_FINITE] += int((~np.isfinite(values)).sum())
            values = np.where(np.isfinite(values), values, np.nan)
            vals = pd.Series(values, index=pd.to_datetime(times, unit="s"))
            vals = vals.reindex(grid, method="nearest", tolerance=pd.Timedelta(seconds=step_seconds / 2))
            total = total.add(vals, fill_value=0.0).where(total.notna() | vals.notna())
        return total, counts

    @staticmethod
    def _samples(result: object, what: str, counts: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        """One series' readable (time, value) samples in answer order; unreadable ones counted in `counts`."""
        if not isinstance(result, dict):
            raise PrometheusError(f"Prometheus answered malformed data: {what} is a JSON {_json_kind(result)}, "
                                  "not an object")
        histograms = result.get("histograms")
        if isinstance(histograms, list):  # native histograms (Prometheus ≥ 2.40): no float value to read
            counts[_SKIPPED_HISTOGRAM] += len(histograms)
        if "values" not in result:
            if isinstance(histograms, list):
                return np.empty(0), np.empty(0)
            raise PrometheusError(f"Prometheus answered malformed data: {what} has no `values`")
        samples = result["values"]
        if not isinstance(samples, list):
            raise PrometheusError(
                f"Prometheus answered malformed data: {what} has `values` {_json_kind(samples)}, not a list")
        times: list[float] = []
        values: list[float] = []
        for sample in samples:
            if not (isinstance(sample, list) and len(sample) == 2):
                counts[_SKIPPED_NOT_PAIR] += 1
                continue
            t, v = _sample_number(sample[0]), _sample_number(sample[1])
            if t is None or not math.isfinite(t):
                counts[_SKIPPED_BAD_TIME] += 1
            elif v is None:
                counts[_SKIPPED_BAD_VALUE] += 1
            else:
                times.append(t)
                values.append(v)
        return np.array(times, dtype=float), np.array(values, dtype=float)

    def demand(
        self,
        model: str,
        start: float,
        end: float,
        step_seconds: float,
        queries: Mapping[str, str] = DEFAULT_PROMQL,
        rate_window: str = "1m",
    ) -> DemandSeries:
        """A model's demand series from Prometheus; `request_rate` must have data, others may be gaps.

        Every column is a rate or an amount, never below 0: a negative step is a gap, like NaN and ±Inf.
        Samples skipped while reading (see `_read_range`) and such gaps are counted in the notes, and in
        the error when they leave no request rate at all.
        """
        frame: dict[str, pd.Series] = {}
        notes: list[str] = []
        skipped: dict[str, Counter[str]] = {}
        for column, template in queries.items():
            q = template.format(model=model, window=rate_window)
            series, counts = self._read_range(q, start, end, step_seconds)
            negative = series < 0
            counts[_NEGATIVE] += int(negative.sum())
            frame[column] = series.mask(negative)
            skipped[column] = counts
            if frame[column].isna().all():
                notes.append(f"{column}: no data for {q}")
            if any(counts.values()):
                notes.append(f"{column} (query {q}): {_skipped_text(counts)}")
        if "request_rate" not in frame or frame["request_rate"].isna().all():
            why = _skipped_text(skipped.get("request_rate", Counter()))
            raise PrometheusError(
                f"no request-rate data for model {model!r} in the range" + (f" ({why})" if why else ""))
        return DemandSeries(pd.DataFrame(frame), step_seconds, "prometheus", tuple(notes))
