"""Write generated files, or with `--check` report which committed ones drifted from their generator.

Shared by the rule and dashboard generators (kubernetes-mixin's habit: CI regenerates and fails on a diff).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_or_check(files: Mapping[str, str], folder: Path, script: str, description: str,
                   argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--check", action="store_true", help="fail on drift instead of writing")
    args = ap.parse_args(argv)
    stale = []
    for name, text in files.items():
        path = folder / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date (run {script}): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
