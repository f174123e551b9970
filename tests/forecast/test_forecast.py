"""Forecasters, the rolling-origin backtest, the live ForecastService and `llmobs forecast backtest`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from llmobs.forecast.backtest import backtest
from llmobs.forecast.cli import register
from llmobs.forecast.demand import DEFAULT_TRACE_DIR, DemandSeries
from llmobs.forecast.errors import ForecastInputError
from llmobs.forecast.forecasters import (
    DAY,
    Arima,
    LastValue,
    LlmobsModel,
    MovingAverage,
    SeasonalNaive,
    check_history,
    default_forecasters,
    make_forecaster,
    upper_from_residuals,
)
from llmobs.forecast.service import ForecastConfig, ForecastService
from llmobs.signals.coldstart import ColdStartRecorder, cold_starts
from llmobs.signals.types import Attribution
from llmobs.state import FleetState, StateHolder
from tests.factories import distribution, make_signals, make_state

STEP = 600.0


def daily(days: int = 7, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A 10-minute demand series with a daily cycle, a weekday effect and multiplicative noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * DAY / STEP))
    hour = (t * STEP / 3600) % 24
    base = 100 + 60 * np.sin(2 * np.pi * (hour - 8) / 24) + 20 * np.sin(2 * np.pi * (hour - 8) / 12)
    return base * (1 + noise * rng.standard_normal(t.size))


def as_series(y: np.ndarray, step: float = STEP) -> DemandSeries:
    idx = pd.date_range("2024-01-01", periods=len(y), freq=pd.Timedelta(seconds=step))
    return DemandSeries(pd.DataFrame({"request_rate": y}, index=idx), step, "synthetic")


ALL = [LastValue(), MovingAverage(6), SeasonalNaive(DAY), Arima(3), LlmobsModel()]


@pytest.mark.parametrize("forecaster", ALL, ids=lambda f: f.name)
def test_forecasts_use_only_the_past(forecaster) -> None:
    """Changing everything after the last origin must not change any forecast."""
    y = daily(4)
    idx = pd.date_range("2024-01-01", periods=len(y), freq="10min")
    origins = np.arange(300, 400)
    forecaster.fit(y[:301], idx[:301], 3, STEP)
    before = forecaster.predict(y, idx, origins, 3, STEP)
    future = y.copy()
    future[401:] = future[401:] * 7 + 1000
    forecaster2 = make_forecaster(forecaster.name)
    forecaster2.fit(future[:301], idx[:301], 3, STEP)
    after = forecaster2.predict(future, idx, origins, 3, STEP)
    np.testing.assert_allclose(before, after)


def test_last_value_carries_over_gaps() -> None:
    y = np.array([1.0, 2.0, np.nan, np.nan, 5.0])
    idx = pd.date_range("2024-01-01", periods=5, freq="1min")
    assert list(LastValue().predict(y, idx, np.arange(5), 1, 60)) == [1, 2, 2, 2, 5]


def test_seasonal_naive_is_exact_on_a_pure_cycle() -> None:
    y = np.tile(np.arange(144, dtype=float), 3)
    idx = pd.date_range("2024-01-01", periods=y.size, freq="10min")
    origins = np.arange(150, 400)
    pred = SeasonalNaive(DAY).predict(y, idx, origins, 2, STEP)
    np.testing.assert_allclose(pred, y[origins + 2])


def test_arima_follows_a_steady_growth() -> None:
    y = 10 * 1.01 ** np.arange(200)
    idx = pd.date_range("2024-01-01", periods=200, freq="1min")
    f = Arima(2)
    f.fit(y, idx, 5, 60)
    pred = f.predict(y, idx, np.array([199]), 5, 60)[0]
    assert pred == pytest.approx(10 * 1.01 ** 204, rel=0.01)


def test_llmobs_model_beats_last_value_on_a_daily_cycle() -> None:
    s = as_series(daily(7, noise=0.08))
    r = backtest(s, (1, 3), [LastValue(), LlmobsModel()])
    for h in (1, 3):
        assert r.score("llmobs_gbm", h).wape < 0.9 * r.score("last_value", h).wape
    assert r.best == "llmobs_gbm"


def test_backtest_metrics_by_hand() -> None:
    # y = 1..20, last value at h=1 always misses by exactly 1.
    y = np.arange(1, 21, dtype=float)
    r = backtest(as_series(y, 60), (1,), [LastValue()], eval_start=10)
    s = r.score("last_value", 1)
    actual = y[11:]
    assert s.n == actual.size == 9
    assert s.wape == pytest.approx(actual.size / actual.sum())
    assert s.mape == pytest.approx(np.mean(1 / actual))
    path = r.paths[("last_value", 1)]
    np.testing.assert_allclose(path.point, y[10:19])
    assert s.coverage == pytest.approx(np.mean(actual <= path.upper))


def test_upper_band_covers_about_the_quantile() -> None:
    rng = np.random.default_rng(1)
    point = np.full(3000, 100.0)
    actual = 100 * np.exp(0.1 * rng.standard_normal(3000))
    upper = upper_from_residuals(point, actual, 1, 0.9)
    assert 0.87 < np.mean(actual[300:] <= upper[300:]) < 0.93


def test_backtest_on_a_real_trace_slice_scores_every_forecaster() -> None:
    from llmobs.forecast.demand import read_trace

    s = read_trace(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv").slice(0, 3 * 144)
    r = backtest(s, (1,), [LastValue(), MovingAverage(6), Arima(3)])
    assert {x.forecaster for x in r.scores} == {"last_value", "moving_average_6", "arima_3_1_0"}
    assert all(0 < x.wape < 0.5 and x.n > 100 for x in r.scores)


def test_seasonal_forecasters_are_skipped_not_faked_on_short_series() -> None:
    s = as_series(daily(1))
    assert "seasonal_naive_day" not in {f.name for f in default_forecasters(STEP, len(s))}
    r = backtest(s, (1,), [LastValue(), SeasonalNaive(DAY)])
    assert "seasonal_naive_day" in r.skipped and "needs 145 points" in r.skipped["seasonal_naive_day"]


@pytest.mark.parametrize(
    ("y", "needle"),
    [
        (np.zeros(100), "every value is zero"),
        (np.full(100, np.nan), "all gaps"),
        (np.ones(8), "too few"),
    ],
)
def test_backtest_bad_series_fail_with_the_reason(y: np.ndarray, needle: str) -> None:
    with pytest.raises(ForecastInputError, match=needle):
        backtest(as_series(y), (1,), [LastValue()])


def test_short_zero_and_empty_history_give_the_documented_fallback_reason() -> None:
    f = LlmobsModel()
    assert check_history(np.ones(10), f, 5, 60) == "history has 10 points; llmobs_gbm needs 65"
    assert check_history(np.zeros(500), f, 5, 60) == "all-zero history"
    assert check_history(np.full(5, np.nan), f, 5, 60) == "history has no data"
    assert check_history(np.ones(500), f, 5, 60) == ""


def _state(t: float, rates: dict[str, float], ttft_p90: float = 0.2) -> FleetState:
    """One endpoint per model serving `rates[model]` requests/s, with a TTFT p90 of `ttft_p90` s."""
    return make_state(*(
        make_signals(m, "e:8000", kv_cache_utilization=0.5, kv_cache_utilization_max=0.6, requests_running=1,
                     request_rate=rate, prompt_tokens_rate=rate * 100, generation_tokens_rate=rate * 10,
                     ttft=distribution(ttft_p90 / 2, ttft_p90, ttft_p90 * 2, ttft_p90 / 2, count=1))
        for m, rate in rates.items()), time=t)


def _feed(holder: StateHolder, start: float, minutes: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    t = start
    for i in range(minutes):
        t = start + 60 * i
        a = 20 + 10 * math.sin(i / 30) + rng.normal(0, 1)
        holder.publish(_state(t, {"llama": max(a, 0.0), "tiny": 0.0}))
    return t


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in page")


def test_service_falls_back_then_forecasts_and_recommends() -> None:
    holder = StateHolder(history_points=2880)
    now = [1_700_000_000.0]
    registry = CollectorRegistry()
    cfg = ForecastConfig(step_seconds=60, horizon_seconds=300, capacity_per_replica={"llama": 5.0},
                         target_utilization=0.8, refit_seconds=600)
    svc = ForecastService(holder, cfg, registry=registry, clock=lambda: now[0])
    now[0] = _feed(holder, 1_700_000_000.0, 20)
    svc.refit_once()
    snap = svc.refresh_once()
    assert snap["llama"].forecaster == "last_value"
    assert snap["llama"].fallback_reason == "history has 20 points; llmobs_gbm needs 65"
    assert snap["tiny"].fallback_reason == "all-zero history" and snap["tiny"].upper == 0
    page = generate_latest(registry).decode()
    assert _sample(page, "llmobs_forecast_fallback", model="llama") == 1.0
    assert 'reason="history has 20 points; llmobs_gbm needs 65"' in page

    now[0] = _feed(holder, 1_700_000_000.0 + 20 * 60, 380, seed=1)
    assert svc.refit_once() == ["llama"]
    snap = svc.refresh_once()
    fc = snap["llama"]
    assert fc.fallback_reason == "" and fc.forecaster in {"last_value", "moving_average_6", "arima_3_1_0", "llmobs_gbm"}
    assert 0 < fc.point <= fc.upper < 100 and 0 < fc.wape < 1
    current = holder.history("llama")[-1].request_rate
    assert fc.desired_replicas == max(math.ceil(fc.upper / (5.0 * 0.8)), math.ceil(current / 5.0))
    page = generate_latest(registry).decode()
    assert _sample(page, "llmobs_desired_replicas", model="llama") == fc.desired_replicas
    assert _sample(page, "llmobs_forecast_request_rate", model="llama", quantile="0.9") == pytest.approx(fc.upper)
    assert _sample(page, "llmobs_forecast_request_rate", model="llama", quantile="0.5") == pytest.approx(fc.point)
    assert _sample(page, "llmobs_forecast_wape_ratio", model="llama") == pytest.approx(fc.wape)
    assert _sample(page, "llmobs_forecast_horizon_seconds", model="llama") == 300
    assert "llmobs_desired_replicas{model=\"tiny\"}" not in page  # no capacity configured for it

    durations = []
    for _ in range(5):
        svc.refresh_once()
        durations.append(svc.last_refresh_seconds)
    assert sorted(durations)[2] < 0.2, durations


def _two_endpoint_state(t: float, per_replica: float, ttft_p90: float) -> FleetState:
    """Two llama replicas, each serving `per_replica` requests/s with a TTFT p90 of `ttft_p90` s."""
    (one,) = _state(t, {"llama": per_replica}, ttft_p90).signals
    replicas = (dataclasses.replace(one, attribution=Attribution("llama", ep)) for ep in ("a:8000", "b:8000"))
    return make_state(*replicas, time=t)


def test_capacity_is_learned_at_the_latency_slo_when_not_configured() -> None:
    holder = StateHolder()
    registry = CollectorRegistry()
    svc = ForecastService(holder, ForecastConfig(latency_slo_seconds=1.0, step_seconds=60, horizon_seconds=300),
                          registry=registry)
    per_replica = np.linspace(1, 12, 60)
    for i, r in enumerate(per_replica):
        holder.publish(_two_endpoint_state(1_700_000_000.0 + 60 * i, float(r), 0.4 if r <= 8 else 2.5))
        svc.refresh_once()
        svc.refresh_once()  # a second refresh of the same scrape must not count it twice
    fc = svc.snapshot()["llama"]
    expected = float(np.quantile(per_replica[per_replica <= 8], 0.9))  # 2 endpoints: total ÷ 2 per replica
    assert fc.capacity_source == "learned" and fc.capacity_per_replica == pytest.approx(expected)
    total_now = 2 * per_replica[-1]
    assert fc.desired_replicas == max(math.ceil(fc.upper / (expected * 0.8)), math.ceil(total_now / expected))
    page = generate_latest(registry).decode()
    assert _sample(page, "llmobs_forecast_capacity_per_replica", model="llama", source="learned") == pytest.approx(
        expected)


def test_no_slo_and_no_configured_capacity_means_no_desired_replicas() -> None:
    holder = StateHolder()
    svc = ForecastService(holder, ForecastConfig())
    for i in range(20):
        holder.publish(_two_endpoint_state(1_700_000_000.0 + 60 * i, 5.0, 0.4))
    fc = svc.refresh_once()["llama"]
    assert fc.desired_replicas is None and fc.capacity_per_replica is None


def test_collect_reads_the_snapshot_and_never_refreshes() -> None:
    holder = StateHolder()
    _feed(holder, 1_700_000_000.0, 100)
    registry = CollectorRegistry()
    svc = ForecastService(holder, ForecastConfig(), registry=registry)
    page = generate_latest(registry).decode()
    assert "llmobs_forecast_request_rate{" not in page  # nothing refreshed yet, nothing made up
    assert svc.snapshot() == {}


async def test_service_runs_as_an_asyncio_task_off_the_loop() -> None:
    holder = StateHolder()
    _feed(holder, time.time() - 6000, 100)
    svc = ForecastService(holder, ForecastConfig(refresh_seconds=0.05, forecaster="moving_average_6"))
    task = asyncio.create_task(svc.run())
    try:
        for _ in range(200):
            if "llama" in svc.snapshot():
                break
            await asyncio.sleep(0.05)
        assert svc.snapshot()["llama"].forecaster == "moving_average_6"
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)


def test_service_thread_start_stop() -> None:
    holder = StateHolder()
    _feed(holder, time.time() - 6000, 100)
    svc = ForecastService(holder, ForecastConfig(refresh_seconds=0.05, forecaster="last_value"))
    svc.start()
    try:
        deadline = time.monotonic() + 10
        while "llama" not in svc.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "llama" in svc.snapshot()
    finally:
        svc.stop()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"forecaster": "crystal_ball"}, "unknown forecaster"),
        ({"horizon_seconds": 10, "step_seconds": 60}, "shorter than one step"),
        ({"capacity_per_replica": {"m": -1.0}}, "capacity per replica"),
        ({"quantile": 1.5}, "quantile"),
    ],
)
def test_forecast_config_refuses_bad_values(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ForecastInputError, match=needle):
        ForecastConfig(**kwargs)  # type: ignore[arg-type]


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_backtest_table_json_and_plot(tmp_path: Path) -> None:
    trace = tmp_path / "servegen.csv"
    with (DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv").open() as f:
        trace.write_text("".join(next(f) for _ in range(3 * 144 + 1)))
    png = tmp_path / "bt.png"
    runner = CliRunner()
    r = runner.invoke(_app(), ["forecast", "backtest", "--trace", str(trace), "--horizon", "30m", "--json",
                               "--plot", str(png)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["step_seconds"] == 600 and d["horizons_steps"] == [1, 3]
    assert {s["forecaster"] for s in d["scores"]} >= {"last_value", "llmobs_gbm", "arima_3_1_0"}
    assert d["best"] in {s["forecaster"] for s in d["scores"]}
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 200_000
    r = runner.invoke(_app(), ["forecast", "backtest", "--trace", str(trace)])
    assert r.exit_code == 0 and "WAPE" in r.output and "best at 600s" in r.output


@pytest.mark.parametrize(
    ("text", "args", "needle"),
    [
        ("window_start_s,total_rate_rps\n0,0\n600,0\n1200,0\n", [], "all gaps"),
        ("window_start_s,total_rate_rps\n" + "".join(f"{i * 600},{i + 1}\n" for i in range(6)), [], "too few"),
        ("TIMESTAMP,ContextTokens\n2023-11-16 18:00:00,5\n", [], "missing column(s) GeneratedTokens"),
        ("window_start_s,total_rate_rps\n0,1\n", ["--step", "fast"], "duration 'fast'"),
    ],
)
def test_cli_backtest_bad_input_is_one_error_line(tmp_path: Path, text: str, args: list[str], needle: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from llmobs.cli import app
    from llmobs.cli_support import run_app

    p = tmp_path / "t.csv"
    p.write_text(text)
    code = run_app(app, ["forecast", "backtest", "--trace", str(p), *args])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out + err


def test_gbm_feature_cache_never_serves_stale_features() -> None:
    """A new array of the same length, or the same array edited in place, gets its own features."""
    y1 = daily(3, seed=1)
    idx = pd.date_range("2024-01-01", periods=len(y1), freq="10min")
    f = LlmobsModel()
    f.fit(y1, idx, 1, STEP)
    last = np.array([len(y1) - 1])
    p1 = f.predict(y1, idx, last, 1, STEP)[0]
    y2 = y1 * 3.0
    p2 = f.predict(y2, idx, last, 1, STEP)[0]
    assert p2 == pytest.approx(3.0 * p1, rel=0.3) and p2 > 2 * p1
    y1 *= 3.0  # in place: same object, same id
    assert f.predict(y1, idx, last, 1, STEP)[0] == pytest.approx(p2)


def test_leading_and_inner_gaps_are_neither_scored_nor_fatal() -> None:
    y = daily(3)
    y[:5] = np.nan  # the series starts inside a gap: no forecast exists before origin 5
    y[200:210] = np.nan
    r = backtest(as_series(y), (1,), [LastValue()], eval_start=1)
    s = r.score("last_value", 1)
    origins = np.arange(1, len(y) - 1)
    expected_n = int(np.sum((origins >= 5) & ~np.isnan(y[origins + 1])))
    assert s.n == expected_n and 0 < s.wape < 0.5


def test_make_forecaster_builds_a_moving_average_of_any_window() -> None:
    f = make_forecaster("moving_average_30")
    assert isinstance(f, MovingAverage) and f.window == 30 and f.name == "moving_average_30"
    for bad in ("moving_average_0", "moving_average_x", "moving_average_"):
        with pytest.raises(ForecastInputError, match="unknown forecaster"):
            make_forecaster(bad)


def test_backtest_can_pick_the_winner_by_the_band_it_feeds_to_the_policy() -> None:
    # Bursty demand: single buckets of 10× on a flat base. The median-like point (last value) has the
    # lower WAPE; a long moving average carries the bursts into its level, so its q0.9 band has the
    # lower pinball loss. Each criterion must pick its own minimum.
    rng = np.random.default_rng(7)
    y = np.where(rng.random(600) < 0.08, 10.0, 1.0)
    r_w = backtest(as_series(y, 10), (3,), [LastValue(), MovingAverage(30)])
    r_p = backtest(as_series(y, 10), (3,), [LastValue(), MovingAverage(30)], select_by="pinball")
    by_wape = min(r_w.scores, key=lambda s: s.wape).forecaster
    by_pinball = min(r_p.scores, key=lambda s: s.pinball_scaled).forecaster
    assert r_w.best == by_wape == "last_value" and r_p.best == by_pinball == "moving_average_30"
    assert r_p.select_by == "pinball" and r_w.select_by == "wape"
    with pytest.raises(ForecastInputError, match="select_by"):
        backtest(as_series(y, 10), (3,), [LastValue()], select_by="mape")


def test_unconfigured_horizon_is_each_models_measured_cold_start() -> None:
    """Without `forecast.horizon_seconds` the forecast looks one measured cold start ahead (p90, rounded up to
    the grid): a model whose replicas take 2.5 min to serve is forecast 3 min ahead, the others at the default
    300 s until one of theirs is measured; a configured horizon wins."""
    holder = StateHolder(history_points=2880)
    now = [1_700_000_000.0]
    registry = CollectorRegistry()
    svc = ForecastService(holder, ForecastConfig(step_seconds=60, refit_seconds=600), registry=registry,
                          clock=lambda: now[0])
    now[0] = _feed(holder, 1_700_000_000.0, 400)
    recorder = ColdStartRecorder()
    for seconds in (120.0, 150.0, 140.0):
        spans, rejected = cold_starts("llama", "e", first_scrape=now[0], watching_since=0.0,
                                      pod_created=now[0] - seconds)
        recorder.record("llama", spans, rejected)
    holder.publish(dataclasses.replace(holder.current, cold_starts=recorder.summaries()))
    assert svc.horizon_steps("llama") == 3 and svc.horizon_steps("tiny") == 5
    assert svc.refit_once() == ["llama"]
    snap = svc.refresh_once()
    assert snap["llama"].horizon_seconds == 180 and snap["tiny"].horizon_seconds == 300
    page = generate_latest(registry).decode()
    assert _sample(page, "llmobs_forecast_horizon_seconds", model="llama") == 180

    # a slower cold start measured later moves the horizon, and the forecaster is refitted for it at once
    spans, _ = cold_starts("llama", "e", first_scrape=now[0], watching_since=0.0, pod_created=now[0] - 590.0)
    for _ in range(3):
        recorder.record("llama", spans, [])
    holder.publish(dataclasses.replace(holder.current, cold_starts=recorder.summaries()))
    assert svc.horizon_steps("llama") == 10
    assert svc.refit_once() == ["llama"]  # not due by time, due because the horizon moved
    assert svc.refresh_once()["llama"].horizon_seconds == 600

    configured = ForecastService(holder, ForecastConfig(step_seconds=60, horizon_seconds=120))
    assert configured.horizon_steps("llama") == 2
