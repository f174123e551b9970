"""Configuration of `llmobs agent`, the per-node DaemonSet (its own YAML file or CLI flags)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError

from llmobs._config_model import StrictConfigModel
from llmobs._yaml import YamlError, load_yaml_file
from llmobs.sources.kubernetes.config import KubernetesConfig


class AgentConfig(StrictConfigModel):
    """`node_name` defaults to $NODE_NAME (set it from the downward API: `spec.nodeName`)."""

    node_name: str = Field(default_factory=lambda: os.environ.get("NODE_NAME", ""))
    host: str = "0.0.0.0"
    port: int = Field(9403, ge=0, le=65535)  # 9400 exporter, 9401 KEDA scaler, 9402 feedback API
    # bounded: 1e-6 s ran collections back to back on a whole core; 1e308 s logged "retrying every 1e+308s"
    interval_seconds: float = Field(5.0, ge=0.01, le=3600)
    proc_root: Path = Path("/proc")
    nvml_retry_seconds: float = Field(60.0, ge=1, le=86400)
    kubernetes: KubernetesConfig = Field(default_factory=lambda: KubernetesConfig.model_validate({}))


class AgentConfigError(ValueError):
    pass


def load_agent_config(path: Path) -> AgentConfig:
    """Read and validate a YAML file (bounded: llmobs._yaml); errors name the file and the key."""
    try:
        data = load_yaml_file(path, "agent config") or {}
        return AgentConfig.model_validate(data)
    except YamlError as exc:
        raise AgentConfigError(str(exc)) from None
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise AgentConfigError(f"{path}: {msgs}") from None
