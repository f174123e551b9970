"""Rolling-origin backtest: every forecaster forecasts from every origin, using only the past.

Protocol (docs/forecasting.md): origins are consecutive steps; a model is refitted on the whole past
every `refit_every` steps (expanding window) and predicts the origins up to the next refit; bands come
from each forecaster's own earlier out-of-sample residuals (`upper_from_residuals`). All forecasters are
scored on the same origins, from `eval_start` on, where every included forecaster has enough history;
a forecaster that needs more history than the series has is listed as skipped with the reason.

Metrics per forecaster and horizon, over origins whose actual is known (gaps are not scored):
WAPE = Σ|y − ŷ| / Σ|y|; MAPE over actuals > 0; pinball loss of the upper quantile divided by mean(y)
(scale-free); coverage = share of actuals ≤ upper (target: the quantile).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmobs.forecast.demand import DemandSeries
from llmobs.forecast.errors import ForecastInputError
from llmobs.forecast.forecasters import Forecaster, default_forecasters, upper_from_residuals


@dataclass(frozen=True, slots=True)
class Score:
    """One forecaster at one horizon over the scored origins."""

    forecaster: str
    horizon_steps: int
    wape: float
    mape: float
    pinball_scaled: float
    coverage: float
    n: int


@dataclass
class Path:
    """Forecasts along the scored origins, for plots and for the replay."""

    target_index: pd.DatetimeIndex
    actual: np.ndarray
    point: np.ndarray
    upper: np.ndarray


@dataclass
class BacktestResult:
    """Scores for each forecaster and horizon, the winner, and the winner's path for plotting."""

    source: str
    step_seconds: float
    horizons: tuple[int, ...]
    eval_start: int
    n_points: int
    quantile: float
    scores: list[Score]
    best: str
    skipped: dict[str, str] = field(default_factory=dict)
    paths: dict[tuple[str, int], Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    select_by: str = "wape"  # the score `best` minimises: wape (point) or pinball (upper band)
    no_winner: str = ""
    """Why no score ranks the forecasters (e.g. the scored part has no traffic), or "" when `best` won on its
    score. When set, `best` is only the fallback (last_value) the live service refits with, not a winner."""

    def score(self, forecaster: str, horizon: int) -> Score:
        """The score of one forecaster at one horizon."""
        for s in self.scores:
            if s.forecaster == forecaster and s.horizon_steps == horizon:
                return s
        raise KeyError((forecaster, horizon))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (the CLI's `--json`)."""
        return {
            "source": self.source,
            "step_seconds": self.step_seconds,
            "horizons_steps": list(self.horizons),
            "n_points": self.n_points,
            "eval_start": self.eval_start,
            "quantile": self.quantile,
            "best": None if self.no_winner else self.best,
            "no_winner": self.no_winner or None,
            "skipped": self.skipped,
            "notes": list(self.notes),
            "scores": [
                {
                    "forecaster": s.forecaster,
                    "horizon_steps": s.horizon_steps,
                    "horizon_seconds": s.horizon_steps * self.step_seconds,
                    # JSON has no NaN: an undefined score (no traffic scored) is null
                    "wape": _defined(s.wape),
                    "mape": _defined(s.mape),
                    "pinball_scaled": _defined(s.pinball_scaled),
                    "coverage": _defined(s.coverage),
                    "n": s.n,
                }
                for s in self.scores
            ],
        }


def _defined(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _why_no_winner(actual: np.ndarray, start: int, n: int) -> str:
    """Why no forecaster has a defined score at the longest horizon, from its scored actuals."""
    known = actual[~np.isnan(actual)]
    where = f"the scored part (steps {start}–{n - 1} of {n})"
    if known.size == 0:
        return f"{where} is all gaps (no data); nothing to score"
    if np.all(known == 0):
        return f"{where} has no traffic: every value is zero; WAPE is undefined on it"
    return f"no forecaster has a forecast for {where}"


def rolling_forecasts(
    y: np.ndarray,
    index: pd.DatetimeIndex,
    step_seconds: float,
    forecaster: Forecaster,
    horizon: int,
    first_origin: int,
    refit_every: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Point forecasts of y[o + horizon] for origins o in [first_origin, n - horizon).

    Each block of `refit_every` origins is predicted by a model fitted on y[: block start + 1].
    """
    n = len(y)
    origins = np.arange(first_origin, n - horizon)
    point = np.empty(origins.size)
    for b in range(0, origins.size, refit_every):
        block = origins[b : b + refit_every]
        start = int(block[0])
        forecaster.fit(y[: start + 1], index[: start + 1], horizon, step_seconds)
        point[b : b + block.size] = forecaster.predict(y, index, block, horizon, step_seconds)
    return origins, point


def _score(name: str, h: int, actual: np.ndarray, point: np.ndarray, upper: np.ndarray, q: float) -> Score:
    ok = ~np.isnan(actual) & ~np.isnan(point)  # a series that starts with a gap has no forecast yet
    a, p, u = actual[ok], point[ok], upper[ok]
    total = np.abs(a).sum()
    wape = float(np.abs(a - p).sum() / total) if total > 0 else math.nan
    pos = a > 0
    mape = float(np.mean(np.abs(a[pos] - p[pos]) / a[pos])) if pos.any() else math.nan
    diff = a - u
    pinball = np.maximum(q * diff, (q - 1) * diff).mean() if a.size else math.nan
    mean = a.mean() if a.size else math.nan
    return Score(
        forecaster=name,
        horizon_steps=h,
        wape=wape,
        mape=mape,
        pinball_scaled=float(pinball / mean) if mean else math.nan,
        coverage=float(np.mean(a <= u)) if a.size else math.nan,
        n=int(a.size),
    )


def backtest(
    series: DemandSeries,
    horizons: Sequence[int] = (1,),
    forecasters: Sequence[Forecaster] | None = None,
    *,
    column: str = "request_rate",
    eval_start: int | None = None,
    refit_every: int | None = None,
    quantile: float = 0.9,
    select_by: str = "wape",
) -> BacktestResult:
    """Rolling-origin backtest of each forecaster at each horizon (in steps) on one demand column.

    The winner (`best`) has the lowest `select_by` score at the longest horizon: "wape" (the point
    forecast, the default) or "pinball" (the upper band — what a replica policy built on the band
    actually consumes).
    """
    if select_by not in ("wape", "pinball"):
        raise ForecastInputError(f"select_by must be wape or pinball, got {select_by!r}")
    if column not in series.frame:
        raise ForecastInputError(f"series has no column {column!r}")
    if not 0 < quantile < 1:
        raise ForecastInputError(f"quantile {quantile} must be in (0, 1)")
    y = series.frame[column].to_numpy(dtype=float)
    index = pd.DatetimeIndex(series.frame.index)
    n = len(y)
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or horizons[0] < 1:
        raise ForecastInputError(f"horizons must be ≥ 1 step, got {horizons}")
    known = y[~np.isnan(y)]
    if known.size == 0:
        raise ForecastInputError(f"{series.source}: the series has no data (all gaps)")
    if np.all(known == 0):
        raise ForecastInputError(f"{series.source}: every value is zero; WAPE is undefined on it")
    hmax = horizons[-1]
    fs = list(forecasters) if forecasters is not None else default_forecasters(series.step_seconds, n)
    start = eval_start if eval_start is not None else n // 3
    skipped: dict[str, str] = {}
    usable: list[Forecaster] = []
    for f in fs:
        need = f.required_history(hmax, series.step_seconds)
        if need > start and eval_start is None and need < n - hmax - 10:
            start = need  # let a long-memory forecaster in by scoring later
        if need > start or need >= n - hmax - 10:
            skipped[f.name] = f"needs {need} points of history; scoring starts at {start} of {n}"
            continue
        usable.append(f)
    # A forecaster admitted early may now fail the later start? No: `start` only grew past its need.
    if start >= n - hmax - 5:
        raise ForecastInputError(
            f"{series.source}: {n} points are too few to score a {hmax}-step horizon (need > {start + hmax + 5})"
        )
    if not usable:
        raise ForecastInputError(f"{series.source}: no forecaster has enough history ({n} points)")
    scores: list[Score] = []
    paths: dict[tuple[str, int], Path] = {}
    for f in usable:
        for h in horizons:
            first = max(1, f.required_history(h, series.step_seconds)) - 1
            refit = refit_every or max(h, math.ceil((n - first) / 12))
            origins, point = rolling_forecasts(y, index, series.step_seconds, f, h, first, refit)
            actual = y[origins + h]
            upper = upper_from_residuals(point, actual, h, quantile)
            keep = origins >= start
            scores.append(_score(f.name, h, actual[keep], point[keep], upper[keep], quantile))
            paths[(f.name, h)] = Path(index[origins[keep] + h], actual[keep], point[keep], upper[keep])
    at_h = [s for s in scores if s.horizon_steps == hmax and not math.isnan(s.wape)]
    if select_by == "pinball":
        at_h = [s for s in at_h if not math.isnan(s.pinball_scaled)]
        best = min(at_h, key=lambda s: s.pinball_scaled).forecaster if at_h else "last_value"
    else:
        best = min(at_h, key=lambda s: s.wape).forecaster if at_h else "last_value"
    # Every forecaster is scored on the same origins, so the first one's actuals say why none has a score.
    no_winner = "" if at_h else _why_no_winner(paths[(usable[0].name, hmax)].actual, start, n)
    return BacktestResult(
        source=series.source,
        step_seconds=series.step_seconds,
        horizons=horizons,
        eval_start=start,
        n_points=n,
        quantile=quantile,
        scores=scores,
        best=best,
        skipped=skipped,
        paths=paths,
        notes=series.notes,
        select_by=select_by,
        no_winner=no_winner,
    )
