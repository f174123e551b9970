"""The same values as JSON, for KEDA's `metrics-api` scaler, on the exporter's HTTP server.

`GET /api/v1/scaler/metrics?model=<m>&signal=<s>[&endpoint=..&node=..&namespace=..&aggregate=..&horizon=..]`
→ `{"value": 3.0, "active": true, "metricName": "...", ...}`; point the trigger's `valueLocation` at
`value`. Query parameters are the external trigger's metadata keys, validated by the same parser.
Errors: 400 (bad parameter, named), 404 (unknown model), 503 (stale or no forecast; KEDA's fallback).
Like the gRPC handlers, the route only reads the cache.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmobs.serving.scaler.cache import ScalerError, SignalCache, answer
from llmobs.serving.scaler.metadata import MetadataError, parse_metadata
from llmobs.serving.scaler.stats import ScalerStats
from llmobs.serving.scaler.triggers import TriggerRegistry

HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503}
PATH = "/api/v1/scaler/metrics"


def metrics_api_routes(cache: SignalCache, stats: ScalerStats | None = None,
                       horizons: tuple[float, ...] = (60.0, 300.0, 900.0),
                       triggers: TriggerRegistry | None = None) -> list[Route]:
    """Routes to pass to `create_app(..., extra_routes=...)`. With `triggers`, a query is remembered there as a
    gRPC trigger is (bounded, known models only), so the status page shows what KEDA's metrics-api scaler was
    last answered too."""

    async def scaler_metrics(request: Request) -> Response:
        try:
            params = request.query_params
            for key in params:
                if len(params.getlist(key)) > 1:
                    raise MetadataError(key, "given more than once")
            q = triggers.lookup(dict(params)).query if triggers is not None else parse_metadata(dict(params), horizons)
            snapshot = cache.snapshot
            value = answer(snapshot, q, time.time())
        except MetadataError as e:
            return _error(stats, ScalerError("INVALID_ARGUMENT", str(e)))
        except ScalerError as e:
            return _error(stats, e)
        if stats is not None:
            stats.count("metrics-api", "OK")
        return JSONResponse({"model": q.model, "signal": q.signal, "metricName": q.metric_name, "value": value,
                             "active": value > q.activation_target, "target": q.target,
                             "stateTime": snapshot.state_time})

    return [Route(PATH, scaler_metrics)]


def _error(stats: ScalerStats | None, e: ScalerError) -> Response:
    if stats is not None:
        stats.count("metrics-api", e.code)
    return JSONResponse({"error": e.message, "code": e.code}, status_code=HTTP_STATUS.get(e.code, 500))
