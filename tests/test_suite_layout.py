"""The test suite's own rules: tests check what a user of llmobs can see, so no test reaches into private state
(an `_attribute` of an llmobs object, a `_name` imported from llmobs, or a private llmobs module). A helper
class in tests/ may use its own `self._x`."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

TESTS = REPO / "tests"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_reads(path: Path) -> list[str]:
    """Every place in `path` that reads private llmobs state, as `line: code`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "llmobs":
            names = [a.name for a in node.names]
            if any(map(_private, node.module.split("."))) or any(map(_private, names)):
                found.append(f"{node.lineno}: from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "llmobs" and any(map(_private, a.name.split(".")))]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_test_reads_private_state() -> None:
    offenders = {str(p.relative_to(REPO)): reads for p in sorted(TESTS.rglob("*.py"))
                 if (reads := private_reads(p))}
    assert not offenders, offenders


def test_the_check_finds_each_kind_of_private_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from llmobs._yaml import load\nfrom llmobs.pipeline import _round_robin\n"
                      "import llmobs._lazy\nhandle._workdir\nself._ok\nobj.__class__\nfrom os import _exit\n")
    assert [r.split(":")[0] for r in private_reads(sample)] == ["1", "2", "3", "4"]
