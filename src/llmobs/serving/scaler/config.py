"""The `scaler:` section of llmobs.yaml: plain pydantic, no gRPC import, so the config module can embed it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

log = logging.getLogger("llmobs.config")
_REMOVED = frozenset({"engine", "frontend_binary", "max_streams"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScalerTLSConfig(_Strict):
    cert_file: Path = Field(description="PEM server certificate (chain)")
    key_file: Path = Field(description="PEM private key of the server certificate")
    client_ca_file: Path | None = Field(None, description="PEM CA bundle; when set, clients must present a "
                                                          "certificate it signed (mTLS)")


class ScalerConfig(_Strict):
    """`scaler:` section of llmobs.yaml."""

    enabled: bool = Field(False, description="serve the KEDA external scaler (gRPC)")
    host: str = Field("0.0.0.0", description="gRPC listen address")
    port: int = Field(9401, ge=0, le=65535, description="gRPC port (KEDA trigger scalerAddress host:port)")
    tls: ScalerTLSConfig | None = Field(None, description="TLS/mTLS; plaintext h2c when absent")
    stale_after_intervals: float = Field(3.0, gt=0, description="answers turn UNAVAILABLE after this many scrape "
                                                                "intervals without fresh data")
    models: list[str] = Field(default_factory=list, description="models answered even with no endpoint scraped "
                                                                "(value 0, inactive): scale-to-zero deployments")
    forecast_horizons_seconds: list[PositiveFloat] = Field(default_factory=lambda: [60.0, 300.0, 900.0],
                                                   description="horizons precomputed for forecast_request_rate")

    @model_validator(mode="before")
    @classmethod
    def _drop_removed_engine_knobs(cls, data: Any) -> Any:
        """`engine`, `frontend_binary` and `max_streams` chose between serving engines that no longer exist
        (grpc.aio is the only one): a config that still names them keeps loading, with a warning."""
        if isinstance(data, dict) and _REMOVED.intersection(data):
            removed = sorted(_REMOVED.intersection(data))
            data = {k: v for k, v in data.items() if k not in _REMOVED}
            log.warning("scaler: %s: removed setting(s), ignored (the scaler has one engine, grpc.aio; "
                        "docs/keda-scaler.md)", ", ".join(removed))
        return data

    def horizons(self) -> tuple[float, ...]:
        return tuple(float(h) for h in self.forecast_horizons_seconds)
