#!/usr/bin/env python3
"""Write dashboards/*.json and dashboards/layouts/*.svg from dashboards/build.py (knobs in alerts/config.py).

    .venv/bin/python scripts/generate_dashboards.py          # rewrite the committed files
    .venv/bin/python scripts/generate_dashboards.py --check  # exit 1 if they differ from the generator's
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboards.build import render, render_layouts  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail on drift instead of writing")
    args = ap.parse_args(argv)
    stale = []
    for name, text in {**render(), **render_layouts()}.items():
        path = ROOT / "dashboards" / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run scripts/generate_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
