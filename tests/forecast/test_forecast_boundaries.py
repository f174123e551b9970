"""The forecast package's I/O boundary, checked on the source: only demand.py reads files or HTTP.

Everything else (capacity math, forecasters, backtest, replay, recommendation, the live service) is
computed from values handed in, so it can be tested without files or servers and never blocks on I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

FORECAST = REPO / "src" / "llmobs" / "forecast"
IO_IMPORTS = {"httpx", "socket", "subprocess", "requests", "urllib", "aiohttp", "importlib.resources"}
IO_CALLS = {"open", "read_text", "read_bytes", "read_csv", "read_json", "urlopen"}


def _io_uses(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in IO_IMPORTS or a.name in IO_IMPORTS}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in IO_IMPORTS or node.module.split(".")[0] in {"httpx", "socket", "subprocess"}:
                found.add(node.module)
            if node.module == "importlib" and any(a.name == "resources" for a in node.names):
                found.add("importlib.resources")
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in IO_CALLS:
                found.add(f"{name}()")
    return found


def test_only_demand_reads_files_or_http() -> None:
    offenders = {
        p.name: uses for p in FORECAST.glob("*.py") if p.name != "demand.py" and (uses := _io_uses(p))
    }
    assert offenders == {}


def test_demand_is_where_the_reads_are() -> None:
    uses = _io_uses(FORECAST / "demand.py")
    assert {"httpx", "read_csv()", "read_text()"} <= uses
