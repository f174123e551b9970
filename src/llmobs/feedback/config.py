"""All knobs of the feedback component in one pydantic model.

One source of truth (see STYLE.md): the API, the store, the pruning loop and the collector all read
their limits from here, so a threshold is never typed twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from llmobs._config_model import StrictConfigModel

MAX_BATCH_LIMIT = 1000
"""Hard ceiling on events per request; the API contract promises batches of up to 1,000."""


class FeedbackConfig(StrictConfigModel):
    """Configuration of the feedback ingestion API, its store and its signals."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=9402, ge=0, le=65535)
    tokens_file: Path | None = Field(
        default=None,
        description="YAML/JSON mapping app -> token (or list of tokens), or a directory holding one file "
        "per app whose content is the token (a mounted Kubernetes Secret).",
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Accept posts without a token (local demos only). Requires tokens_file to be unset.",
    )
    allowed_apps: list[str] = Field(
        default_factory=list, description="Apps that get their own `app` label; every other app is `other`."
    )
    allowed_models: list[str] | None = Field(
        default=None,
        description="Models that get their own `model` label; others are `other`. When unset, the first "
        "`max_models` distinct models seen (in store order) get a label.",
    )
    max_models: int = Field(default=50, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=MAX_BATCH_LIMIT, ge=1, le=MAX_BATCH_LIMIT)
    retention_seconds: float = Field(default=30 * 86400.0, gt=0)
    max_db_bytes: int = Field(default=1024 * 1024 * 1024, ge=64 * 1024)
    db_path: Path = Path("llmobs-feedback.db")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite synchronous mode. NORMAL survives a process kill but may lose the last commits "
        "on power loss; FULL survives both.",
    )
    ttft_slo_seconds: float = Field(default=1.0, gt=0)
    window_seconds: float = Field(default=3600.0, gt=0)
    max_future_skew_seconds: float = Field(default=300.0, ge=0)
    prune_interval_seconds: float = Field(default=60.0, gt=0)
    token_reload_seconds: float = Field(default=5.0, ge=0)
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's line and headers must arrive within this time of the "
        "connection opening (or of the previous response); otherwise 408 and the connection is closed."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request's whole body must arrive within this time of its headers; "
        "otherwise 408 and the connection is closed."
    )
    max_connections: int = Field(
        default=1024, ge=1, description="Open connections at most; a further one is answered 503 and closed."
    )

    @model_validator(mode="after")
    def _auth_is_explicit(self) -> FeedbackConfig:
        """Refuse a config that would silently run an open endpoint, or one that is ambiguous."""
        if self.tokens_file is None and not self.allow_unauthenticated:
            raise ValueError("feedback needs tokens_file, or allow_unauthenticated: true for local demos")
        if self.tokens_file is not None and self.allow_unauthenticated:
            raise ValueError("tokens_file and allow_unauthenticated are mutually exclusive")
        return self

    @property
    def bucket_seconds(self) -> float:
        """Width of one in-memory window bucket: 60 buckets per window bounds memory and ratio error."""
        return self.window_seconds / 60.0
