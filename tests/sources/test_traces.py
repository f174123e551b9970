"""The per-request trace readers (`llmobs.sources.traces`), which the simulator, the forecasters and the demo
share: dates read row by row, and timestamps the readers must refuse with the row, not drop or misread."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from llmobs.sources.traces import MAX_GAP_S, MissingColumnsError, TraceFormatError, request_rows

AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
MOONCAKE = "timestamp_ms,input_length,output_length\n"


def rows(text: str):  # type: ignore[no-untyped-def]
    return request_rows(pd.read_csv(io.StringIO(text)), "t.csv", "t.csv")


def test_azure_dates_are_read_row_by_row_with_or_without_fractions() -> None:
    r = rows(AZURE + "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:55,100,100\n"
             "2023-11-16 18:15:55.0176690,242,14\n")
    assert r.seconds.tolist() == pytest.approx([0.0, 8.31941, 8.33708])
    assert r.start == pd.Timestamp("2023-11-16 18:15:46")


@pytest.mark.parametrize(("text", "message"), [
    (AZURE + "1700000000,500,100\n1700000003,500,100\n", r"TIMESTAMP holds numbers \(row 2: 1700000000\)"),
    (AZURE + "1.7e9,500,100\n", "TIMESTAMP holds numbers"),
    (AZURE + "2023-11-16 18:15:46,1,1\n2023-11-16 18:15:47.5,1,1\nnot-a-date,1,1\n", "TIMESTAMP row 4 is not a date"),
    (AZURE + "2023-11-16 18:15:46,1,1\n,1,1\n", "TIMESTAMP row 3 is empty"),
    (AZURE + "2023-11-16 18:15:46.1234567,1,1\n2300-01-01 00:00:00,1,1\n", "row 3 is not a date: '2300-01-01"),
    (AZURE + "2023-11-16 18:15:46,1,1\n2300-01-01 00:00:00,1,1\n", "rows 2 and 3 are 100,852 days apart"),
    (AZURE + "2023-11-16T18:15:46Z,1,1\n2023-11-16 18:15:47,1,1\n", "row 3 .* lacks a UTC offset and row 2 does not"),
    (AZURE + "1970-01-01 00:00:00,1,1\n2023-11-16 18:15:50,1,1\n", "rows 2 and 3 are 19,678 days apart"),
    (MOONCAKE + "nan,1,1\n0,1,1\n", "timestamp_ms row 2 is empty"),
    (MOONCAKE + "0,1,1\n,1,1\n", "timestamp_ms row 3 is empty"),
    (MOONCAKE + "0,1,1\ninf,1,1\n", "timestamp_ms row 3 is inf"),
    (MOONCAKE + "0,1,1\n1e15,1,1\n", r"rows 2 and 3 are 11,574,074 days apart \(0 ms, then 1e\+15 ms\)"),
])
def test_timestamps_the_readers_cannot_use_are_refused_with_their_row(text: str, message: str) -> None:
    with pytest.raises(TraceFormatError, match=message) as info:
        rows(text)
    assert "\n" not in str(info.value)


def test_a_gap_just_under_a_year_is_a_sparse_trace_not_a_broken_one() -> None:
    ms = MAX_GAP_S * 1000 - 1
    r = rows(MOONCAKE + f"0,1,1\n{ms:.0f},1,1\n")
    assert r.seconds[-1] == pytest.approx(MAX_GAP_S)


def test_missing_columns_are_told_apart_from_bad_values() -> None:
    with pytest.raises(MissingColumnsError, match="GeneratedTokens"):
        rows("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,10\n")
    assert issubclass(MissingColumnsError, TraceFormatError)


def test_the_bundled_traces_read_as_before() -> None:
    from pathlib import Path
    traces = Path(__file__).resolve().parents[2] / "data" / "traces"
    r = request_rows(pd.read_csv(traces / "AzureLLMInferenceTrace_conv.csv"), "conv", "conv")
    assert r is not None and len(r.seconds) == 19366 and r.seconds[0] == 0.0 and (np.diff(r.seconds) >= 0).all()
    assert r.start == pd.Timestamp("2023-11-16 18:15:46")
