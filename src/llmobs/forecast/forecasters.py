"""Demand forecasters: baselines and llmobs' own model, behind one small, vectorized interface.

A forecaster is fitted on a prefix of the series and then predicts `y[o + h]` for many origins `o` at
once, using only `y[: o + 1]` for each (tests check this by changing the future). Predicting many origins
in one call is what makes a 14-day rolling-origin backtest take seconds: features are computed once for
the whole series, and a model is refitted only every `refit_every` steps.

Point forecasts only; the upper quantile is added by `upper_from_residuals`, the same way for every
forecaster: the empirical quantile of its own past out-of-sample errors (in log1p space, so the band
scales with the level and zeros are fine). That is a split-conformal band — honest about each model's
actual errors, with no extra fit.

Gaps (NaN) are carried over by the last known value when forecasting, and are never used as training
targets or scored. Zero windows are real zeros.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from llmobs.forecast.errors import ForecastInputError

DAY = 86400.0
WEEK = 7 * DAY


def ffill(y: np.ndarray) -> np.ndarray:
    """Carry the last known value over gaps; leading gaps stay NaN."""
    s = pd.Series(y)
    return s.ffill().to_numpy(dtype=float)


class Forecaster(ABC):
    """Predicts demand `horizon` steps ahead of each origin, from that origin's past only."""

    name: str = "forecaster"

    def required_history(self, horizon: int, step_seconds: float) -> int:
        """Points of history needed before this forecaster's forecasts mean anything."""
        return 1

    def fit(self, y: np.ndarray, index: pd.DatetimeIndex, horizon: int, step_seconds: float) -> None:  # noqa: B027
        """Learn from `y` (the history up to the fit time). Baselines have nothing to learn."""

    @abstractmethod
    def predict(
        self, y: np.ndarray, index: pd.DatetimeIndex, origins: np.ndarray, horizon: int, step_seconds: float
    ) -> np.ndarray:
        """Point forecasts of `y[o + horizon]` for each origin `o`, each from `y[: o + 1]` only."""


class LastValue(Forecaster):
    """Tomorrow is like now: the last known value. The fallback when history is short."""

    name = "last_value"

    def predict(
        self, y: np.ndarray, index: pd.DatetimeIndex, origins: np.ndarray, horizon: int, step_seconds: float
    ) -> np.ndarray:
        return ffill(y)[origins]


class MovingAverage(Forecaster):
    """Mean of the last `window` known values: smooths bursts at the cost of lagging ramps."""

    def __init__(self, window: int = 6) -> None:
        self.window = window
        self.name = f"moving_average_{window}"

    def required_history(self, horizon: int, step_seconds: float) -> int:
        return self.window

    def predict(
        self, y: np.ndarray, index: pd.DatetimeIndex, origins: np.ndarray, horizon: int, step_seconds: float
    ) -> np.ndarray:
        ma = pd.Series(y).rolling(self.window, min_periods=1).mean().ffill().to_numpy()
        return ma[origins]


class SeasonalNaive(Forecaster):
    """Same time one period ago (a day or a week): right for strong daily cycles, wrong on drifts."""

    def __init__(self, period_seconds: float = DAY) -> None:
        self.period_seconds = period_seconds
        self.name = "seasonal_naive_week" if period_seconds >= WEEK else "seasonal_naive_day"

    def _lag(self, step_seconds: float) -> int:
        return max(1, round(self.period_seconds / step_seconds))

    def required_history(self, horizon: int, step_seconds: float) -> int:
        return self._lag(step_seconds) + 1

    def predict(
        self, y: np.ndarray, index: pd.DatetimeIndex, origins: np.ndarray, horizon: int, step_seconds: float
    ) -> np.ndarray:
        lag = self._lag(step_seconds)
        filled = ffill(y)
        src = origins + horizon - lag
        src = np.minimum(src, origins)  # a period shorter than the horizon repeats the last value
        out = np.full(origins.shape, np.nan)
        ok = src >= 0
        out[ok] = filled[src[ok]]
        out[~ok] = filled[origins[~ok]]
        return out


