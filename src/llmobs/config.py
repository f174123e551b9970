"""llmobs configuration: one pydantic model, loaded from YAML, validated with messages that name the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from llmobs._config_model import StrictConfigModel, check_http_url
from llmobs._yaml import YamlError, load_yaml_file, load_yaml_text
from llmobs.agent.cost import CostConfig
from llmobs.feedback.config import FeedbackConfig
from llmobs.serving.otlp_config import OtlpConfig
from llmobs.serving.scaler.config import ScalerConfig
from llmobs.sources.door import DoorTarget
from llmobs.sources.kubernetes.config import KubernetesConfig
from llmobs.sources.scrape_auth import ScrapeAuth, SecretFile
from llmobs.sources.targets import SchedulerLimits, Target, default_target_name, redact_url

if TYPE_CHECKING:
    from llmobs.forecast.service import ForecastConfig


class ConfigError(Exception):
    """A configuration problem, with a message fit to print as is."""


class _Strict(StrictConfigModel):
    """Unknown keys, infinite numbers and YAML booleans for numbers are errors (llmobs._config_model)."""


class BasicAuthConfig(_Strict):
    """`basic_auth:` of a target, as in Prometheus' scrape config: the password from a file (a Secret)."""

    username: str = Field(description="user name sent with HTTP basic auth")
    password_file: str = Field(description="file holding the password (re-read when it changes)")


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED_LABELS = {"model": "from the page's model_name", "endpoint": "from the target's `name`",
                    "role": "give it as the target's `role` key, which is checked"}


class TargetConfig(_Strict):
    url: str = Field(description="Full URL of a vLLM replica's metrics page, e.g. http://10.0.0.7:8000/metrics")
    name: str | None = Field(default=None, description="`endpoint` label; default host:port of url")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels, e.g. node, gpu_model")
    basic_auth: BasicAuthConfig | None = Field(default=None, description="HTTP basic auth, password from a file")
    bearer_token_file: str | None = Field(default=None, description="file holding a bearer token (re-read "
                                          "when it changes); sent as `Authorization: Bearer <token>`")
    max_num_seqs: int | None = Field(default=None, ge=1, description="the replica's vLLM `--max-num-seqs`, for "
                                     "the batch saturation ratio (vLLM does not publish it; unknown without it)")
    max_num_batched_tokens: int | None = Field(default=None, ge=1, description="the replica's vLLM "
                                               "`--max-num-batched-tokens` (the chunked-prefill budget per engine "
                                               "step), for the prefill saturation ratio; unknown without it")
    role: Literal["prefill", "decode", "mixed"] | None = Field(
        default=None, description="prefill/decode disaggregation role (the `role` label of the KV-transfer series); "
        "default `mixed`, or the discovered pod's `llmobs.io/role` label. A page that contradicts it is counted")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str | None) -> str | None:
        # the name is the `endpoint` label and goes into log lines: a newline in it split a log line in two
        if v is not None and not v.isprintable():
            raise ValueError("must be printable (no newlines or other control characters)")
        return v

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        # Prometheus label names; `model` and `endpoint` are llmobs' own (the page and `name` set them) and
        # `role` has its own checked key: under `labels:` each was taken without a word, a bad role unchecked
        for key in v:
            if not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
                raise ValueError(f"label name {key!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                                 "not starting with __)")
            if key in _RESERVED_LABELS:
                raise ValueError(f"label {key!r} is set by llmobs ({_RESERVED_LABELS[key]})")
        return v

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> TargetConfig:
        if self.basic_auth is not None and self.bearer_token_file is not None:
            raise ValueError("give basic_auth or bearer_token_file, not both")
        return self

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        return check_http_url(v)  # a validation error here, not a traceback when the target is built

    def to_target(self) -> Target:
        auth = None
        if self.basic_auth is not None:
            password_file = SecretFile(self.basic_auth.password_file)
            auth = ScrapeAuth(username=self.basic_auth.username, password_file=password_file)
        elif self.bearer_token_file is not None:
            auth = ScrapeAuth(bearer_token_file=SecretFile(self.bearer_token_file))
        labels = dict(self.labels) if self.role is None else {**self.labels, "role": self.role}
        return Target(url=self.url, name=self.name or default_target_name(self.url), labels=labels, auth=auth,
                      scheduler=SchedulerLimits(self.max_num_seqs, self.max_num_batched_tokens))


