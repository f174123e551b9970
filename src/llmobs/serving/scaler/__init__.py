"""KEDA external scaler: llmobs signals and forecasts served over KEDA's gRPC protocol and as JSON.

Layout (each stage meets the next at a small typed interface): `catalogue` (the signals, as data) →
`metadata` (trigger metadata → `ScalerQuery`, metric names, size limits) → `triggers` (the bounded
registry of triggers asked about) → `cache` (precomputed `Snapshot`, pure `answer`) ← `refresher` (the only
reader of `StateHolder` and the forecaster) → `service` (the gRPC handlers, which only read the cache) /
`metrics_api` (JSON routes) → `server` (config, TLS, health, limits, start-up). KEDA's proto and the code
generated from it live in `proto/`. See docs/keda-scaler.md.

This module imports nothing itself: `llmobs.config` embeds `scaler.config` and must not pull in grpc.
The names below are loaded on first use.
"""

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "SIGNALS": "catalogue", "ForecastProvider": "provider", "MetadataError": "metadata",
    "ScalerCollector": "stats", "ScalerConfig": "config", "ScalerError": "cache", "ScalerHandle": "server",
    "ScalerQuery": "metadata", "ScalerStats": "stats", "ScalerTLSConfig": "config", "SignalCache": "cache",
    "Snapshot": "cache", "answer": "cache", "build_snapshot": "cache", "metric_name": "metadata",
    "metrics_api_routes": "metrics_api", "parse_metadata": "metadata", "serve_scaler": "server",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
