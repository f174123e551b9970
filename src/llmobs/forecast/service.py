"""Live forecasts in the running exporter: a background refresher and a collector that only reads.

`ForecastService` reads `StateHolder.history(model)` (no I/O), and every `refresh_seconds`
computes per model a forecast of the request rate at now + horizon (point and upper quantile), the
recent backtest WAPE, and the desired replicas. It runs off the scrape loop — in an asyncio task that
hands each refresh to a worker thread, or in its own thread — and never on a scaler's request path:
`ForecastCollector.collect()` (what `/metrics` and the scaler read) only copies the last snapshot.

Two cadences: a refresh (predict from the fitted model, < 200 ms for a fleet of models) and a refit
every `refit_seconds` (re-run a short backtest on the history, pick the winner when the forecaster is
`auto`, refit it, and re-estimate the residual band), which is heavier and measured separately.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from llmobs.forecast.backtest import backtest
from llmobs.forecast.demand import DemandSeries, from_history
from llmobs.forecast.errors import ForecastInputError
from llmobs.forecast.forecasters import (
    Arima,
    Forecaster,
    LastValue,
    LlmobsModel,
    MovingAverage,
    check_history,
    ffill,
    make_forecaster,
)
from llmobs.forecast.guard import GuardConfig, assess, clean_rate
from llmobs.forecast.recommend import ReplicaPolicy, ReplicaRecommender, learn_capacity_per_replica
from llmobs.metric_families import family
from llmobs.state import StateHolder


@dataclass(frozen=True)
class ForecastConfig:
    """Knobs of the live forecast. `capacity_per_replica` maps model → requests/s of one replica.

    For a model without an entry, capacity is learned from observed throughput at the latency SLO when
    `latency_slo_seconds` is set (TTFT p90 of each scrape; see `learn_capacity_per_replica`); until then,
    or without an SLO, the model gets forecasts but no desired-replica signal."""

    refresh_seconds: float = 15.0
    refit_seconds: float = 600.0
    step_seconds: float = 60.0
    horizon_seconds: float | None = None  # None: each model's measured cold start (p90), else the default
    quantile: float = 0.9
    forecaster: str = "auto"
    capacity_per_replica: Mapping[str, float] = field(default_factory=dict)
    target_utilization: float = 0.8
    min_replicas: int = 1
    max_replicas: int = 1000
    scale_down_stabilization_s: float = 300.0
    latency_slo_seconds: float | None = None
    learn_min_points: int = 10
    floor_utilization: float = 0.8
    guard: GuardConfig = field(default_factory=GuardConfig)
    default_horizon_seconds: float = 300.0  # before a model's first measured cold start

    def __post_init__(self) -> None:
        if self.refresh_seconds <= 0 or self.refit_seconds <= 0 or self.step_seconds <= 0:
            raise ForecastInputError("refresh, refit and step seconds must be positive")
        if self.horizon_seconds is not None and self.horizon_seconds < self.step_seconds:
            raise ForecastInputError(
                f"horizon {self.horizon_seconds}s is shorter than one step ({self.step_seconds}s)"
            )
        if not 0 < self.quantile < 1:
            raise ForecastInputError(f"quantile {self.quantile} must be in (0, 1)")
        if self.forecaster != "auto":
            make_forecaster(self.forecaster)  # fail now on a bad name, not in the background loop
        for model, cap in self.capacity_per_replica.items():
            ReplicaPolicy(cap, self.target_utilization, self.min_replicas, self.max_replicas,  # validates
                          floor_utilization=self.floor_utilization)
            del model
        if self.latency_slo_seconds is not None and not 0 < self.latency_slo_seconds < 3600:
            raise ForecastInputError(f"latency SLO {self.latency_slo_seconds}s must be in (0, 3600)")

    @property
    def horizon_steps(self) -> int:
        """The horizon in steps before any cold start is measured (rounded up: it must cover the cold start)."""
        return self.horizon_steps_for(None)

    def horizon_steps_for(self, measured_cold_start: float | None) -> int:
        """Horizon in steps of the forecast grid: the configured horizon, else the measured cold start, else the
        default; rounded up, at least one step."""
        seconds = self.horizon_seconds
        if seconds is None:
            seconds = measured_cold_start if measured_cold_start is not None else self.default_horizon_seconds
        return max(1, math.ceil(seconds / self.step_seconds - 1e-9))


@dataclass(frozen=True, slots=True)
class ModelForecast:
    """The last refresh of one model, as the collector exports it."""

    model: str
    forecaster: str
    point: float
    upper: float
    quantile: float
    horizon_seconds: float
    wape: float
    last_value_wape: float
    desired_replicas: int | None
    fallback_reason: str
    computed_at: float
    capacity_per_replica: float | None = None
    capacity_source: str = ""
    guard_reason: str = ""  # why the forecast's input is not trusted ('' = trusted; llmobs.forecast.guard)
    fallback_counts: Mapping[str, int] = field(default_factory=dict)  # refreshes on the floor alone, by reason


@dataclass
class _ModelState:
    forecaster: Forecaster | None = None
    resid_q: float = math.log(1.2)
    wape: float = math.nan
    lv_wape: float = math.nan
    fitted_at: float = -math.inf
    recommender: ReplicaRecommender | None = None
    refit_reason: str = ""
    capacity: float | None = None
    capacity_source: str = ""
    observations: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=2880))
    observed_at: float = -math.inf
    fallbacks: dict[str, int] = field(default_factory=dict)  # refreshes on the reactive floor alone, by reason
    fitted_steps: int = 0  # the horizon the forecaster was fitted and backtested at


def _clean_series(series: DemandSeries) -> DemandSeries:
    """The history with ±Inf and negative request rates as gaps (`clean_rate`), for the forecaster."""
    frame = series.frame.copy()
    frame["request_rate"] = clean_rate(frame["request_rate"].to_numpy(dtype=float))
    return DemandSeries(frame, series.step_seconds, series.source, series.notes)


def _candidates() -> list[Forecaster]:
    return [LastValue(), MovingAverage(6), Arima(3), LlmobsModel()]


class ForecastService:
    """Refreshes per-model forecasts from a `StateHolder`; register its collector on an injected registry."""

    def __init__(
        self,
        holder: StateHolder,
        config: ForecastConfig | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.holder = holder
        self.config = config or ForecastConfig()
        self._clock = clock
        self._states: dict[str, _ModelState] = {}
        self._snapshot: dict[str, ModelForecast] = {}
        self.last_refresh_seconds = math.nan
        self.last_refit_seconds = 0.0
        self.last_refresh_time = math.nan
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.collector = ForecastCollector(self)
        if registry is not None:
            registry.register(self.collector)

    def snapshot(self) -> dict[str, ModelForecast]:
        """The last refresh's forecasts by model (a copy; safe to read from any thread)."""
        return dict(self._snapshot)

    def horizon_steps(self, model: str) -> int:
        """`model`'s forecast horizon in grid steps: configured, else its measured cold start
        (`llmobs_replica_cold_start_seconds`, p90 of the recent ones), else the default."""
        if self.config.horizon_seconds is not None:
            return self.config.horizon_steps_for(None)
        summary = self.holder.current.cold_starts.get(model)
        return self.config.horizon_steps_for(summary.horizon_seconds if summary is not None else None)

    def _target(self, state: _ModelState) -> Forecaster:
        if state.forecaster is not None:
            return state.forecaster
        return make_forecaster(self.config.forecaster) if self.config.forecaster != "auto" else LlmobsModel()

    def refit_once(self) -> list[str]:
        """Refit the models whose refit is due and whose history is long enough; returns their names.

        Heavier than a refresh (a short backtest and a model fit): the loop runs it before a refresh,
        in the same background worker, so neither the scrape loop nor `collect()` ever waits for it.
        """
        now = self._clock()
        done = []
        for model in self.holder.models_with_history():
            state = self._states.setdefault(model, _ModelState())
            h = self.horizon_steps(model)
            if now - state.fitted_at < self.config.refit_seconds and state.fitted_steps == h:
                continue  # not due, and the measured cold start has not moved the horizon
            series = _clean_series(from_history(self.holder.history(model), self.config.step_seconds))
            y = series.request_rate.to_numpy(dtype=float)
            if check_history(y, self._target(state), h, self.config.step_seconds):
                continue  # too short: the refresh reports the fallback and its reason
            try:
                self._refit(state, series, now, h)
            except Exception as exc:
                self.last_error = f"{model}: {type(exc).__name__}: {exc}"
                state.fitted_at = now
                continue
            done.append(model)
        return done

    def _refit(self, state: _ModelState, series: DemandSeries, now: float, h: int) -> None:
        """Choose (auto) and fit the forecaster at `h` steps; estimate band and WAPE from a short backtest."""
        cfg = self.config
        state.fitted_steps = h
        t0 = time.perf_counter()
        y = series.request_rate.to_numpy(dtype=float)
        cands = _candidates() if cfg.forecaster == "auto" else [make_forecaster(cfg.forecaster), LastValue()]
        try:
            bt = backtest(series, (h,), cands, refit_every=max(h, len(series) // 3), quantile=cfg.quantile)
            name = bt.best if cfg.forecaster == "auto" else cfg.forecaster
            if name in bt.skipped:
                raise ForecastInputError(bt.skipped[name])
            path = bt.paths[(name, h)]
            ok = ~np.isnan(path.actual)
            resid = np.log1p(np.clip(path.actual[ok], 0, None)) - np.log1p(np.clip(path.point[ok], 0, None))
            state.resid_q = max(0.0, float(np.quantile(resid, cfg.quantile))) if resid.size >= 8 else math.log(1.2)
            state.wape = bt.score(name, h).wape
            state.lv_wape = bt.score("last_value", h).wape
            forecaster = make_forecaster(name)
            forecaster.fit(y, series.frame.index, h, cfg.step_seconds)
            state.forecaster = forecaster
            state.refit_reason = ""
            state.fitted_at = now
        except ForecastInputError as exc:
            state.forecaster = None
            state.refit_reason = str(exc)
            state.fitted_at = now - cfg.refit_seconds + min(60.0, cfg.refit_seconds)  # retry in a minute
        self.last_refit_seconds = time.perf_counter() - t0

    def _forecast_model(self, model: str, now: float) -> ModelForecast | None:
        cfg = self.config
        points = self.holder.history(model)
        if not points:
            return None
        raw = from_history(points, cfg.step_seconds)
        series = _clean_series(raw)
        y = series.request_rate.to_numpy(dtype=float)
        h = self.horizon_steps(model)
        state = self._states.setdefault(model, _ModelState())
        self._update_capacity(model, state)
        reason = check_history(y, self._target(state), h, cfg.step_seconds) or state.refit_reason
        need = self._target(state).required_history(h, cfg.step_seconds)
        age = max(0.0, (now - points[-1].time) / cfg.step_seconds)  # an outage: no new point since
        guard_reason = assess(raw.request_rate.to_numpy(dtype=float), need, cfg.guard, age_steps=math.floor(age)) or (
            "no_forecaster" if reason or state.forecaster is None else "")
        filled = ffill(y)
        finite = filled[np.isfinite(filled)]
        last = float(finite[-1]) if finite.size and finite[-1] > 0 else 0.0
        if reason or state.forecaster is None:
            # documented fallback: last value, band = last value + 20 % (0 for an all-zero history)
            name, point, upper = "last_value", last, 1.2 * last
            reason = reason or "no fitted forecaster yet"
        else:
            name = state.forecaster.name
            origin = np.array([len(y) - 1])
            point = float(state.forecaster.predict(y, series.frame.index, origin, h, cfg.step_seconds)[0])
            upper = float(np.expm1(np.log1p(max(point, 0.0)) + state.resid_q))
        desired = None
        if state.recommender is not None:
            desired = state.recommender.recommend(now, upper, last, trusted=not guard_reason).desired
        if guard_reason:
            state.fallbacks[guard_reason] = state.fallbacks.get(guard_reason, 0) + 1
        return ModelForecast(
            model=model,
            forecaster=name,
            point=point,
            upper=upper,
            quantile=cfg.quantile,
            horizon_seconds=h * cfg.step_seconds,
            wape=state.wape if not reason else math.nan,
            last_value_wape=state.lv_wape,
            desired_replicas=desired,
            fallback_reason=reason,
            computed_at=now,
            capacity_per_replica=state.capacity,
            capacity_source=state.capacity_source,
            guard_reason=guard_reason,
            fallback_counts=dict(state.fallbacks),
        )

    def _update_capacity(self, model: str, state: _ModelState) -> None:
        """Configured capacity, else learned at the SLO; rebuild the recommender when it changes."""
        cfg = self.config
        cap, source = cfg.capacity_per_replica.get(model), "configured"
        if cap is None and cfg.latency_slo_seconds is not None:
            current = self.holder.current
            rows = current.for_model(model)
            if rows and current.time > state.observed_at:
                state.observed_at = current.time
                ttft = [r.ttft.quantiles.get(0.9, math.nan) for r in rows]
                ttft = [x for x in ttft if not math.isnan(x)]
                replicas = len({r.attribution.endpoint for r in rows})
                state.observations.append(
                    (sum(r.request_rate for r in rows), float(replicas), max(ttft) if ttft else math.nan)
                )
            try:
                cap = learn_capacity_per_replica(
                    state.observations, cfg.latency_slo_seconds, min_points=cfg.learn_min_points
                )
                source = "learned"
            except ForecastInputError:
                cap = None
        if cap is None or cap <= 0:
            state.capacity, state.capacity_source, state.recommender = None, "", None
            return
        state.capacity, state.capacity_source = cap, source
        policy = ReplicaPolicy(cap, cfg.target_utilization, cfg.min_replicas, cfg.max_replicas,
                               cfg.scale_down_stabilization_s, cfg.floor_utilization)
        if state.recommender is None:
            state.recommender = ReplicaRecommender(policy)
        else:  # a learned capacity moves every scrape: keep the stabilization memory, swap the policy
            state.recommender.policy = policy

    def refresh_once(self) -> dict[str, ModelForecast]:
        """One refresh of every model with history (predict only, no fitting); swaps in a new snapshot.

        Never raises: a model whose refresh fails is left out and the error kept in `last_error`.
        """
        t0 = time.perf_counter()
        now = self._clock()
        out: dict[str, ModelForecast] = {}
        for model in self.holder.models_with_history():
            try:
                fc = self._forecast_model(model, now)
            except Exception as exc:
                self.last_error = f"{model}: {type(exc).__name__}: {exc}"
                continue
            if fc is not None:
                out[model] = fc
        self._snapshot = out
        self.last_refresh_time = now
        self.last_refresh_seconds = time.perf_counter() - t0
        return out

    async def run(self) -> None:
        """Refresh forever as an asyncio task; each refresh runs in a worker thread, off the loop."""
        while not self._stop.is_set():
            await asyncio.to_thread(self.refit_once)
            await asyncio.to_thread(self.refresh_once)
            await asyncio.sleep(self.config.refresh_seconds)

    def start(self) -> None:
        """Refresh forever in a daemon thread (for callers without an event loop)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.refit_once()
                self.refresh_once()
                self._stop.wait(self.config.refresh_seconds)

        self._thread = threading.Thread(target=loop, name="llmobs-forecast", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread or task after its current refresh."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class ForecastCollector(Collector):
    """Exports the service's last snapshot; `collect()` computes nothing and cannot block on a refresh."""

    def __init__(self, service: ForecastService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        """Yield the `llmobs_forecast_*` and `llmobs_desired_replicas` families (llmobs.metrics_catalogue)."""
        svc = self._service
        snap = svc.snapshot()
        rate = family("llmobs_forecast_request_rate")
        horizon = family("llmobs_forecast_horizon_seconds")
        wape = family("llmobs_forecast_wape_ratio")
        lv = family("llmobs_forecast_last_value_wape_ratio")
        fallback = family("llmobs_forecast_fallback")
        info = family("llmobs_forecast_info")
        desired = family("llmobs_desired_replicas")
        capacity = family("llmobs_forecast_capacity_per_replica")
        trusted = family("llmobs_forecast_trusted")
        fallbacks = family("llmobs_forecast_fallbacks_total")
        for m, fc in sorted(snap.items()):
            trusted.add_metric([m], 0.0 if fc.guard_reason else 1.0)
            for reason, count in sorted(fc.fallback_counts.items()):
                fallbacks.add_metric([m, reason], float(count))
            rate.add_metric([m, "0.5"], fc.point)
            rate.add_metric([m, f"{fc.quantile:g}"], fc.upper)
            horizon.add_metric([m], fc.horizon_seconds)
            wape.add_metric([m], fc.wape)
            lv.add_metric([m], fc.last_value_wape)
            fallback.add_metric([m], 1.0 if fc.fallback_reason else 0.0)
            info.add_metric([m, fc.forecaster, fc.fallback_reason], 1.0)
            if fc.desired_replicas is not None:
                desired.add_metric([m], float(fc.desired_replicas))
            if fc.capacity_per_replica is not None:
                capacity.add_metric([m, fc.capacity_source], fc.capacity_per_replica)
        duration = family("llmobs_forecast_refresh_duration_seconds")
        duration.add_metric([], svc.last_refresh_seconds)
        refit = family("llmobs_forecast_refit_duration_seconds")
        refit.add_metric([], svc.last_refit_seconds)
        stamp = family("llmobs_forecast_last_refresh_timestamp_seconds")
        stamp.add_metric([], svc.last_refresh_time)
        yield from (rate, horizon, wape, lv, fallback, info, desired, capacity, trusted, fallbacks, duration, refit,
                    stamp)
