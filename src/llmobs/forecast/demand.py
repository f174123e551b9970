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
    p = Path(path)
    name = str(p)
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


def _read_servegen(
    df: pd.DataFrame, name: str, short: str, step_seconds: float | None, finer: str
) -> DemandSeries:
    start = numeric_column(df, "window_start_s", name)
    check_sorted(start, "window_start_s", name)
    diffs = np.diff(start)
    if diffs.size and (diffs <= 0).any():
        row = int(np.flatnonzero(diffs <= 0)[0]) + 1
        raise ForecastInputError(f"{name}: window_start_s row {row + 2} repeats {start[row]:g}")
    window = float(np.median(diffs)) if diffs.size else 600.0
    rate = numeric_column(df, "total_rate_rps", name)
    notes: list[str] = []
    gaps = rate <= 0
    if gaps.any():
        notes.append(f"{int(gaps.sum())} windows with total_rate_rps 0 treated as gaps (missing data)")
    rate = np.where(gaps, np.nan, rate)
    inp = numeric_column(df, "mean_input_tokens_est", name) if "mean_input_tokens_est" in df else rate * np.nan
    out = numeric_column(df, "mean_output_tokens_est", name) if "mean_output_tokens_est" in df else rate * np.nan
    index = EPOCH + pd.to_timedelta(start, unit="s")
    frame = pd.DataFrame(
        {"request_rate": rate, "prompt_tokens_rate": rate * inp, "generation_tokens_rate": rate * out},
        index=index,
    )
    # Missing windows (holes in window_start_s) become NaN rows on the regular grid.
    grid = pd.date_range(index[0], index[-1], freq=pd.Timedelta(seconds=window))
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


class PrometheusRangeReader:
    """Reads range queries from a Prometheus HTTP API (`/api/v1/query_range`).

    Synchronous on purpose: it runs in the CLI and benchmarks, never on the exporter's event loop.
    Pass `transport` (e.g. `httpx.MockTransport`) to test without a server.
    """

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the underlying HTTP client."""
        self._client.close()

    def __enter__(self) -> PrometheusRangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query_range(self, query: str, start: float, end: float, step_seconds: float) -> pd.Series:
        """One range query summed to a single series on the [start, end] grid (NaN where absent)."""
        if end <= start:
            raise PrometheusError(f"query range end {end} is not after start {start}")
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_seconds:g}s"}
        try:
            resp = self._client.get("/api/v1/query_range", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus unreachable at {self._client.base_url}: {exc}") from exc
        try:
            body = resp.json()
        except ValueError as exc:
            raise PrometheusError(f"Prometheus answered HTTP {resp.status_code} with non-JSON body") from exc
        if resp.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus refused {query!r}: HTTP {resp.status_code} {body.get('errorType', '')}: "
                f"{body.get('error', '')}".rstrip(": ")
            )
        data = body.get("data", {})
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"query {query!r} did not return a range matrix")
        grid = pd.to_datetime(np.arange(start, end + step_seconds / 2, step_seconds), unit="s")
        total = pd.Series(np.nan, index=grid)
        for result in data.get("result", []):
            ts = pd.to_datetime([float(v[0]) for v in result["values"]], unit="s")
            vals = pd.Series([float(v[1]) for v in result["values"]], index=ts)
            vals = vals.reindex(grid, method="nearest", tolerance=pd.Timedelta(seconds=step_seconds / 2))
            total = total.add(vals, fill_value=0.0).where(total.notna() | vals.notna())
        return total

    def demand(
        self,
        model: str,
        start: float,
        end: float,
        step_seconds: float,
        queries: Mapping[str, str] = DEFAULT_PROMQL,
        rate_window: str = "1m",
    ) -> DemandSeries:
        """A model's demand series from Prometheus; `request_rate` must have data, others may be gaps."""
        frame: dict[str, pd.Series] = {}
        notes: list[str] = []
        for column, template in queries.items():
            q = template.format(model=model, window=rate_window)
            frame[column] = self.query_range(q, start, end, step_seconds)
            if frame[column].isna().all():
                notes.append(f"{column}: no data for {q}")
        if "request_rate" not in frame or frame["request_rate"].isna().all():
            raise PrometheusError(f"no request-rate data for model {model!r} in the range")
        return DemandSeries(pd.DataFrame(frame), step_seconds, "prometheus", tuple(notes))
