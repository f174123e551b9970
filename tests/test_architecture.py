"""The design card's one-way arrow, checked on the import graph: sources → signals → serving/forecast.

Signals are pure (no network, file or process I/O); sources never import serving or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "llmobs"
IO_MODULES = {"httpx", "socket", "subprocess", "requests", "urllib", "aiohttp", "sqlite3", "uvicorn", "starlette",
              "grpc", "prometheus_client", "llmobs.serving", "llmobs.sources.scrape", "llmobs.pipeline",
              "llmobs.runtime", "llmobs.cli"}


def imports_of(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (SRC / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        out[str(path.relative_to(SRC))] = names
    return out


def _hits(names: set[str], forbidden: set[str]) -> set[str]:
    return {n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)}


def test_signals_do_no_io() -> None:
    for module, names in imports_of("signals").items():
        assert not _hits(names, IO_MODULES), f"signals/{module} imports I/O: {_hits(names, IO_MODULES)}"


def test_sources_never_import_serving_or_cli() -> None:
    forbidden = {"llmobs.serving", "llmobs.cli", "llmobs.runtime", "llmobs.forecast", "llmobs.signals.derive"}
    for module, names in imports_of("sources").items():
        assert not _hits(names, forbidden), f"{module}: {_hits(names, forbidden)}"
