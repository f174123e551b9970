"""Fit the long-trace (fluid) mode's replica table from the request-level simulator and write it.

Usage: PYTHONPATH=src .venv/bin/python scripts/fit_fluid_model.py [--out PATH] [--check]

Runs one simulated replica (Llama-3.1-8B on H100, the bundled profile, 32k context) at every grid point of
`llmobs.simulate.fluid` (mean prompt × mean output × utilization) and writes the table the fluid mode loads
(src/llmobs/simulate/fluid_llama-3.1-8b-h100.json by default). Deterministic: the same code gives the same
table. `--check` refits a few grid points and fails when the committed table differs (seconds, not minutes);
the full fit takes about four minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llmobs.simulate.fluid import TABLE_RESOURCE, bundled_fleet_config, check_table, fit_fluid_model, load_fluid_model

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "llmobs" / "simulate" / TABLE_RESOURCE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="refit a few points and compare with the table at --out")
    args = ap.parse_args()
    if args.check:
        config = bundled_fleet_config()
        drift = check_table(config, load_fluid_model(config, args.out))
        print("\n".join(drift) if drift else f"{args.out}: the refitted points match")
        sys.exit(1 if drift else 0)
    t0 = time.perf_counter()
    model = fit_fluid_model(bundled_fleet_config(), progress=True)
    args.out.write_text(model.to_json())
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
