"""Standalone feedback server: `python -m llmobs.feedback CONFIG.yaml`.

Used by the durability test and the benchmark (a real separate process that can be SIGKILLed) and by
anyone running the feedback API on its own. CONFIG holds FeedbackConfig fields, at the top level or
under a `feedback:` key. Metrics are served at `/metrics` on the same port. Prints one line
`listening on HOST:PORT` to stdout once it accepts connections (PORT is real even when configured as 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from prometheus_client.registry import CollectorRegistry
from pydantic import ValidationError

from llmobs._yaml import YamlError, load_yaml_file
from llmobs.feedback.config import FeedbackConfig
from llmobs.feedback.server import serve_feedback


def load_config(path: Path) -> FeedbackConfig:
    """Read a FeedbackConfig from YAML (top level, or a `feedback:` section); bounded by llmobs._yaml."""
    doc = load_yaml_file(path, "feedback config") or {}
    if isinstance(doc, dict) and isinstance(doc.get("feedback"), dict):
        doc = doc["feedback"]
    return FeedbackConfig.model_validate(doc)


async def _main(config: FeedbackConfig) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)

    def announce(host: str, port: int) -> None:
        print(f"listening on {host}:{port}", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        await serve_feedback(config, CollectorRegistry(), None, metrics_on_api=True, on_listening=announce)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmobs.feedback", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="YAML file with FeedbackConfig fields")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        config = load_config(args.config)
    except (YamlError, ValidationError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    asyncio.run(_main(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
