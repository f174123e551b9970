"""NVIDIA Dynamo's planner, throughput-based scaling of aggregated workers (no HPA: it sets the replicas).

Rules, read in ai-dynamo/dynamo (components/src/dynamo/planner/):

* every `throughput_adjustment_interval` (180 s, config/defaults.py `BasePlannerDefaults`) it observes the
  last interval's request count, mean ISL and mean OSL, and predicts the next interval's with the
  `load_predictor` (default "arima": core/load/predictors.py `ARIMAPredictor`, pmdarima's auto_arima,
  falling back to the last value below 5 points and for a constant series; leading zeros are skipped);
* aggregated mode (core/throughput_scaling.py `_throughput_agg`): demand = predicted requests ÷ interval,
  engine capacity = the highest request rate one engine serves within the TTFT and ITL SLOs at the
  predicted ISL/OSL (from its pre-deployment profiling), replicas = max(ceil(demand ÷ capacity),
  `min_endpoint` 1).

Here: the request count comes from the router's arrival rate (the frontend's request counter), ISL from its
prompt tokens, OSL from the replicas' generated tokens per finished request; the profiled capacity is
`context.capacity_rps` (a one-replica load test at the training mix, `capacity.profile_capacity`), re-read
at the predicted ISL/OSL by GPU work (`capacity.capacity_at`). The predictor is an ARIMA(1,1,0) on log1p
(llmobs.forecast.forecasters.Arima), warmed with the training part's 180 s buckets as Dynamo's trace
warm-up allows, not auto_arima's order search. `max_gpu_budget` (default 8) is not applied: the benchmark's
fleet limit is. The knob is the share of the profiled capacity the planner plans with — what tightening
(< 1) or loosening (> 1) the SLO targets given to its profiler does to the engine capacity it reads.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmobs.forecast.forecasters import Arima
from llmobs.simulate.control import Controller, ControlView
from llmobs.simulate.policies.base import PolicyContext, PolicySpec
from llmobs.simulate.policies.capacity import capacity_at, reference_lengths

ADJUSTMENT_INTERVAL_S = 180.0
MIN_POINTS = 5  # ARIMAPredictor's minimum_data_points
MIN_ENDPOINT = 1
SHARES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25)


class LoadPredictor:
    """One of the planner's three series (requests per interval, ISL, OSL): last value below 5 points or
    when constant, else a one-step ARIMA forecast; never negative; leading zeros skipped.

    Like Dynamo's ARIMAPredictor, the model is fitted once and then follows new observations without a
    refit (pmdarima's `update`, which only nudges the fitted parameters): here the coefficients are kept and
    refitted every `REFIT_EVERY` points, and a forecast reads only the last few points (an ARIMA(1,1,0)
    forecasts from the last two). Refitting at every interval on the whole history instead made a 14-day
    run (6,700 intervals) cost a minute of CPU for the same forecasts to within the fit's noise."""

    REFIT_EVERY = 20  # intervals: an hour at the 180 s adjustment interval

    def __init__(self, history: list[float] | None = None) -> None:
        self.values: list[float] = []
        self._model: Arima | None = None
        self._fitted_at = 0
        self._constant = True  # every value so far equal (Dynamo then returns it: pmdarima predicts 0)
        for value in history or []:
            self.add(value)

    def add(self, value: float) -> None:
        if not math.isfinite(value):
            value = 0.0  # Dynamo reads a non-finite observation as no load
        if value == 0 and not any(v != 0 for v in self.values):
            return
        value = max(0.0, value)
        self._constant = self._constant and (not self.values or value == self.values[0])
        self.values.append(value)

    def predict(self) -> float:
        if not self.values:
            return 0.0
        if len(self.values) < MIN_POINTS or self._constant:
            return self.values[-1]
        if self._model is None or len(self.values) - self._fitted_at >= self.REFIT_EVERY:
            y = np.asarray(self.values, dtype=float)
            self._model = Arima(p=1)
            self._model.fit(y, _interval_index(len(y)), 1, ADJUSTMENT_INTERVAL_S)
            self._fitted_at = len(self.values)
        tail = np.asarray(self.values[-TAIL_POINTS:], dtype=float)
        forecast = float(self._model.predict(tail, _TAIL_INDEX[: len(tail)], np.array([len(tail) - 1]), 1,
                                             ADJUSTMENT_INTERVAL_S)[0])
        return max(0.0, forecast) if math.isfinite(forecast) else self.values[-1]


TAIL_POINTS = 8  # what the forecast reads: more than the ARIMA(1,1,0) recursion's two points


def _interval_index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq=f"{int(ADJUSTMENT_INTERVAL_S)}s")


