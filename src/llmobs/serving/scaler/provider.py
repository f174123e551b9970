"""What the scaler needs from a forecaster, as a Protocol, so the scaler never imports `llmobs.forecast`.

`forecast(model, horizon_s)` returns `(point, upper)` requests/s expected `horizon_s` seconds ahead, or
None when the forecaster has nothing for that model yet (too little history, model unknown).
`desired_replicas(model)` returns the replicas the forecaster recommends, or None likewise. Both are
called only from the cache's background refresh, never on a gRPC request, so they may be slow; an
exception counts as None. None makes the scaler answer UNAVAILABLE for that trigger, so KEDA's
`fallback` (if configured) takes over instead of scaling on a made-up number.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ForecastProvider(Protocol):
    def forecast(self, model: str, horizon_s: float) -> tuple[float, float] | None:
        """(point, upper) forecast request rate `horizon_s` seconds ahead, or None."""
        ...

    def desired_replicas(self, model: str) -> int | None:
        """Recommended replica count for the model, or None."""
        ...
