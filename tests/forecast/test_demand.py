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
        ("window_start_s,total_rate_rps\n0,1\n600,2\nnan,3\n1800,4\n", "window_start_s row 4 is nan, not a"),
        ("window_start_s,total_rate_rps\n0,1\n600,2\n,3\n1800,4\n", "window_start_s row 4 is nan, not a"),
        ("window_start_s,total_rate_rps\n0,1\ninf,2\n", "window_start_s row 3 is inf, not a"),
        ("window_start_s,total_rate_rps\n-600,1\n0,2\n", "window_start_s row 2 is -600, not a"),
        ("window_start_s,total_rate_rps\n0,1\n600,2\n1200,2\n1800,2\n1e12,3\n",
         "row 6 jumps from 1800 to 1e\\+12"),
        ("window_start_s,total_rate_rps\n0,1\n600,2\n1250,2\n1800,2\n", "row 4 starts at 1250, off the 600s grid"),
        ("window_start_s,total_rate_rps\n0,1\n600,inf\n", "total_rate_rps row 3 is inf, not a finite"),
        ("window_start_s,total_rate_rps,mean_input_tokens_est\n0,1,5\n600,2,-inf\n",
         "mean_input_tokens_est row 3 is -inf, not a finite"),
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


def test_prometheus_url_that_is_not_a_url_is_one_clear_error() -> None:
    with pytest.raises(PrometheusError, match=r"Prometheus URL 'http://\[::1' is not a URL"):
        PrometheusRangeReader("http://[::1")


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


