"""The `llmobs agent` sub-command; cli.py calls `register(app)`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from llmobs._extras import require
from llmobs.agent.config import AgentConfig, AgentConfigError, load_agent_config


def register(app: typer.Typer) -> None:
    """Add `agent` to the llmobs command."""

    @app.command("agent")
    def agent(
        config: Path | None = typer.Option(None, "--config", "-c", help="agent YAML (see docs/gpu-and-kubernetes.md)"),
        port: int | None = typer.Option(None, "--port", help="override the config's port (default 9403)"),
        node_name: str | None = typer.Option(None, "--node-name", envvar="NODE_NAME", help="this node's name"),
        check_config: bool = typer.Option(False, "--check-config", help="validate the config and exit"),
        verbose: bool = typer.Option(False, "--verbose", "-v"),
    ) -> None:
        """Node agent (DaemonSet): NVML GPU metrics and GPU process → pod attribution on /metrics."""
        try:
            cfg = load_agent_config(config) if config else AgentConfig.model_validate({})
        except AgentConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        updates: dict[str, object] = {}
        if port is not None:
            updates["port"] = port
        if node_name:
            updates["node_name"] = node_name
        cfg = cfg.model_copy(update=updates)
        if cfg.kubernetes.enabled and not cfg.node_name:
            typer.echo("error: kubernetes.enabled needs the node name: set node_name, --node-name or NODE_NAME "
                       "(downward API: spec.nodeName)", err=True)
            raise typer.Exit(2)
        if check_config:
            typer.echo(f"agent config OK: node {cfg.node_name or '(unset)'}, port {cfg.port}, "
                       f"kubernetes {'on' if cfg.kubernetes.enabled else 'off'}")
            return
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        asyncio.run(_run(cfg))


async def _run(cfg: AgentConfig) -> None:
    require("agent")
    from llmobs.agent.server import run_agent

    await run_agent(cfg)
