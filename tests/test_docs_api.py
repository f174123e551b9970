"""docs/api.md's and README.md's Python examples run as written: each ```python block in a fresh interpreter,
from the repository root. A user copies these first; a broken one is a broken front door."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ROOT = REPO
DOC = ROOT / "docs" / "api.md"
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks(path: Path) -> list[tuple[str, str]]:
    """(the heading above the block, its code) for each ```python block of `path`."""
    text = path.read_text()
    out = []
    for match in BLOCK.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.MULTILINE)
        out.append((f"{path.name}: {headings[-1] if headings else 'top'}", match.group(1)))
    return out


BLOCKS = _blocks(DOC)


def test_the_doc_has_an_example_for_each_part_of_the_api() -> None:
    code = "\n".join(block for _, block in BLOCKS)
    for name in ("parse_page", "SignalTracker", "load_config_text", "load_config", "Exporter", "metric", "METRICS"):
        assert f"llmobs.{name}" in code, f"docs/api.md has no example using llmobs.{name}"
    assert all("assert " in block for _, block in BLOCKS), "every example asserts what it shows"


EXAMPLES = BLOCKS + _blocks(README)


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[heading for heading, _ in EXAMPLES])
def test_example_runs(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
