"""Fit the long-trace (fluid) mode's replica table from the request-level simulator and write it.

Usage: PYTHONPATH=src .venv/bin/python scripts/fit_fluid_model.py [--out PATH]

Runs one simulated replica (Llama-3.1-8B on H100, the bundled profile, 32k context) at every grid point of
`llmobs.simulate.fluid` (mean prompt × mean output × utilization) and writes the table the fluid mode loads
(src/llmobs/simulate/fluid_llama-3.1-8b-h100.json by default). Deterministic: the same code gives the same
table (tests/simulate/test_fluid.py refits a few points and compares). Takes a few minutes on one core.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from llmobs.simulate.fluid import TABLE_RESOURCE, bundled_fleet_config, fit_fluid_model

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "llmobs" / "simulate" / TABLE_RESOURCE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = fit_fluid_model(bundled_fleet_config(), progress=True)
    args.out.write_text(model.to_json())
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
