"""Checks of what a valid `llmobs run` configuration points at, for --check-config and start-up alike.

`llmobs run --check-config` and `llmobs run` both call `startup_problems`, so the check reports exactly
what start-up would trip over (TLS files, the targets' and doors' password and token files, the feedback
tokens and database, a kubeconfig, two servers on one port), each problem as one line naming the key,
instead of start-up failing later with a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llmobs.feedback.checks import feedback_problems
from llmobs.filechecks import kubeconfig_problems, secret_file_problems, tls_problems

if TYPE_CHECKING:
    from llmobs.config import LlmobsConfig


def startup_problems(config: LlmobsConfig) -> list[str]:
    """Every problem start-up would meet in the files the config names (enabled components only)."""
    problems: list[str] = []
    for section, entries in (("targets", config.targets), ("doors", config.doors)):
        for i, t in enumerate(entries):
            if t.basic_auth is not None:
                problems += secret_file_problems(f"{section}.{i}.basic_auth.password_file",
                                                 Path(t.basic_auth.password_file), may_be_empty=True)
            if t.bearer_token_file is not None:
                problems += secret_file_problems(f"{section}.{i}.bearer_token_file", Path(t.bearer_token_file),
                                                 may_be_empty=False)
    if config.sharding is not None and config.sharding.shards > 1:
        from llmobs.sources.sharding import resolve_shard_index

        try:  # from the config, LLMOBS_SHARD_INDEX or the hostname: known only on the machine that runs it
            resolve_shard_index(config.sharding.shard_index, config.sharding.shards)
        except ValueError as exc:
            problems.append(f"sharding: {exc}".replace("sharding: sharding: ", "sharding: "))
    scaler = config.scaler
    if scaler is not None and scaler.enabled and scaler.tls is not None:
        problems += tls_problems("scaler.tls", scaler.tls.cert_file, scaler.tls.key_file, scaler.tls.client_ca_file)
    if config.feedback is not None and config.feedback.enabled:
        problems += feedback_problems(config.feedback)
    kube = config.kubernetes
    if kube is not None and kube.enabled and kube.kubeconfig and not kube.api_host:
        problems += kubeconfig_problems("kubernetes", Path(kube.kubeconfig))
    otlp = config.otlp
    if otlp is not None and otlp.enabled and otlp.ca_file is not None:
        problems += tls_problems("otlp", None, None, otlp.ca_file)
    ports = [("exporter (server.port)", config.server.port)]
    if scaler is not None and scaler.enabled:
        ports.append(("KEDA scaler (scaler.port)", scaler.port))
    if config.feedback is not None and config.feedback.enabled:
        ports.append(("feedback API (feedback.port)", config.feedback.port))
    seen: dict[int, str] = {}
    for what, port in ports:
        if port and port in seen:
            problems.append(f"{what}: port {port} is also the {seen[port]} port")
        seen.setdefault(port, what)
    return problems


def listeners(config: LlmobsConfig) -> list[tuple[str, str, int]]:
    """(server, host, port) of every server `llmobs run` starts for this config."""
    out = [("exporter (server.port)", config.server.host, config.server.port)]
    if config.scaler is not None and config.scaler.enabled:
        out.append(("KEDA scaler (scaler.port)", config.scaler.host, config.scaler.port))
    if config.feedback is not None and config.feedback.enabled:
        out.append(("feedback API (feedback.port)", config.feedback.host, config.feedback.port))
    return out
