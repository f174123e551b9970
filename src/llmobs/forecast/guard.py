"""Data-quality guard: when a forecast's input cannot be trusted, the policy falls back to its reactive floor.

A forecaster extrapolates whatever it is fed. Telemetry faults — a scrape gap, a window where only part
of the fleet was scraped, a NaN or negative sample, a one-off spike, an outage of llmobs or Prometheus,
a restart that emptied the history — feed it something that is not demand, and it plans replicas for
that. The guard looks at the recent window the forecaster reads and names the first fault it finds
(a bounded set of reasons, so it can be a metric label); while it names one, llmobs' policy uses only
its reactive floor (plain KEDA on the request rate at the reactive target), which is what a cluster
without llmobs would do anyway. So a fault can make the policy no better than reactive, never worse.

Reasons, checked in this order (the first that holds is reported):

* `stale`: the newest `stale_steps` buckets are all missing — the latest sample is older than that
  (an llmobs or Prometheus outage, or a scrape loop that stopped).
* `short_history`: fewer known samples than the forecaster needs (right after a restart, or after an
  outage that left too little of the recent history).
* `invalid_sample`: a ±Inf or negative request rate in the window (a counter reset mis-read, a bad
  sample); such samples are dropped from the replayed demand too.
* `gap`: a run of more than `gap_tolerance` consecutive missing buckets in the window (short runs are
  forward-filled, as Prometheus' `rate()` over a missed scrape would be).
* `partial_window`: some sample of the window is below `partial_ratio` (10 %) of the window's median.
  A fleet's aggregate request rate does not lose 90 % of its traffic between two buckets; a scrape that
  reached only part of the fleet, or a window the exporter saw half of, does. The forecaster would
  extrapolate that collapse (and keep it in its lags and moving averages after the rate returns), so the
  whole window that contains it is distrusted, not just the bucket.
* `outlier`: some sample of the window has a robust z-score (|x − median| ÷ (1.4826 · MAD)) above
  `outlier_z` and is also more than `outlier_ratio` × the median away from it (the second test keeps a
  near-constant series, whose MAD is tiny, from flagging ordinary noise).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from llmobs.forecast.errors import ForecastInputError

FALLBACK_REASONS = ("short_history", "stale", "invalid_sample", "gap", "partial_window", "outlier")


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Thresholds of the guard, in buckets of the forecast grid (see the module docstring for why)."""

    window: int = 30
    gap_tolerance: int = 2
    stale_steps: int = 3
    partial_ratio: float = 0.1
    outlier_z: float = 8.0
    outlier_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.window < 4:
            raise ForecastInputError(f"guard window {self.window} must be ≥ 4 buckets")
        if self.gap_tolerance < 0 or self.stale_steps < 1:
            raise ForecastInputError("gap tolerance must be ≥ 0 and stale steps ≥ 1")
        if not 0 <= self.partial_ratio < 1:
            raise ForecastInputError(f"partial ratio {self.partial_ratio} must be in [0, 1)")
        if self.outlier_z <= 0 or self.outlier_ratio < 0:
            raise ForecastInputError("outlier thresholds must be positive")


def assess(y: np.ndarray, need: int, config: GuardConfig | None = None, *, age_steps: float = 0.0) -> str:
    """Why the forecast made from history `y` (request rate per bucket, NaN = missing; the last bucket is
    now) must not be trusted, or '' when it can be.

    `need` is the history the forecaster needs (`Forecaster.required_history`; pass at least `need` +
`window` buckets so that a gap is not mistaken for a short history); `age_steps` is how many
    buckets have passed since the last bucket of `y` (the live path's clock; 0 in a replay).
    """
    cfg = config or GuardConfig()
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    w = y[-cfg.window:]
    missing = np.isnan(w)
    trailing = len(w) - (np.flatnonzero(~missing)[-1] + 1) if (~missing).any() else len(w)
    if len(y) and trailing + age_steps >= cfg.stale_steps:
        return "stale"
    if int(finite.sum()) < max(1, need):
        return "short_history"
    if np.isinf(w).any() or (w[~missing] < 0).any():
        return "invalid_sample"
    if _longest_run(missing) > cfg.gap_tolerance:
        return "gap"
    known = w[~missing]
    if known.size < 4:
        return ""
    med = float(np.median(known))
    if med > 0 and float(known.min()) < cfg.partial_ratio * med:
        return "partial_window"
    mad = float(np.median(np.abs(known - med))) * 1.4826
    dev = np.abs(known - med)
    if med > 0 and bool(np.any((dev > cfg.outlier_z * mad) & (dev > cfg.outlier_ratio * med))):
        return "outlier"
    return ""


def clean_rate(x: np.ndarray) -> np.ndarray:
    """A rate series with ±Inf and negative samples dropped (NaN = missing): they are never a rate, and a
    forecaster or KEDA fed one would plan replicas for it. The guard reads the raw series to count them."""
    out = np.asarray(x, dtype=float).copy()
    out[~np.isfinite(out) | (out < 0)] = np.nan
    return out


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in `mask`."""
    best = run = 0
    for m in mask:
        run = run + 1 if m else 0
        best = max(best, run)
    return best


class FallbackCounts(Counter[str]):
    """Fallbacks by reason (a `Counter`), with the share of decisions that fell back."""

    decisions: int = 0

    def record(self, reason: str) -> None:
        """Count one decision, and its fallback reason when it has one."""
        self.decisions += 1
        if reason:
            self[reason] += 1

    def to_dict(self) -> dict[str, int]:
        """Every reason (zeros included), in the documented order, for a stable JSON shape."""
        return {r: int(self.get(r, 0)) for r in FALLBACK_REASONS}

    @property
    def share(self) -> float:
        """Share of decisions made on the reactive floor alone."""
        return sum(self.values()) / self.decisions if self.decisions else math.nan
