"""The `llmobs agent` sub-command; cli.py calls `register(app)`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from llmobs._extras import require
from llmobs.agent.config import AgentConfig, AgentConfigError, load_agent_config
from llmobs.cli_support import (
    CliError,
    ensure_can_listen,
    example,
    kubernetes_credentials_errors,
    one_line_errors,
    problems_message,
)


def register(app: typer.Typer) -> None:
    """Add `agent` to the llmobs command."""

    @app.command("agent", epilog=example("llmobs agent --config agent.yaml --node-name gpu-node-1",
                                         "llmobs agent --port 9403 --check-config"))
    @one_line_errors(AgentConfigError)
    def agent(
        config: Path | None = typer.Option(None, "--config", "-c", help="agent YAML (see docs/gpu-and-kubernetes.md)"),
        port: int | None = typer.Option(None, "--port", min=0, max=65535,
                                        help="override the config's port (default 9403)"),
        node_name: str | None = typer.Option(None, "--node-name", envvar="NODE_NAME", help="this node's name"),
        check_config: bool = typer.Option(False, "--check-config", help="validate the config and exit"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging; traceback of an unexpected "
                                                                   "error"),
    ) -> None:
        """Node agent (DaemonSet): NVML GPU metrics and GPU process → pod attribution on /metrics."""
        cfg = load_agent_config(config) if config else AgentConfig.model_validate({})
        updates: dict[str, object] = {}
        if port is not None:
            updates["port"] = port
        if node_name:
            updates["node_name"] = node_name
        cfg = cfg.model_copy(update=updates)
        if cfg.kubernetes.enabled and not cfg.node_name:
            raise CliError("kubernetes.enabled needs the node name: set node_name, --node-name or NODE_NAME "
                           "(downward API: spec.nodeName)")
        if cfg.kubernetes.enabled and cfg.kubernetes.kubeconfig and not cfg.kubernetes.api_host:
            from llmobs.filechecks import kubeconfig_problems

            problems = kubeconfig_problems("kubernetes", Path(cfg.kubernetes.kubeconfig))
            if problems:
                raise CliError(problems_message(f"agent config {config}", problems))
        if not cfg.proc_root.is_dir():
            # a mis-mounted /host/proc: every GPU process would lose its pod, namespace and model in silence
            # (the readers treat an unreadable /proc/<pid> as a process that just exited)
            raise CliError(f"agent: proc_root {cfg.proc_root} is not a directory: mount the host's /proc there, "
                           "or leave it at /proc")
        if check_config:
            typer.echo(f"agent config OK: node {cfg.node_name or '(unset)'}, port {cfg.port}, "
                       f"kubernetes {'on' if cfg.kubernetes.enabled else 'off'}")
            return
        require("agent")
        ensure_can_listen("agent (port)", cfg.host, cfg.port)
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        with kubernetes_credentials_errors():
            asyncio.run(_run(cfg))


async def _run(cfg: AgentConfig) -> None:
    from llmobs.agent.server import run_agent

    await run_agent(cfg)