class DoorConfig(TargetConfig):
    """`doors:` — a router or proxy in front of the replicas, scraped for per-model demand (docs/doors.md): what
    arrives for a model with no replica shows only there."""

    kind: Literal["vllm-router", "litellm", "gie-epp"] = Field(description="which door's metric names to read")
    model: str | None = Field(default=None, description="the model a page without model labels serves (required "
                              "for vllm-router, whose page has none)")
    model_map: dict[str, str] = Field(default_factory=dict, description="door model name -> vLLM served name "
                                      "(the `model` label), where they differ")

    @model_validator(mode="after")
    def _router_names_its_model(self) -> DoorConfig:
        if self.kind == "vllm-router" and not self.model:
            raise ValueError("a vllm-router page has no model label: give `model` (the model its workers serve)")
        return self

    def to_door(self) -> DoorTarget:
        target = self.to_target()
        return DoorTarget(target.url, target.name, self.kind, self.model, dict(self.model_map), target)


class ScrapeConfig(_Strict):
    interval_seconds: float = Field(5.0, gt=0, description="time between scrape cycles")
    timeout_seconds: float = Field(3.0, gt=0, description="per-target timeout (whole request)")
    max_concurrency: int = Field(64, ge=1, description="scrapes in flight at once")
    max_response_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="larger pages are refused")
    max_series_per_target: int = Field(10_000, ge=1, description="samples read per page; the rest are dropped "
                                       "and counted (llmobs_series_dropped_total{reason=\"series_limit\"})")
    max_label_values: int = Field(512, ge=1, description="distinct values kept per target of `le` and each "
                                  "label llmobs keeps apart (finished_reason, reason); the rest are dropped")
    max_models_per_target: int = Field(64, ge=1, description="distinct models one target's page may name; a "
                                       "page with more is not used and the target is down (kind model_limit)")


class SignalsConfig(_Strict):
    window_seconds: float = Field(60.0, gt=0, description="window for rates, ratios and quantiles")
    ttft_slo_seconds: float = Field(1.0, gt=0, description="TTFT threshold behind llmobs_ttft_slo_good_total")
    tpot_slo_seconds: float = Field(0.1, gt=0, description="per-request time-per-output-token threshold behind "
                                    "llmobs_tpot_slo_good_total")
    e2e_slo_seconds: float = Field(30.0, gt=0, description="end-to-end request latency threshold behind "
                                   "llmobs_e2e_slo_good_total")
    max_models: int = Field(1_000, ge=1, description="distinct models tracked fleet-wide; samples of further "
                            "models are dropped and counted (reason model_limit)")


class ShardingConfig(_Strict):
    """`sharding:` — split targets across exporter replicas by hashmod of the URL (docs/scaling.md)."""

    shards: int = Field(1, ge=1, le=10_000, description="exporter replicas sharing the targets")
    shard_index: int | None = Field(None, ge=0, description="this replica's shard; default LLMOBS_SHARD_INDEX "
                                    "or the hostname's StatefulSet ordinal (llmobs-2 -> 2)")

    @field_validator("shard_index")
    @classmethod
    def _in_range(cls, v: int | None, info: ValidationInfo) -> int | None:
        shards = info.data.get("shards", 1)
        if v is not None and v >= shards:
            raise ValueError(f"must be below shards ({shards})")
        return v


class ServerConfig(_Strict):
    host: str = Field("0.0.0.0", description="listen address of the exporter")
    port: int = Field(9400, ge=0, le=65535, description="exporter port (/metrics, /healthz, /api/v1/signals, /)")


