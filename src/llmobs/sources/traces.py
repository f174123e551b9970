"""Per-request LLM traces (Azure LLM inference 2023, Mooncake FAST'25): arrival times and token lengths.

Both the demo fleet (which replays the requests) and the forecasters (which bucket them into demand
series) read these files; the format knowledge lives here once. Bad files raise `TraceFormatError`
with a message naming the column and row, never a pandas traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_COLUMNS = ("timestamp_ms", "input_length", "output_length")


class TraceFormatError(ValueError):
    """The trace cannot be read as its format says; the message names the problem."""


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
        raise TraceFormatError(
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
        ts = pd.to_datetime(df["TIMESTAMP"], errors="coerce")
        if ts.isna().any():
            row = int(np.flatnonzero(ts.isna().to_numpy())[0])
            raise TraceFormatError(f"{path}: TIMESTAMP row {row + 2} is not a date: {df['TIMESTAMP'][row]!r}")
        seconds = (ts - ts.iloc[0]).dt.total_seconds().to_numpy()
        check_sorted(seconds, "TIMESTAMP", path)
        return RequestRows(f"azure:{file_name}", seconds, numeric_column(df, "ContextTokens", path),
                           numeric_column(df, "GeneratedTokens", path), ts.iloc[0].floor("s"))
    if "timestamp_ms" in cols:
        require_columns(df, MOONCAKE_COLUMNS, path)
        seconds = numeric_column(df, "timestamp_ms", path) / 1000.0
        check_sorted(seconds, "timestamp_ms", path)
        return RequestRows(f"mooncake:{file_name}", seconds - seconds[0] if seconds.size else seconds,
                           numeric_column(df, "input_length", path), numeric_column(df, "output_length", path),
                           None)
    return None
