"""KEDA external scaler: llmobs signals and forecasts served over KEDA's gRPC protocol and as JSON.

Layout (each stage meets the next at a small typed interface): `catalogue` (the signals, as data) →
`metadata` (trigger metadata → `ScalerQuery`, metric names) → `cache` (precomputed `Snapshot`, pure
`answer`) ← `refresher` (the only reader of `StateHolder` and the forecaster) → `service` (gRPC handlers
that only read the cache) / `metrics_api` (JSON routes) → `server` (config, TLS, health, start-up).
See docs/keda-scaler.md.

The names below load on first use, so `llmobs.serving.scaler.config` (embedded in the root config)
imports no gRPC.
"""

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "ScalerError": "cache", "SignalCache": "cache", "Snapshot": "cache", "answer": "cache",
    "build_snapshot": "cache", "SIGNALS": "catalogue", "ScalerConfig": "config", "ScalerTLSConfig": "config",
    "MetadataError": "metadata", "ScalerQuery": "metadata", "metric_name": "metadata",
    "parse_metadata": "metadata", "metrics_api_routes": "metrics_api", "ForecastProvider": "provider",
    "ScalerHandle": "server", "serve_scaler": "server", "ScalerCollector": "stats", "ScalerStats": "stats",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
