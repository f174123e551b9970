"""The `otlp:` section of llmobs.yaml, apart from the exporter so the root config loads no OpenTelemetry.

llmobs.serving.otlp (which needs the `[otlp]` extra) re-exports it under its old name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from llmobs._config_model import StrictConfigModel, check_http_url


class OtlpConfig(StrictConfigModel):
    """`otlp:` section of llmobs.yaml: push the signals to an OpenTelemetry collector."""

    enabled: bool = Field(False, description="push metrics over OTLP")
    endpoint: str = Field("http://localhost:4317", description="collector base URL: gRPC host:port (default port "
                          "4317) or HTTP (port 4318; `/v1/metrics` is appended when the URL has no path)")
    protocol: Literal["grpc", "http/protobuf"] = Field("grpc", description="OTLP transport")
    export_interval_seconds: float = Field(15.0, gt=0, description="time between exports")
    export_timeout_seconds: float = Field(10.0, gt=0, description="deadline of one export")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers (e.g. auth)")
    ca_file: Path | None = Field(None, description="PEM CA bundle for an https:// endpoint (default: system CAs)")
    service_name: str = Field("llmobs", min_length=1, description="resource `service.name` (OTEL_SERVICE_NAME wins)")
    resource_attributes: dict[str, str] = Field(default_factory=dict, description="extra resource attributes")

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(v).rstrip("/")

    def http_url(self) -> str:
        """The HTTP exporter's full URL: the base endpoint plus the OTLP metrics path when it has none."""
        rest = self.endpoint.partition("://")[2]
        return self.endpoint if "/" in rest else f"{self.endpoint}/v1/metrics"
