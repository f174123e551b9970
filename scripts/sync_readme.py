"""Copies docs/metrics.md into the README's metric reference section (the README is what a newcomer reads;
docs/metrics.md is the one file edited). `--check` exits 1 when the README is stale."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- metrics:begin (generated from docs/metrics.md by scripts/sync_readme.py; edit that file) -->"
END = "<!-- metrics:end -->"


def rendered() -> str:
    readme = (REPO / "README.md").read_text()
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    body = (REPO / "docs" / "metrics.md").read_text().split("\n", 1)[1].strip()  # drop its H1
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def main() -> int:
    new = rendered()
    if "--check" in sys.argv:
        if (REPO / "README.md").read_text() != new:
            print("README.md metric reference is stale: run python scripts/sync_readme.py", file=sys.stderr)
            return 1
        return 0
    (REPO / "README.md").write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
