"""`python -m llmobs.feedback CONFIG.yaml`: the same as `llmobs feedback --config CONFIG.yaml`.

Kept for the scripts and tests that start the standalone server this way; everything (options, errors,
the `listening on HOST:PORT` line) comes from the `llmobs feedback` command, registered here on an app of
its own (this package sits below `llmobs.cli` in the layer order, so it does not import it).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import typer

    from llmobs.cli_support import run_app
    from llmobs.feedback.cli import register

    app = typer.Typer(add_completion=False)
    app.callback()(lambda: None)  # a group, so the command keeps its name: `llmobs feedback ...`
    register(app)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        args = ["--config", *args]  # the old positional CONFIG
    return run_app(app, ["feedback", *args])


if __name__ == "__main__":
    sys.exit(main())
