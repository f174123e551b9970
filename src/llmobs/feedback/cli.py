"""`llmobs feedback`: the feedback API on its own, without the exporter (cli.py calls `register(app)`).

Used by the durability test and the benchmark (a real separate process that can be SIGKILLed) and by
anyone running the feedback API alone. CONFIG holds FeedbackConfig fields, at the top level or under a
`feedback:` key. Metrics are served at `/metrics` on the same port. Prints one line `listening on
HOST:PORT` to stdout once it accepts connections (PORT is real even when configured as 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from llmobs.cli_support import (
    CliError,
    ensure_can_listen,
    example,
    one_line_errors,
    problems_message,
    validation_problems,
)

if TYPE_CHECKING:
    from llmobs.feedback.config import FeedbackConfig


def load_feedback_config(path: Path) -> FeedbackConfig:
    """Read a FeedbackConfig from YAML (top level, or a `feedback:` section); a CliError names what is wrong."""
    from pydantic import ValidationError

    from llmobs._yaml import load_yaml_file
    from llmobs.feedback.config import FeedbackConfig

    doc = load_yaml_file(path, "feedback config") or {}  # a YamlError is printed as is by one_line_errors
    if isinstance(doc, dict) and isinstance(doc.get("feedback"), dict):
        doc = doc["feedback"]
    if not isinstance(doc, dict):
        raise CliError(f"feedback config {path}: the top level must be a mapping of FeedbackConfig fields")
    try:
        return FeedbackConfig.model_validate(doc)
    except ValidationError as exc:
        raise CliError(problems_message(f"feedback config {path}", validation_problems(exc))) from None


async def _serve(config: FeedbackConfig) -> None:
    from prometheus_client.registry import CollectorRegistry

    from llmobs.feedback.server import serve_feedback

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)

    def announce(host: str, port: int) -> None:
        print(f"listening on {host}:{port}", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        await serve_feedback(config, CollectorRegistry(), None, metrics_on_api=True, on_listening=announce)


def register(app: typer.Typer) -> None:
    """Add `feedback` to the llmobs command."""

    @app.command("feedback", epilog=example("llmobs feedback --config feedback.yaml",
                                            "llmobs feedback --config llmobs.yaml --check-config"))
    @one_line_errors()
    def feedback(
        config: Path = typer.Option(..., "--config", "-c", help="YAML with FeedbackConfig fields (top level or "
                                                                "under feedback:), see docs/feedback.md"),
        check_config: bool = typer.Option(False, "--check-config", help="validate the config, the tokens file "
                                                                        "and the database path, then exit"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="traceback of an unexpected error"),
    ) -> None:
        """The feedback API alone: /v1/feedback, /healthz, /openapi.json and /metrics on one port."""
        from llmobs.feedback.checks import feedback_problems

        cfg = load_feedback_config(config)
        problems = feedback_problems(cfg)
        if problems:
            raise CliError(problems_message(f"feedback config {config}", problems))
        if check_config:
            typer.echo(f"feedback config OK: port {cfg.port}, database {cfg.db_path}")
            return
        ensure_can_listen("feedback API (port)", cfg.host, cfg.port)
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(message)s")
        asyncio.run(_serve(cfg))
