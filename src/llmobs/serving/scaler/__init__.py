"""KEDA external scaler: llmobs signals and forecasts served over KEDA's gRPC protocol and as JSON.

Layout (each stage meets the next at a small typed interface): `catalogue` (the signals, as data) →
`metadata` (trigger metadata → `ScalerQuery`, metric names) → `cache` (precomputed `Snapshot`, pure
`answer`) ← `refresher` (the only reader of `StateHolder` and the forecaster) → `service` (gRPC handlers
that only read the cache) / `metrics_api` (JSON routes) → `server` (config, TLS, health, start-up).
See docs/keda-scaler.md.
"""

from llmobs.serving.scaler.cache import ScalerError, SignalCache, Snapshot, answer, build_snapshot
from llmobs.serving.scaler.catalogue import SIGNALS
from llmobs.serving.scaler.config import ScalerConfig, ScalerTLSConfig
from llmobs.serving.scaler.metadata import MetadataError, ScalerQuery, metric_name, parse_metadata
from llmobs.serving.scaler.metrics_api import metrics_api_routes
from llmobs.serving.scaler.provider import ForecastProvider
from llmobs.serving.scaler.server import ScalerHandle, serve_scaler
from llmobs.serving.scaler.stats import ScalerCollector, ScalerStats

__all__ = [
    "SIGNALS", "ForecastProvider", "MetadataError", "ScalerCollector", "ScalerConfig", "ScalerError",
    "ScalerHandle", "ScalerQuery", "ScalerStats", "ScalerTLSConfig", "SignalCache", "Snapshot", "answer",
    "build_snapshot", "metric_name", "metrics_api_routes", "parse_metadata", "serve_scaler",
]
