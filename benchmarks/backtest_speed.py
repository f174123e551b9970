"""Speed of a 14-day rolling-origin backtest at 10-minute steps (target: < 30 s on 2 cores).

Usage: .venv/bin/python benchmarks/backtest_speed.py [--repeat 3]

The series is ServeGen m-small (2,016 ten-minute windows, data/traces). Every default forecaster
(last value, moving average, ARIMA(3,1,0), llmobs GBM, seasonal naive day and week) forecasts every
origin at one step (10 min) — what `llmobs forecast backtest --trace servegen… --step 10m` runs. The
figure is the median wall time over `--repeat` runs, including reading the trace.
Last line: `ratio: X` with X = 30 s ÷ measured (≥ 1 meets the target).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from llmobs.forecast.backtest import backtest
from llmobs.forecast.demand import DEFAULT_TRACE_DIR, read_trace

TARGET_S = 30.0


def main(argv: list[str] | None = None) -> int:
    """Time the backtest and print the figures, then `ratio: X`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    times = []
    result = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        series = read_trace(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv", 600)
        result = backtest(series, (1,))
        times.append(time.perf_counter() - t0)
    assert result is not None
    span_days = result.n_points * result.step_seconds / 86400
    print(f"series: {result.source}, {result.n_points} steps of {result.step_seconds:g}s ({span_days:.1f} days)")
    print(f"scored origins: {result.n_points - result.eval_start - 1} from step {result.eval_start}")
    for s in result.scores:
        print(f"  {s.forecaster:<22} WAPE {s.wape:.4f}  coverage q{result.quantile:g} {s.coverage:.3f}")
    print(f"best: {result.best}")
    print(f"wall times: {', '.join(f'{t:.2f}s' for t in times)}; median {statistics.median(times):.2f}s "
          f"(target < {TARGET_S:g}s)")
    print(f"ratio: {TARGET_S / statistics.median(times):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
