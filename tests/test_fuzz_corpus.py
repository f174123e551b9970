"""Replays the fuzz regression corpus (tests/corpus/fuzz/<target>/) through the checks the atheris
harnesses run (fuzz/checks.py), so a finding fixed once stays fixed without running a fuzzer in CI.

Each file is one input that once crashed a target or reached new coverage; new findings are added by
copying the minimised crash input there (docs/scaling.md, Fuzzing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.checks import check_config, check_feedback, check_textformat
from tests.conftest import REPO

CORPUS = REPO / "tests" / "corpus" / "fuzz"
CHECKS: dict[str, Callable[[bytes], None]] = {
    "textformat": check_textformat, "config": check_config, "feedback": check_feedback,
}
FILES = sorted(p for p in CORPUS.glob("*/*") if p.is_file())


def test_every_target_has_a_corpus_and_no_file_is_large() -> None:
    """A corpus that is empty tests nothing; a large one bloats the repo (keep inputs minimised)."""
    for target in CHECKS:
        assert any(p.parent.name == target for p in FILES), f"no corpus for {target}"
    assert {p.parent.name for p in FILES} <= set(CHECKS)
    assert all(p.stat().st_size <= 64 * 1024 for p in FILES), [p.name for p in FILES if p.stat().st_size > 65536]
    assert sum(p.stat().st_size for p in FILES) <= 1024 * 1024


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_input_holds_the_contract(path: Path) -> None:
    CHECKS[path.parent.name](path.read_bytes())
