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


# --- the suite mirrors the package layout ----------------------------------------------------------------

SRC = REPO / "src" / "llmobs"
CROSS_CUTTING = {
    "cli": "the command lines and the config files they read (llmobs.cli, cli_support, config, the YAML loader)",
    "artifacts": "what ships beside the code: alert rules, dashboards, the Helm chart, the Dockerfile",
    "e2e": "a real Prometheus scraping a running exporter, end to end",
    "realvllm": "against a real vLLM server; the Makefile runs each module in its own process",
}
SUPPORT = {  # folders of helpers and data, holding no test modules
    "k8s": "a fake Kubernetes API server",
    "fixtures": "vLLM pages recorded from a real server",
    "corpus": "parser and fuzz inputs",
    "crd": "the Node validator of the chart's custom resources",
}


def _folders() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__"
                  and not any(part in SUPPORT or part == "node_modules" for part in p.relative_to(TESTS).parts))


def _llmobs_units(path: Path) -> set[str]:
    """The llmobs packages and top-level modules a test module imports (llmobs.serving.scaler -> serving)."""
    units = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    units |= {p.stem for p in SRC.glob("*.py")} - {"__init__"}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "llmobs":
            parts = node.module.split(".")
            found.update(parts[1:2] or [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("llmobs."))
    return found & units


def test_every_folder_is_a_package_or_a_named_cross_cutting_one() -> None:
    for folder in _folders():
        rel = folder.relative_to(TESTS)
        if rel.parts[0] in CROSS_CUTTING:
            continue
        assert (SRC / rel / "__init__.py").is_file(), f"tests/{rel} mirrors no llmobs package: move it or name it"
        assert (folder / "__init__.py").is_file(), f"tests/{rel} lacks __init__.py (tests is a package)"
    for name in SUPPORT:
        assert (TESTS / name).is_dir() and not list((TESTS / name).rglob("test_*.py")), name


def test_a_package_folder_holds_tests_of_that_package() -> None:
    """A test module in tests/<package>/ imports that package (itself or through a helper of its folder), or
    names it (a test that runs it in a subprocess, or checks its source files)."""
    wrong = []
    for path in sorted(TESTS.rglob("test_*.py")):
        rel = path.parent.relative_to(TESTS)
        if rel == Path(".") or rel.parts[0] in CROSS_CUTTING:
            continue
        package = ".".join(rel.parts)
        text = path.read_text(encoding="utf-8")
        helpers = [h for h in path.parent.glob("*.py") if not h.name.startswith(("test_", "__"))
                   and f"tests.{package}.{h.stem} import" in text]  # a helper of the folder that imports it
        units = _llmobs_units(path).union(*map(_llmobs_units, helpers))
        source = '"src" / "llmobs" / ' + " / ".join(f'"{p}"' for p in rel.parts)  # a check of its source
        if rel.parts[0] not in units and f"llmobs.{package}" not in text and source not in text:
            wrong.append(str(path.relative_to(REPO)))
    assert not wrong, f"these test no module of their folder's package: {wrong}"


def test_a_test_of_one_package_sits_in_its_folder() -> None:
    """A test module outside the package folders that imports a single llmobs package and nothing else of
    llmobs belongs in that package's folder."""
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    misplaced = []
    for path in sorted(TESTS.rglob("test_*.py")):
        rel = path.parent.relative_to(TESTS)
        if rel != Path(".") and rel.parts[0] not in CROSS_CUTTING:
            continue
        units = _llmobs_units(path)
        if len(units) == 1 and units <= packages:
            misplaced.append(f"{path.relative_to(REPO)} -> tests/{units.pop()}/")
    assert not misplaced, misplaced
