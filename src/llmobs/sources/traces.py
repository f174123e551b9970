"""Per-request LLM traces (Azure LLM inference 2023, Mooncake FAST'25): arrival times and token lengths.

Both the demo fleet (which replays the requests) and the forecasters (which bucket them into demand
series) read these files; the format knowledge lives here once. Bad files raise `TraceFormatError`
with a message naming the column and row, never a pandas traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_COLUMNS = ("timestamp_ms", "input_length", "output_length")
AZURE_DATE_EXAMPLE = "2023-11-16 18:15:46.6805900"  # the form of Azure's TIMESTAMP column
MAX_GAP_S = 365 * 86400.0
"""Longest gap allowed between consecutive timestamps. No trace goes a year without a request or a window; one
that does has a broken timestamp (a 1970 epoch-zero date, a year typo, a unit mix-up), and reading it as it is
would stretch a one-hour trace over decades: buckets and simulation intervals by the billion."""


class TraceFormatError(ValueError):
    """The trace cannot be read as its format says; the message names the problem."""


class MissingColumnsError(TraceFormatError):
    """The trace lacks columns its format needs (callers may add what they need the columns for)."""


@dataclass(frozen=True)
class RequestRows:
    """One row per request: `seconds` from the first request (sorted), prompt and output tokens.

    `start` is the wall-clock time of the first request when the trace has one (Azure), else None.
    """

    source: str
    seconds: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    start: pd.Timestamp | None


def require_columns(df: pd.DataFrame, cols: Sequence[str], path: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))})"
        )


def numeric_column(df: pd.DataFrame, col: str, path: str) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() & df[col].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TraceFormatError(f"{path}: column {col} row {row + 2} is not a number: {df[col].iloc[row]!r}")
    column: np.ndarray = values.to_numpy(dtype=float)  # (pandas is untyped here)
    return column


def check_finite(t: np.ndarray, col: str, path: str) -> None:
    """Every row needs its time: an empty, NaN or infinite one is refused with its row, not dropped (a dropped
    first row would also shift every other time)."""
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        i = int(bad[0])
        what = "empty" if np.isnan(t[i]) else f"{float(t[i]):g}"
        raise TraceFormatError(f"{path}: column {col} row {i + 2} is {what}; every row needs a finite time "
                               "(fill it in or remove the row)")


def check_gaps(t: np.ndarray, col: str, path: str, show: Callable[[int], str] | None = None) -> None:
    """Refuse a gap of more than `MAX_GAP_S` between consecutive times (sorted, finite `t`, in seconds), naming
    both rows (`show(i)`: how to print row i's time, else its seconds) — either may be the broken one."""
    far = np.flatnonzero(np.diff(t) > MAX_GAP_S)
    if far.size:
        i = int(far[0])
        a, b = (show(i), show(i + 1)) if show is not None else (f"{t[i]:g} s", f"{t[i + 1]:g} s")
        days = (t[i + 1] - t[i]) / 86400.0
        apart = f"{days:,.0f}" if days < 1e9 else f"{days:.3g}"
        raise TraceFormatError(
            f"{path}: column {col} rows {i + 2} and {i + 3} are {apart} days apart ({a}, then {b}); no trace goes "
            f"{MAX_GAP_S / 86400:.0f} days without traffic, so one of them is a broken timestamp (fix or remove it)")


def check_sorted(t: np.ndarray, col: str, path: str) -> None:
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise TraceFormatError(
            f"{path}: timestamps not sorted: column {col} row {i + 2} is earlier than row {i + 1} "
            "(sort the file by time first)"
        )


def request_rows(df: pd.DataFrame, path: str, file_name: str) -> RequestRows | None:
    """The per-request rows of an Azure or Mooncake trace frame; None for any other format."""
    cols = set(df.columns)
    if "TIMESTAMP" in cols:
        require_columns(df, AZURE_COLUMNS, path)
        ts = azure_timestamps(df["TIMESTAMP"], path)
        seconds = (ts - ts.iloc[0]).dt.total_seconds().to_numpy()
        check_sorted(seconds, "TIMESTAMP", path)
        check_gaps(seconds, "TIMESTAMP", path, lambda i: str(df["TIMESTAMP"].iloc[i]))
        return RequestRows(f"azure:{file_name}", seconds, numeric_column(df, "ContextTokens", path),
                           numeric_column(df, "GeneratedTokens", path), ts.iloc[0].floor("s"))
    if "timestamp_ms" in cols:
        require_columns(df, MOONCAKE_COLUMNS, path)
        ms = numeric_column(df, "timestamp_ms", path)
        check_finite(ms, "timestamp_ms", path)
        seconds = ms / 1000.0
        check_sorted(seconds, "timestamp_ms", path)
        check_gaps(seconds, "timestamp_ms", path, lambda i: f"{ms[i]:g} ms")
        return RequestRows(f"mooncake:{file_name}", seconds - seconds[0] if seconds.size else seconds,
                           numeric_column(df, "input_length", path), numeric_column(df, "output_length", path),
                           None)
    return None


def azure_timestamps(column: pd.Series, path: str) -> pd.Series:
    """Azure's TIMESTAMP column as datetimes, each row parsed on its own as an ISO 8601 date (with or without
    fractional seconds: a format guessed from the first row would refuse the others). Numbers are refused, not
    read as nanoseconds since 1970; so are unreadable rows (the first one is named) and rows that mix dates with
    and without a UTC offset (no common clock). Dates that all carry an offset are compared in UTC."""
    if pd.api.types.is_numeric_dtype(column) and column.notna().any():
        row = int(np.flatnonzero(column.notna().to_numpy())[0])
        raise TraceFormatError(
            f"{path}: TIMESTAMP holds numbers (row {row + 2}: {column.iloc[row]}), not dates; the Azure format "
            f"needs dates like {AZURE_DATE_EXAMPLE} (convert epoch times to dates, or use a Mooncake file's "
            "timestamp_ms)")
    try:
        ts = pd.to_datetime(column, format="ISO8601", errors="coerce")
    except ValueError:  # pandas refuses mixed offsets even with errors="coerce"
        ts = _zoned_timestamps(column, path)
    bad = ts.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        cell = column.iloc[row]
        what = "empty" if pd.isna(cell) else f"not a date: {str(cell)[:40]!r}"
        raise TraceFormatError(f"{path}: TIMESTAMP row {row + 2} is {what}; every row needs a date like "
                               f"{AZURE_DATE_EXAMPLE}")
    return ts


def _zoned_timestamps(column: pd.Series, path: str) -> pd.Series:
    """Dates with UTC offsets: all in UTC if every readable row has one, else the first row that differs from the
    first readable row is refused (this runs only when pandas found several offsets, so rows are parsed one by
    one)."""
    first: bool | None = None
    for row, cell in enumerate(column):
        try:
            stamp = pd.Timestamp(cell) if isinstance(cell, str) else pd.NaT
        except ValueError:  # unreadable: named afterwards, with the other unreadable rows
            continue
        if stamp is pd.NaT:
            continue
        zoned = stamp.tzinfo is not None
        if first is None:
            first, first_row = zoned, row
        elif zoned != first:
            raise TraceFormatError(
                f"{path}: TIMESTAMP row {row + 2} ({cell}) {'has' if zoned else 'lacks'} a UTC offset and row "
                f"{first_row + 2} does not; give every date in one form (all with an offset, or none)")
    return pd.to_datetime(column, format="ISO8601", errors="coerce", utc=True)
