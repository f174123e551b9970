"""Adapters from this process's components to the status page's sources (read-only; nothing here writes).

Imported by the runtime only where the component runs, so a page without a scaler needs no scaler code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from llmobs.serving.scaler.cache import ScalerError, SignalCache, answer
from llmobs.serving.scaler.triggers import TriggerRegistry
from llmobs.serving.statuspage.history import ModelExtras
from llmobs.serving.statuspage.view import TriggerAnswer

if TYPE_CHECKING:
    from llmobs.forecast.service import ModelForecast


def trigger_answers(cache: SignalCache, triggers: TriggerRegistry,
                    clock: Callable[[], float] = time.time) -> Callable[[], list[TriggerAnswer]]:
    """Each trigger KEDA has asked about, with the answer the scaler gives it from its current snapshot:
    GetMetrics' value, IsActive's verdict (value > activationTarget), and when that snapshot was built."""

    def read() -> list[TriggerAnswer]:
        snapshot = cache.snapshot
        now = clock()
        out = []
        for t in triggers.items():
            q = t.query
            try:
                v = answer(snapshot, q, now)
            except ScalerError as e:
                out.append(TriggerAnswer(q.model, q.signal, q.target, None, None, snapshot.built_at,
                                         f"{e.code}: {e}"))
                continue
            finite = math.isfinite(v)
            out.append(TriggerAnswer(q.model, q.signal, q.target, v if finite else None,
                                     v > q.activation_target if finite else None, snapshot.built_at))
        return sorted(out, key=lambda a: (a.model, a.signal, a.target))

    return read


def forecast_extras(forecasts: Callable[[], Mapping[str, ModelForecast]]) -> Callable[[str], ModelExtras]:
    """The model history's forecast columns (point, upper band, desired replicas) from the forecast service."""

    def extras(model: str) -> ModelExtras:
        f = forecasts().get(model)
        if f is None:
            return ModelExtras()
        desired = float(f.desired_replicas) if f.desired_replicas is not None else None
        return ModelExtras(forecast=f.point, upper=f.upper, desired=desired)

    return extras
