"""Reads a real request trace (arrival time, prompt and output lengths) to drive the simulated fleet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


class TraceError(ValueError):
    """The trace file cannot drive the simulator; the message names the problem."""


@dataclass(frozen=True)
class RequestTrace:
    """Arrival offsets (seconds from the first request, sorted) and token lengths."""

    name: str
    arrivals: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    @property
    def duration(self) -> float:
        return float(self.arrivals[-1]) if len(self.arrivals) else 0.0


def default_traces_dir() -> Path:
    """The repo's copy of the traces (data/traces), which a clone has without ../shared."""
    return Path(__file__).resolve().parents[3] / "data" / "traces"


def load_request_trace(path: Path) -> RequestTrace:
    """Azure 2023 (`TIMESTAMP, ContextTokens, GeneratedTokens`) or Mooncake
    (`timestamp_ms, input_length, output_length`) per-request CSVs."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TraceError(f"cannot read trace {path}: {e}") from None
    cols = set(frame.columns)
    if {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= cols:
        ts = pd.to_datetime(frame["TIMESTAMP"], errors="coerce")
        seconds = (ts - ts.min()).dt.total_seconds().to_numpy()
        prompt, output = frame["ContextTokens"], frame["GeneratedTokens"]
    elif {"timestamp_ms", "input_length", "output_length"} <= cols:
        seconds = (frame["timestamp_ms"] - frame["timestamp_ms"].min()).to_numpy() / 1000.0
        prompt, output = frame["input_length"], frame["output_length"]
    else:
        raise TraceError(
            f"trace {path.name}: expected columns TIMESTAMP/ContextTokens/GeneratedTokens (Azure) or "
            f"timestamp_ms/input_length/output_length (Mooncake); found {sorted(cols)}"
        )
    p = pd.to_numeric(prompt, errors="coerce").to_numpy(dtype=float)
    o = pd.to_numeric(output, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(seconds) & np.isfinite(p) & np.isfinite(o) & (p > 0) & (o >= 0)
    if not ok.any():
        raise TraceError(f"trace {path.name}: no usable rows")
    order = np.argsort(seconds[ok], kind="stable")
    return RequestTrace(path.stem, seconds[ok][order], p[ok][order].astype(int),
                        np.maximum(o[ok][order], 1).astype(int))