class Arima(Forecaster):
    """ARIMA(p, 1, 0) on log1p(demand), fitted with statsmodels — the model class NVIDIA Dynamo's planner
    uses by default. With q = 0 the fitted model forecasts from the last p + 1 points, so many origins
    are predicted by a vectorized recursion instead of one Kalman filter run per origin."""

    def __init__(self, p: int = 3, max_train: int = 2000) -> None:
        self.p = p
        self.max_train = max_train
        self.name = f"arima_{p}_1_0"
        self._phi = np.zeros(p)
        self._const = 0.0

    def required_history(self, horizon: int, step_seconds: float) -> int:
        return max(30, 4 * self.p + horizon)

    def fit(self, y: np.ndarray, index: pd.DatetimeIndex, horizon: int, step_seconds: float) -> None:
        from statsmodels.tsa.ar_model import AutoReg

        z = np.log1p(np.clip(ffill(y[-self.max_train :]), 0, None))
        dz = np.diff(z[~np.isnan(z)])
        if dz.size < 3 * self.p + 2 or np.std(dz) == 0:
            self._phi, self._const = np.zeros(self.p), 0.0
            return
        # Conditional least squares on the differences: ARIMA(p, 1, 0) in milliseconds, so a backtest
        # can refit it often. (Exact MLE via statsmodels' ARIMA gives nearly the same φ, 100× slower.)
        res = AutoReg(dz, lags=self.p, trend="c").fit()
        params = np.asarray(res.params)
        self._const = float(params[0])
        self._phi = params[1 : self.p + 1].astype(float)

    def predict(
        self, y: np.ndarray, index: pd.DatetimeIndex, origins: np.ndarray, horizon: int, step_seconds: float
    ) -> np.ndarray:
        z = np.log1p(np.clip(ffill(y), 0, None))
        dz = np.concatenate([[0.0], np.diff(z)])
        dz = np.nan_to_num(dz)
        p = self.p
        # lags[:, i] = dz[o - i] for i in 0..p-1 (0 before the series starts)
        lags = np.zeros((origins.size, p))
        for i in range(p):
            src = origins - i
            ok = src >= 0
            lags[ok, i] = dz[src[ok]]
        level = z[origins].copy()
        for _ in range(horizon):
            step = self._const + lags @ self._phi
            level = level + step
            lags = np.column_stack([step, lags[:, :-1]]) if p > 1 else step[:, None]
        return np.clip(np.expm1(level), 0, None)


def _features(y: np.ndarray, index: pd.DatetimeIndex, horizon: int, step_seconds: float) -> np.ndarray:
    """Causal features at every row: row o uses y[: o + 1] and the (known) calendar of o + horizon."""
    z = pd.Series(np.log1p(np.clip(ffill(y), 0, None)))
    cols: list[np.ndarray] = []
    for k in (1, 2, 3, 6, 12):
        cols.append((z - z.shift(k)).to_numpy())
    for w in (3, 6, 12, 36):
        cols.append((z.rolling(w, min_periods=1).mean() - z).to_numpy())
    for w in (6, 24):
        cols.append(z.rolling(w, min_periods=2).std().to_numpy())
    cols.append((z.rolling(12, min_periods=1).max() - z).to_numpy())
    for period in (DAY, WEEK):
        lag = round(period / step_seconds)
        if lag > horizon and lag < len(z):
            cols.append((z.shift(lag - horizon) - z).to_numpy())
        else:
            cols.append(np.full(len(z), np.nan))
    gaps = pd.Series(np.isnan(y).astype(float)).rolling(12, min_periods=1).mean().to_numpy()
    cols.append(gaps)
    cols.append((np.nan_to_num(y) == 0).astype(float))
    cols.append(z.to_numpy())
    target_time = index[0] + pd.to_timedelta((np.arange(len(z)) + horizon) * step_seconds, unit="s")
    hour = (target_time.hour + target_time.minute / 60.0).to_numpy(dtype=float)
    cols.append(np.sin(2 * np.pi * hour / 24))
    cols.append(np.cos(2 * np.pi * hour / 24))
    cols.append(target_time.day_of_week.to_numpy(dtype=float))
    return np.column_stack(cols)


