"""Forecasting: demand series from the state's history, traces or Prometheus; forecasts; replica counts;
KV-cache capacity; autoscaling replays. Needs the `[forecast]` extra.

Exported here is what an embedding program uses: the live service the exporter runs, the demand inputs,
the forecasters by name and the capacity estimate. Backtests (`backtest.backtest`) and replays
(`replay.replay`) are imported from their modules, whose names they share. Names load on first use
(llmobs._lazy), so `import llmobs.forecast` imports no pandas.
"""

from typing import TYPE_CHECKING

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "ForecastConfig": "service", "ForecastService": "service", "ModelForecast": "service",
    "DemandSeries": "demand", "from_history": "demand", "read_trace": "demand",
    "ForecastInputError": "errors", "FORECASTER_NAMES": "forecasters", "Forecaster": "forecasters",
    "make_forecaster": "forecasters", "Capacity": "capacity", "estimate_capacity": "capacity",
    "ReplicaPolicy": "recommend", "ReplicaRecommender": "recommend",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "FORECASTER_NAMES",
    "Capacity",
    "DemandSeries",
    "ForecastConfig",
    "ForecastInputError",
    "ForecastService",
    "Forecaster",
    "ModelForecast",
    "ReplicaPolicy",
    "ReplicaRecommender",
    "estimate_capacity",
    "from_history",
    "make_forecaster",
    "read_trace",
]

if TYPE_CHECKING:
    from llmobs.forecast.capacity import Capacity, estimate_capacity
    from llmobs.forecast.demand import DemandSeries, from_history, read_trace
    from llmobs.forecast.errors import ForecastInputError
    from llmobs.forecast.forecasters import FORECASTER_NAMES, Forecaster, make_forecaster
    from llmobs.forecast.recommend import ReplicaPolicy, ReplicaRecommender
    from llmobs.forecast.service import ForecastConfig, ForecastService, ModelForecast
