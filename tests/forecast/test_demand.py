"""Demand series from trace files, llmobs' history and a real Prometheus server's query_range."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from llmobs.forecast.demand import (
    DEFAULT_TRACE_DIR,
    PrometheusError,
    PrometheusRangeReader,
    from_history,
    parse_duration,
    read_trace,
)
from llmobs.forecast.errors import ForecastInputError
from llmobs.state import ModelDemandPoint
from tests.promserver import free_port, require_binary


def _head(name: str, lines: int, tmp_path: Path) -> Path:
    """The first `lines` data rows of a real trace, as a small file (tests stay fast)."""
    src = DEFAULT_TRACE_DIR / name
    out = tmp_path / name
    with src.open() as f:
        out.write_text("".join(next(f) for _ in range(lines + 1)))
    return out


def test_repo_copy_of_traces_has_data_and_attribution() -> None:
    names = {p.name for p in DEFAULT_TRACE_DIR.iterdir()}
    assert {"AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_conv.csv",
            "mooncake_fast25_conversation.csv", "servegen_m-small_rate_10min.csv", "README.md"} <= names
    assert len([n for n in names if n.startswith("LICENSE")]) == 3


def test_azure_requests_are_counted_per_bucket(tmp_path: Path) -> None:
    path = _head("AzureLLMInferenceTrace_conv.csv", 2000, tmp_path)
    raw = pd.read_csv(path)
    t = pd.to_datetime(raw["TIMESTAMP"])
    sec = (t - t.iloc[0]).dt.total_seconds()
    d = read_trace(path, 60)
    n_full = int(sec.iloc[-1] // 60)
    assert len(d) == n_full
    first = raw[sec < 60]
    assert d.request_rate.iloc[0] == pytest.approx(len(first) / 60)
    assert d.frame["prompt_tokens_rate"].iloc[0] == pytest.approx(first["ContextTokens"].sum() / 60)
    assert d.frame["generation_tokens_rate"].iloc[0] == pytest.approx(first["GeneratedTokens"].sum() / 60)
    assert any("partial" in n for n in d.notes)


def test_mooncake_relative_milliseconds(tmp_path: Path) -> None:
    path = _head("mooncake_fast25_conversation.csv", 600, tmp_path)
    raw = pd.read_csv(path)
    d = read_trace(path, 10)
    assert d.source.startswith("mooncake")
    assert d.request_rate.iloc[0] == pytest.approx((raw["timestamp_ms"] < 10_000).sum() / 10)


def test_servegen_zero_windows_are_gaps_not_zero_traffic() -> None:
    d = read_trace(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv")
    assert d.step_seconds == 600 and len(d) == 2016
    assert int(d.request_rate.isna().sum()) == 37
    assert (d.request_rate.dropna() > 0).all()
    assert any("gaps" in n for n in d.notes)


def test_resample_keeps_means_and_gaps() -> None:
    d = read_trace(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv").slice(0, 300)
    fine = d.resample(60, "linear")
    held = d.resample(60)
    assert len(fine) == len(held) == 3000
    assert np.nanmean(held.request_rate) == pytest.approx(np.nanmean(d.request_rate))
    assert np.nanmean(fine.request_rate) == pytest.approx(np.nanmean(d.request_rate), rel=0.01)
    # each gap window stays a gap on the fine grid
    assert int(fine.request_rate.isna().sum()) == 10 * int(d.request_rate.isna().sum())
    coarse = d.resample(3600)
    assert coarse.request_rate.iloc[0] == pytest.approx(d.request_rate.iloc[:6].mean())
    with pytest.raises(ForecastInputError, match="unknown resampling"):
        d.resample(60, "cubic")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("TIMESTAMP,ContextTokens\n2023-11-16 18:00:00,5\n", "missing column(s) GeneratedTokens"),
        ("when,what\n1,2\n", "unknown trace format"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:05,5,1\n2023-11-16 18:00:01,5,1\n",
         "timestamps not sorted: column TIMESTAMP row 3"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,5,1\n", "row 2 is not a date"),
        ("timestamp_ms,input_length,output_length\n0,5,1\n1000,five,1\n", "input_length row 3 is not a number"),
        ("window_start_s,total_rate_rps\n0,1\n600,2\n600,3\n", "repeats"),
        ("", "not a readable CSV"),
        ("timestamp_ms,input_length,output_length\n", "no data rows"),
        ("timestamp_ms,input_length,output_length\n0,5,1\n100,5,1\n", "shorter than one"),
    ],
)
def test_bad_trace_files_fail_naming_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ForecastInputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        read_trace(p)


def test_missing_trace_file() -> None:
    with pytest.raises(ForecastInputError, match="not found"):
        read_trace("/nonexistent/trace.csv")


def test_parse_duration() -> None:
    assert parse_duration("10m") == 600 and parse_duration("30s") == 30 and parse_duration("1.5h") == 5400
    assert parse_duration("90") == 90 and parse_duration(5) == 5
    for bad in ("ten minutes", "-5m", "0s"):
        with pytest.raises(ForecastInputError):
            parse_duration(bad)


def _point(t: float, rate: float, util: float = 0.5) -> ModelDemandPoint:
    return ModelDemandPoint(time=t, request_rate=rate, prompt_tokens_rate=rate * 100, generation_tokens_rate=rate * 10,
                            requests_waiting=0, requests_running=1, kv_cache_utilization_max=util, endpoints_up=1)


def test_history_is_bucketed_and_missing_buckets_are_gaps() -> None:
    t0 = 1_700_000_040.0  # a multiple of 60
    pts = [_point(t0 + i * 15, 2.0) for i in range(8)] + [_point(t0 + 180 + i * 15, 4.0) for i in range(4)]
    d = from_history(pts, 60, kv_capacity_tokens=1000)
    assert len(d) == 4
    assert d.request_rate.iloc[:2].tolist() == [2.0, 2.0] and d.request_rate.iloc[3] == 4.0
    assert np.isnan(d.request_rate.iloc[2])  # no scrape in that minute: a gap, not zero traffic
    assert d.frame["kv_tokens_in_flight"].iloc[0] == 500.0
    with pytest.raises(ForecastInputError, match="empty"):
        from_history([], 60)
    back = from_history([pts[1], pts[0], *pts[2:]], 60)
    assert back.request_rate.iloc[0] == 2.0 and "sorted" in back.notes[0]


def test_prometheus_errors_are_named_without_a_server() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"})

    with PrometheusRangeReader("http://prom", transport=httpx.MockTransport(handler)) as r, pytest.raises(
        PrometheusError, match="HTTP 400 bad_data: parse error"
    ):
        r.query_range("up", 0, 60, 15)

    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})

    with PrometheusRangeReader("http://prom", transport=httpx.MockTransport(empty)) as r, pytest.raises(
        PrometheusError, match="no request-rate data for model 'm'"
    ):
        r.demand("m", 0, 600, 60)


def test_prometheus_unreachable_is_one_clear_error() -> None:
    reader = PrometheusRangeReader("http://127.0.0.1:9", timeout=1)
    with reader, pytest.raises(PrometheusError, match="unreachable"):
        reader.query_range("up", 0, 60, 15)


@pytest.mark.prometheus
def test_query_range_against_real_prometheus(tmp_path: Path) -> None:
    """Backfill two endpoints' series with promtool, start Prometheus on them, read the sum back."""
    promtool = require_binary("promtool")
    require_binary("prometheus")
    step = 60
    start = (int(time.time()) // 3600 - 3) * 3600  # well inside retention, before the head block
    n = 90
    lines = ["# HELP llmobs_request_rate x", "# TYPE llmobs_request_rate gauge"]
    expected = []
    for endpoint, scale in (("a:8000", 1.0), ("b:8000", 2.0)):
        for i in range(n):
            labels = f'{{model="m",endpoint="{endpoint}"}}'
            lines.append(f"llmobs_request_rate{labels} {scale * (1 + i % 7)} {start + i * step}")
    for i in range(n):
        expected.append(3.0 * (1 + i % 7))
    lines += ["# HELP llmobs_prompt_tokens_rate x", "# TYPE llmobs_prompt_tokens_rate gauge"]
    labels = '{model="m",endpoint="a:8000"}'
    lines += [f"llmobs_prompt_tokens_rate{labels} {100.0 * i} {start + i * step}" for i in range(n)]
    lines.append("# EOF")
    om = tmp_path / "backfill.om"
    om.write_text("\n".join(lines) + "\n")
    data = tmp_path / "prom" / "data"
    data.mkdir(parents=True)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                   check=True, capture_output=True, timeout=120)
    with _prometheus(tmp_path / "prom", data) as url, PrometheusRangeReader(url) as reader:
        d = reader.demand("m", start, start + (n - 1) * step, step)
        assert d.step_seconds == 60 and len(d) == n
        np.testing.assert_allclose(d.request_rate.to_numpy(), expected)
        np.testing.assert_allclose(d.frame["prompt_tokens_rate"].to_numpy(), [100.0 * i for i in range(n)])
        assert d.frame["generation_tokens_rate"].isna().all()  # not backfilled: a gap, noted
        assert any("generation_tokens_rate: no data" in note for note in d.notes)
        with pytest.raises(PrometheusError, match="bad_data"):
            reader.query_range("sum(", start, start + 600, step)


@contextlib.contextmanager
def _prometheus(workdir: Path, data: Path) -> Iterator[str]:
    """Debian's Prometheus on loopback over `data`, no scrape targets; its log file is closed after."""
    binary = require_binary("prometheus")
    port = free_port()
    (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    url = f"http://127.0.0.1:{port}"
    with (workdir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("prometheus not ready in 60 s")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
