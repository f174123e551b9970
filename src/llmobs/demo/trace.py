"""Reads a real request trace (arrival time, prompt and output lengths) to drive the simulated fleet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmobs.sources.traces import TraceFormatError, request_rows

TraceError = TraceFormatError
"""The trace cannot drive the simulator; the message names the problem."""


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
    """An Azure 2023 or Mooncake per-request trace (the formats of `llmobs.sources.traces`)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise TraceError(f"cannot read trace {path}: {e}") from None
    rows = request_rows(frame, str(path), path.name)
    if rows is None:
        raise TraceError(
            f"trace {path.name}: expected columns TIMESTAMP/ContextTokens/GeneratedTokens (Azure) or "
            f"timestamp_ms/input_length/output_length (Mooncake); found {sorted(map(str, frame.columns))}"
        )
    ok = np.isfinite(rows.prompt) & np.isfinite(rows.output) & (rows.prompt > 0) & (rows.output >= 0)
    if not ok.any():
        raise TraceError(f"trace {path.name}: no usable rows")
    return RequestTrace(path.stem, rows.seconds[ok], rows.prompt[ok].astype(int),
                        np.maximum(rows.output[ok], 1).astype(int))