class _Regressor(Protocol):
    """What a fitted scikit-learn regressor offers the forecaster (sklearn ships no types)."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


class LlmobsModel(Forecaster):
    """llmobs' own: gradient-boosted trees (scikit-learn) on lag, rolling and calendar features.

    It predicts the change of log1p(demand) from now to `horizon` steps ahead, under absolute loss
    (the median, which is what WAPE rewards), so it never has to learn the level and falls back
    toward "last value" where its features say nothing. NaN features (gaps, no day of history yet)
    are handled natively by the trees.
    """

    name = "llmobs_gbm"

    def __init__(self, max_train: int = 4032, max_iter: int = 100) -> None:
        self.max_train = max_train
        self.max_iter = max_iter
        self._model: _Regressor | None = None
        self._cols: np.ndarray = np.ones(0, dtype=bool)
        self._cache_key: tuple[int, int, float, float] | None = None
        self._cache_y: np.ndarray | None = None
        self._cache: np.ndarray | None = None

    def required_history(self, horizon: int, step_seconds: float) -> int:
        return 60 + horizon

    def _feats(self, y: np.ndarray, index: pd.DatetimeIndex, horizon: int, step_seconds: float) -> np.ndarray:
        # The backtest passes the same array for every block: build its feature matrix once. The
        # array itself is kept (not only its id, which Python reuses after a free) and its sum is
        # compared, so neither a new array of equal shape nor an edited one hits a stale matrix.
        key = (len(y), horizon, step_seconds, float(np.nansum(y)))  # the sum catches in-place edits
        if self._cache is None or self._cache_y is not y or self._cache_key != key:
            self._cache = _features(y, index, horizon, step_seconds)
            self._cache_key = key
            self._cache_y = y
        return self._cache

    def fit(self, y: np.ndarray, index: pd.DatetimeIndex, horizon: int, step_seconds: float) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x = _features(y, index, horizon, step_seconds)
        z = np.log1p(np.clip(ffill(y), 0, None))
        actual = np.log1p(np.clip(y, 0, None))
        n = len(y)
        rows = np.arange(max(0, n - horizon - self.max_train), n - horizon)
        target = actual[rows + horizon] - z[rows]
        ok = ~np.isnan(target) & ~np.isnan(z[rows])
        if ok.sum() < 20:
            raise ForecastInputError(f"{self.name}: only {int(ok.sum())} usable training rows (need 20)")
        model = HistGradientBoostingRegressor(
            loss="absolute_error",
            max_iter=self.max_iter,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        )
        xt = x[rows[ok]]
        # A column with no value at all (no day of history yet) carries nothing and trips the binner.
        self._cols = ~np.all(np.isnan(xt), axis=0)
        # One OpenMP thread: these fits are small, and on a busy 2-core box (the exporter's own scrape
        # loop, other processes) OpenMP's spinning threads made them ~3× slower, not faster.
        with threadpool_limits(1, user_api="openmp"):
            model.fit(xt[:, self._cols], target[ok])
        self._model = model

    def predict(
        self, y: np.ndarray, index: pd.DatetimeIndex, origins: np.ndarray, horizon: int, step_seconds: float
    ) -> np.ndarray:
        if self._model is None:
            raise ForecastInputError(f"{self.name}: predict before fit")
        x = self._feats(y, index, horizon, step_seconds)
        z = np.log1p(np.clip(ffill(y), 0, None))
        with threadpool_limits(1, user_api="openmp"):
            delta = self._model.predict(x[origins][:, self._cols])
        return np.clip(np.expm1(z[origins] + delta), 0, None)


def default_forecasters(step_seconds: float, n_points: int) -> list[Forecaster]:
    """Every forecaster that makes sense for a series of this step and length.

    Seasonal naive needs one full period of history: it is left out (not faked) when the series is
    shorter than a day or a week.
    """
    out: list[Forecaster] = [LastValue(), MovingAverage(6), Arima(3), LlmobsModel()]
    for period in (DAY, WEEK):
        if n_points * step_seconds > 1.5 * period:
            out.append(SeasonalNaive(period))
    return out


FORECASTER_NAMES = ("last_value", "moving_average_6", "seasonal_naive_day", "seasonal_naive_week",
                    "arima_3_1_0", "llmobs_gbm")


def make_forecaster(name: str) -> Forecaster:
    """Build a forecaster from its name (the CLI's and the service's config spelling)."""
    table: dict[str, Callable[[], Forecaster]] = {
        "last_value": LastValue,
        "moving_average_6": lambda: MovingAverage(6),
        "seasonal_naive_day": lambda: SeasonalNaive(DAY),
        "seasonal_naive_week": lambda: SeasonalNaive(WEEK),
        "arima_3_1_0": lambda: Arima(3),
        "llmobs_gbm": LlmobsModel,
    }
    m = re.fullmatch(r"moving_average_(\d{1,5})", name)
    if m and int(m.group(1)) >= 1:  # any window, e.g. the cold-start window the autoscale benchmark adds
        return MovingAverage(int(m.group(1)))
    if name not in table:
        raise ForecastInputError(f"unknown forecaster {name!r}; known: {', '.join(table)}")
    return table[name]()


def upper_from_residuals(
    point: np.ndarray,
    actual_at_target: np.ndarray,
    horizon: int,
    quantile: float = 0.9,
    window: int = 288,
    min_residuals: int = 8,
) -> np.ndarray:
    """Upper quantile band for forecasts made at consecutive origins (split-conformal, causal).

    The residual of origin o, log1p(actual[o + h]) - log1p(point[o]), is only known at time o + h, so
    the band at origin o uses residuals of origins ≤ o - h, over a trailing `window`. Before
    `min_residuals` are known the band is the point + 20 % (stated in docs/forecasting.md).
    """
    lp = np.log1p(np.clip(point, 0, None))
    resid = pd.Series(np.log1p(np.clip(actual_at_target, 0, None)) - lp)
    q = resid.shift(horizon).rolling(window, min_periods=min_residuals).quantile(quantile).to_numpy()
    q = np.where(np.isnan(q), math.log(1.2), np.maximum(q, 0.0))
    return np.expm1(lp + q)


@dataclass(frozen=True, slots=True)
class LiveForecast:
    """One forecast for "now + horizon" as the live service and the CLI report it."""

    forecaster: str
    point: float
    upper: float
    quantile: float
    horizon_steps: int
    fallback_reason: str = ""


def check_history(y: np.ndarray, forecaster: Forecaster, horizon: int, step_seconds: float) -> str:
    """Why `forecaster` cannot be used on this history ('' when it can): the documented fallback rule."""
    known = int(np.sum(~np.isnan(y)))
    if known == 0:
        return "history has no data"
    if np.nanmax(np.abs(y)) == 0:
        return "all-zero history"
    need = forecaster.required_history(horizon, step_seconds)
    if known < need:
        return f"history has {known} points; {forecaster.name} needs {need}"
    return ""