class ForecastSection(_Strict):
    """`forecast:` — the live demand forecast and replica recommendation (see docs/forecasting.md)."""

    enabled: bool = Field(False, description="run the forecaster in the exporter (off the scrape loop)")
    refresh_seconds: float = Field(15.0, gt=0, description="time between forecast refreshes")
    refit_seconds: float = Field(600.0, gt=0, description="time between model refits")
    step_seconds: float = Field(60.0, gt=0, description="forecast grid step")
    horizon_seconds: float | None = Field(
        None, gt=0, description="forecast horizon; unset: each model's measured replica cold start "
        "(p90 of llmobs_replica_cold_start_seconds), 300 s until one is measured")
    quantile: float = Field(0.9, gt=0, lt=1, description="upper quantile used for replica recommendations")
    forecaster: str = Field("auto", description="auto (backtest winner) or a forecaster name")
    capacity_per_replica: dict[str, float] = Field(default_factory=dict,
                                                   description="model -> requests/s one replica serves at SLO")
    target_utilization: float = Field(0.8, gt=0, le=1)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1000, ge=1)
    scale_down_stabilization_seconds: float = Field(300.0, ge=0)
    latency_slo_seconds: float | None = Field(None, description="learn capacity at this TTFT p90 when not given")

    def to_forecast_config(self) -> ForecastConfig:  # (imported lazily: the forecast extra needs pandas)
        from llmobs.forecast.service import ForecastConfig

        return ForecastConfig(
            refresh_seconds=self.refresh_seconds, refit_seconds=self.refit_seconds, step_seconds=self.step_seconds,
            horizon_seconds=self.horizon_seconds, quantile=self.quantile, forecaster=self.forecaster,
            capacity_per_replica=dict(self.capacity_per_replica), target_utilization=self.target_utilization,
            min_replicas=self.min_replicas, max_replicas=self.max_replicas,
            scale_down_stabilization_s=self.scale_down_stabilization_seconds,
            latency_slo_seconds=self.latency_slo_seconds,
        )


class LlmobsConfig(_Strict):
    """A whole llmobs configuration (the YAML `llmobs run --config` reads); unknown keys are errors."""

    targets: list[TargetConfig] = Field(default_factory=list)
    doors: list[DoorConfig] = Field(default_factory=list, description="routers/proxies scraped for per-model demand")
    scrape: ScrapeConfig = Field(default_factory=ScrapeConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    sharding: ShardingConfig | None = Field(None, description="split targets across exporter replicas")
    kubernetes: KubernetesConfig | None = Field(None, description="discover vLLM pods instead of/besides targets")
    forecast: ForecastSection | None = Field(None, description="live demand forecast")
    scaler: ScalerConfig | None = Field(None, description="KEDA external scaler (gRPC) and metrics-api JSON")
    feedback: FeedbackConfig | None = Field(None, description="user feedback API")
    otlp: OtlpConfig | None = Field(None, description="push signals over OTLP")
    cost: CostConfig | None = Field(None, description="GPU $/h by gpu_model, for cost per 1k generated tokens")

    def build_doors(self) -> list[DoorTarget]:
        """The door targets; ConfigError when two share a name."""
        doors = [d.to_door() for d in self.doors]
        names = [d.name for d in doors]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"doors: duplicate door name {name!r}; give each door a unique name")
        return doors

    def build_targets(self) -> list[Target]:
        """The static scrape targets; ConfigError when two share an endpoint name or a URL.

        Why a URL twice is refused: one page scraped twice a cycle under two names is one replica counted
        twice, and its counters' deltas between the two scrapes a few milliseconds apart read as thousands of
        requests per second. Two names for one replica is a typo, not a setup."""
        targets = [t.to_target() for t in self.targets]
        names: set[str] = set()
        urls: dict[str, int] = {}
        for i, t in enumerate(targets):
            if t.name in names:
                raise ConfigError(f"targets: duplicate endpoint name {t.name!r}; give each target a unique name")
            names.add(t.name)
            if t.url in urls:
                raise ConfigError(f"targets.{i}.url: the same URL as targets.{urls[t.url]} ({redact_url(t.url)}); "
                                  "list each replica once")
            urls[t.url] = i
        return targets


def _format_validation(error: ValidationError) -> str:
    lines = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{where}: {e['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def config_from_mapping(data: Any) -> LlmobsConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("invalid configuration: the top level must be a mapping")
    try:
        config = LlmobsConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e)) from None
    config.build_targets()
    config.build_doors()
    return config


def load_config(path: Path) -> LlmobsConfig:
    """Read and validate a config file; every failure is a ConfigError naming the file."""
    try:
        data = load_yaml_file(path, "config")
    except YamlError as e:
        raise ConfigError(str(e)) from None
    return config_from_mapping(data)


def load_config_text(text: str, where: str = "<text>") -> LlmobsConfig:
    """Validate a config given as YAML text; every failure is a ConfigError naming `where`.

    The YAML goes through llmobs._yaml (safe loader, bounded size, nesting and no aliases): deep nesting
    and unclosed flow collections found by fuzz/fuzz_config.py are one-line errors, not tracebacks.
    """
    try:
        data = load_yaml_text(text, f"config {where}")
    except YamlError as e:
        raise ConfigError(str(e)) from None
    return config_from_mapping(data)