_TAIL_INDEX = _interval_index(TAIL_POINTS)


def _training_buckets(context: PolicyContext) -> tuple[list[float], list[float], list[float]]:
    """The training part's (requests, mean ISL, mean OSL) per 180 s interval, for the warm-up."""
    w = context.training
    if w is None or len(w) < 2:
        return [], [], []
    bucket = np.floor((w.arrival - w.arrival[0]) / ADJUSTMENT_INTERVAL_S).astype(int)
    count = np.bincount(bucket).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        isl = np.bincount(bucket, weights=w.prompt.astype(float)) / count
        osl = np.bincount(bucket, weights=w.output.astype(float)) / count
    full = count[:-1]  # the last bucket is cut short by the end of training
    return full.tolist(), np.nan_to_num(isl[:-1]).tolist(), np.nan_to_num(osl[:-1]).tolist()


class DynamoPlanner:
    def __init__(self, share: float, context: PolicyContext) -> None:
        if not (math.isfinite(share) and share > 0):
            raise ValueError(f"capacity share must be > 0, not {share!r}")
        self.share = share
        self.context = context
        requests, isl, osl = _training_buckets(context)
        self.requests = LoadPredictor(requests)
        self.isl = LoadPredictor(isl)
        self.osl = LoadPredictor(osl)
        self._rates: list[float] = []
        self._prompt_rates: list[float] = []
        self._osl: list[float] = []
        self._next = ADJUSTMENT_INTERVAL_S
        self.last_decision: int | None = None

    def observe(self, view: ControlView) -> None:
        if math.isfinite(view.door_rate) and view.door_rate >= 0:
            self._rates.append(view.door_rate)
            if math.isfinite(view.door_prompt_tokens_rate) and view.door_rate > 0:
                self._prompt_rates.append(view.door_prompt_tokens_rate / view.door_rate)
        finished = sum(x.request_rate for x in view.loads if math.isfinite(x.request_rate))
        generated = sum(x.generation_tokens_rate for x in view.loads if math.isfinite(x.generation_tokens_rate))
        if finished > 0:
            self._osl.append(generated / finished)

    def step(self, view: ControlView) -> int | None:
        self.observe(view)
        if view.now + 1e-9 < self._next:
            return None
        self._next = view.now + ADJUSTMENT_INTERVAL_S
        if self._rates:
            self.requests.add(float(np.mean(self._rates)) * ADJUSTMENT_INTERVAL_S)
        if self._prompt_rates:
            self.isl.add(float(np.mean(self._prompt_rates)))
        if self._osl:
            self.osl.add(float(np.mean(self._osl)))
        self._rates.clear()
        self._prompt_rates.clear()
        self._osl.clear()
        ref_isl, ref_osl = reference_lengths(self.context)
        isl = self.isl.predict() or ref_isl
        osl = self.osl.predict() or ref_osl
        demand = self.requests.predict() / ADJUSTMENT_INTERVAL_S
        engine_rps = capacity_at(self.context, isl, osl) * self.share
        self.last_decision = max(math.ceil(demand / engine_rps - 1e-9), MIN_ENDPOINT)
        return max(self.context.hpa.min_replicas, min(self.context.hpa.max_replicas, self.last_decision))


def build(share: float, context: PolicyContext) -> Controller:
    return DynamoPlanner(share, context).step


SPEC = PolicySpec(
    key="dynamo-planner",
    label="NVIDIA Dynamo planner (throughput, ARIMA, 180 s)",
    knob="share of the profiled per-replica capacity planned with",
    source="ai-dynamo/dynamo components/src/dynamo/planner/config/defaults.py, core/throughput_scaling.py "
           "(_throughput_agg), core/load/predictors.py (ARIMAPredictor)",
    grid=lambda c: SHARES,
    default=lambda c: 1.0,
    build=build,
)
