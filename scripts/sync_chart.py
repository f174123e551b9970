#!/usr/bin/env python3
"""Copy the generated alert rules and dashboards into the Helm chart (exporters/helm/llmobs/files/).

Helm reads chart files only from inside the chart directory, and a packaged chart (.tgz) cannot carry
symlinks out of it, so the chart holds byte-for-byte copies made by this script — never by hand.
tests/artifacts/test_helm_chart.py runs `--check` and fails on any drift, so regenerating `alerts/` or `dashboards/`
without re-syncing is caught in CI.

    .venv/bin/python scripts/sync_chart.py          # rewrite the chart's copies
    .venv/bin/python scripts/sync_chart.py --check  # exit 1 if they differ from alerts/ and dashboards/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART_FILES = ROOT / "exporters" / "helm" / "llmobs" / "files"
SOURCES: dict[str, tuple[Path, str]] = {
    "alerts": (ROOT / "alerts", "llmobs-*.yaml"),
    "dashboards": (ROOT / "dashboards", "*.json"),
}


def expected() -> dict[Path, bytes]:
    """Every file the chart must hold, keyed by its path under the chart's files/ directory."""
    out: dict[Path, bytes] = {}
    for sub, (src, pattern) in SOURCES.items():
        for path in sorted(src.glob(pattern)):
            out[CHART_FILES / sub / path.name] = path.read_bytes()
    return out


def drift() -> list[str]:
    """Chart copies that are missing, stale, or no longer have a source (paths relative to the chart)."""
    want = expected()
    have = {p for sub in SOURCES for p in (CHART_FILES / sub).glob("*") if p.is_file()}
    stale = [p for p, data in want.items() if not p.exists() or p.read_bytes() != data]
    extra = sorted(have - set(want))
    return [str(p.relative_to(CHART_FILES.parent)) for p in [*stale, *extra]]


def sync() -> list[str]:
    """Write the copies and delete copies whose source is gone; returns what changed."""
    changed = drift()
    want = expected()
    for path, data in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    for sub in SOURCES:
        for path in (CHART_FILES / sub).glob("*"):
            if path.is_file() and path not in want:
                path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail on drift instead of writing")
    args = ap.parse_args(argv)
    if args.check:
        stale = drift()
        if stale:
            print("chart files out of date (run scripts/sync_chart.py): " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    for name in sync():
        print(f"synced {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
