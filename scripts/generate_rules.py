#!/usr/bin/env python3
"""Write alerts/llmobs-recording-rules.yaml and alerts/llmobs-alerts.yaml from alerts/config.py.

    .venv/bin/python scripts/generate_rules.py          # rewrite the committed files
    .venv/bin/python scripts/generate_rules.py --check  # exit 1 if they differ from the generator's
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.rules import render  # noqa: E402
from scripts.generated_files import write_or_check  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return write_or_check(render(), ROOT / "alerts", "scripts/generate_rules.py", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
