"""The `scaler:` section of llmobs.yaml: plain pydantic, no gRPC import, so the config module can embed it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, model_validator

from llmobs._config_model import StrictConfigModel

log = logging.getLogger("llmobs.config")
_REMOVED_ENGINES = ("auto", "threads")


class _Strict(StrictConfigModel):
    pass


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
    engine: Literal["aio", "native"] = Field(
        "aio", description="aio (default): grpc.aio in the llmobs process answers KEDA; native (opt-in): the C++ "
                           "front end (exporters/scaler-frontend, `make native`) answers KEDA's unary calls from a "
                           "table and forwards the rest to grpc.aio on a local socket (docs/keda-scaler.md)")
    frontend_binary: str = Field("llmobs-scaler-frontend", description="native engine only: the front end "
                                                                       "executable (a path, or a name on PATH)")

    @model_validator(mode="before")
    @classmethod
    def _accept_removed_engines(cls, data: Any) -> Any:
        """`engine: auto` and `engine: threads` and `max_streams` (the threads engine's pool) are gone: a config
        that still names them keeps loading, as `aio`, with a warning."""
        if not isinstance(data, dict):
            return data
        if data.get("engine") in _REMOVED_ENGINES:
            log.warning("scaler.engine %r no longer exists: using 'aio' (the native front end is opt-in: "
                        "engine: native; docs/keda-scaler.md)", data["engine"])
            data = {**data, "engine": "aio"}
        if "max_streams" in data:
            log.warning("scaler.max_streams no longer exists (it sized the removed threads engine): ignored")
            data = {k: v for k, v in data.items() if k != "max_streams"}
        return data

    def horizons(self) -> tuple[float, ...]:
        return tuple(float(h) for h in self.forecast_horizons_seconds)
