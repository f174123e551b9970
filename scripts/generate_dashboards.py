#!/usr/bin/env python3
"""Write dashboards/*.json and dashboards/layouts/*.svg from dashboards/build.py (knobs in alerts/config.py).

    .venv/bin/python scripts/generate_dashboards.py          # rewrite the committed files
    .venv/bin/python scripts/generate_dashboards.py --check  # exit 1 if they differ from the generator's
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboards.build import render, render_layouts  # noqa: E402
from scripts.generated_files import write_or_check  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return write_or_check({**render(), **render_layouts()}, ROOT / "dashboards", "scripts/generate_dashboards.py",
                          __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