def _prometheus_answering(body: object, status: int = 200) -> PrometheusRangeReader:
    """A reader whose every query_range gets `body` (any JSON) back, as a broken or odd server would send."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return PrometheusRangeReader("http://prom", transport=httpx.MockTransport(handler))


def _matrix(*series: list[object]) -> dict[str, object]:
    """A successful query_range answer with one result per `values` list."""
    return {"status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": v} for v in series]}}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([1, 2, 3], "answered 'up' with a JSON array, not an API object"),
        ("ok", "answered 'up' with a JSON string, not an API object"),
        ({"status": "success"}, "answered 'up' without a `data` object \\(got null\\)"),
        ({"status": "success", "data": None}, "answered 'up' without a `data` object \\(got null\\)"),
        ({"status": "success", "data": [1]}, "without a `data` object \\(got array\\)"),
        ({"status": "success", "data": {"resultType": "matrix", "result": None}},
         "answered 'up' with `data.result` null, not a list of series"),
        ({"status": "success", "data": {"resultType": "matrix", "result": {"values": []}}},
         "`data.result` object, not a list of series"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}}]}},
         "series 1 of 1 for 'up' has no `values`"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [{"values": None}]}},
         "series 1 of 1 for 'up' has `values` null, not a list"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [[[0, "1"]]]}},
         "series 1 of 1 for 'up' is a JSON array, not an object"),
        ([1, 2], "HTTP 500"),
    ],
)
def test_prometheus_malformed_bodies_are_one_clear_error(body: object, needle: str) -> None:
    status = 500 if needle == "HTTP 500" else 200
    with _prometheus_answering(body, status) as r, pytest.raises(PrometheusError, match=needle):
        r.query_range("up", 0, 60, 15)


def test_prometheus_unreadable_samples_are_skipped_and_counted_in_the_notes() -> None:
    """One bad sample must not sink a whole history: it is skipped, a gap, and the notes count it."""
    values: list[object] = [[0, "1"], [60, "abc"], [120], [180, None], ["NaN", "7"], [240, "5"],
                            "0,1", [300, "2", "x"], [True, "3"]]
    with _prometheus_answering(_matrix(values)) as r:
        got = r.query_range("up", 0, 300, 60)
        assert got.iloc[0] == 1.0 and got.iloc[4] == 5.0
        assert got.iloc[[1, 2, 3, 5]].isna().all()
        d = r.demand("m", 0, 300, 60, queries={"request_rate": "up"})
    note = next(n for n in d.notes if n.startswith("request_rate"))
    assert "2 samples with a value that is not a number skipped" in note
    assert "3 samples that are not a [time, value] pair skipped" in note
    assert "2 samples with a timestamp that is not a finite number skipped" in note
    assert note.startswith("request_rate (query up): ")


def test_prometheus_repeated_timestamps_keep_the_first_and_order_is_restored() -> None:
    base = [[float(t), str(t // 60 + 1)] for t in range(0, 301, 60)]
    shuffled = [base[3], base[0], base[5], base[1], base[4], base[2]]
    repeated = [[t, "99"] for t, _ in base]  # Prometheus never sends these; a proxy or a fake might
    with _prometheus_answering(_matrix(shuffled + repeated)) as r:
        got = r.query_range("up", 0, 300, 60)
        d = r.demand("m", 0, 300, 60, queries={"request_rate": "up"})
    assert got.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert any("6 samples at a repeated timestamp skipped, the first one kept" in n for n in d.notes)


def test_prometheus_timestamps_outside_the_range_are_skipped_not_a_crash() -> None:
    start = 1_700_000_000.0
    far = [[start + i * 60 + 1e12, "5"] for i in range(11)]
    with _prometheus_answering(_matrix(far)) as r:
        assert r.query_range("up", start, start + 600, 60).isna().all()
        with pytest.raises(PrometheusError,
                           match=r"no request-rate data for model 'm' .*11 samples with a timestamp outside"):
            r.demand("m", start, start + 600, 60)


@pytest.mark.parametrize("bad", ["+Inf", "-Inf", "NaN"])
def test_prometheus_non_finite_values_are_gaps_and_noted(bad: str) -> None:
    """Prometheus sends NaN and ±Inf as strings (0/0, x/0): no demand there, a gap like any other."""
    with _prometheus_answering(_matrix([[0, "2"], [60, bad], [120, "4"]])) as r:
        got = r.query_range("up", 0, 120, 60)
        assert got.iloc[0] == 2.0 and np.isnan(got.iloc[1]) and got.iloc[2] == 4.0
        d = r.demand("m", 0, 120, 60, queries={"request_rate": "up"})
    assert any("1 NaN or ±Inf values kept as gaps" in n for n in d.notes)
    with _prometheus_answering(_matrix([[0, bad], [60, bad], [120, bad]])) as r, pytest.raises(
        PrometheusError, match=r"no request-rate data for model 'm' in the range .*3 NaN or ±Inf values"
    ):
        r.demand("m", 0, 120, 60)


def test_prometheus_negative_demand_is_a_gap_and_all_negative_is_refused() -> None:
    with _prometheus_answering(_matrix([[0, "2"], [60, "-5"], [120, "4"]])) as r:
        d = r.demand("m", 0, 120, 60, queries={"request_rate": "up"})
    assert np.isnan(d.request_rate.iloc[1]) and d.request_rate.iloc[2] == 4.0
    assert any("1 steps with a negative value kept as gaps" in n for n in d.notes)
    with _prometheus_answering(_matrix([[0, "-5"], [60, "-5"]])) as r, pytest.raises(
        PrometheusError, match=r"no request-rate data for model 'm' .*2 steps with a negative value"
    ):
        r.demand("m", 0, 60, 60)


def test_prometheus_native_histogram_series_is_skipped_and_noted() -> None:
    """A native-histogram series has `histograms` instead of `values`: no float samples to read."""
    hist = {"count": "3", "sum": "1", "buckets": []}
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"a": "1"}, "values": [[0, "1"], [60, "2"]]},
        {"metric": {"a": "2"}, "histograms": [[0, hist], [60, hist]]},
    ]}}
    with _prometheus_answering(body) as r:
        assert r.query_range("up", 0, 60, 60).tolist() == [1.0, 2.0]
        d = r.demand("m", 0, 60, 60, queries={"request_rate": "up"})
    assert any("2 native-histogram samples skipped" in n for n in d.notes)


@pytest.mark.parametrize(("start", "end", "step"), [(0, 60, 0), (0, 60, float("nan")), (float("nan"), 60, 15),
                                                    (0, float("inf"), 15)])
def test_prometheus_bad_range_arguments_are_refused(start: float, end: float, step: float) -> None:
    with _prometheus_answering(_matrix([])) as r, pytest.raises(PrometheusError, match="query range"):
        r.query_range("up", start, end, step)
