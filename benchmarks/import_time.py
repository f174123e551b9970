"""Import time of the library: `import llmobs` and `import llmobs.config` against a bare interpreter.

Usage: .venv/bin/python benchmarks/import_time.py [--runs 30]

Each statement runs as `python -c STATEMENT` in a fresh interpreter (the same one running this script,
with its environment), `--runs` times, round-robin so that machine noise falls on all alike; the figure
is the median wall time. `import json` is the baseline: interpreter start plus one small stdlib import.

    above(x) = median(python -c x) − median(python -c "import json")

The target: `python -c "import llmobs"` under 150 ms, interpreter start included:

    ratio = 150 ms ÷ median(python -c "import llmobs")

≥ 1 means the target is met. The lines before it are diagnostics: the root config (`llmobs.config`:
the config models on pydantic and PyYAML, and no gRPC, OpenTelemetry, Kubernetes, uvicorn or pandas),
its floor (`import pydantic, yaml` alone), the exporter (`llmobs.runtime`) and the CLI.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_S = 0.150
STATEMENTS = ("import json", "import llmobs", "import pydantic, yaml", "import llmobs.config", "import llmobs.runtime",
              "import llmobs.cli")


def time_once(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    for statement in STATEMENTS:  # warm the page cache and byte-code once
        time_once(statement)
    samples: dict[str, list[float]] = {s: [] for s in STATEMENTS}
    for _ in range(args.runs):
        for statement in STATEMENTS:
            samples[statement].append(time_once(statement))
    median = {s: statistics.median(v) for s, v in samples.items()}
    base = median["import json"]
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median wall time of `python -c ...`")
    for statement in STATEMENTS:
        extra = "" if statement == "import json" else f"  ({(median[statement] - base) * 1000:+7.1f} ms above json)"
        print(f"  {statement:<22} {median[statement] * 1000:7.1f} ms{extra}")
    print(f"ratio: {TARGET_S / median['import llmobs']:.2f}")


if __name__ == "__main__":
    main()
