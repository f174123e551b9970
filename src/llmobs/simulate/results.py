"""Per-request outcomes of a simulation and the measures the autoscaling comparison is made of."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class PartMeasures:
    """What one part of a run (a time range) gave, as users judge a scaling policy: the share of the requests
    arriving in it that met the SLO, and the GPU time spent in it to get that.

    `requests`: arrivals in the part; `met`: those that finished with TTFT and TPOT within the SLO (rejected
    and unfinished requests are missed); `gpu_hours`: GPU time of every replica (starting, ready or
    draining) overlapping the part; `scale_events`: replica-count changes decided in the part."""

    start: float
    end: float
    requests: int
    met: int
    gpu_hours: float
    scale_events: int

    @property
    def attainment(self) -> float:
        return self.met / self.requests if self.requests else math.nan

    @property
    def goodput_per_gpu_hour(self) -> float:
        """Requests that met the SLO per GPU-hour spent in the part."""
        return self.met / self.gpu_hours if self.gpu_hours > 0 else 0.0


@dataclass(frozen=True)
class SimulationResult:
    """One row per workload request (index = the workload's). Times are virtual seconds; -1 = never
    (a rejected request never starts; an unfinished one was still queued or running when the run ended).

    `rejected`: prompts vLLM would refuse (≥ max_model_len tokens); they count as missed in attainment.
    `gpu_seconds`: every replica from the decision that added it to the end of its drain (or of the run).
    `replica_spans`: those (added, ended) intervals, one per replica, so the GPU time of any part of the run
    can be told apart; `gpus_per_replica` turns replica time into GPU time.
    """

    arrival: np.ndarray
    first_token: np.ndarray
    finish: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    preemptions: np.ndarray
    replica: np.ndarray
    rejected: np.ndarray
    gpu_seconds: float
    end_time: float
    steps: int
    replica_timeline: tuple[tuple[float, int, int], ...] = ()  # (time, ready, starting) after each change
    notes: tuple[str, ...] = field(default_factory=tuple)
    replica_spans: tuple[tuple[float, float], ...] = ()
    gpus_per_replica: int = 1

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def finished(self) -> np.ndarray:
        return self.finish >= 0

    @property
    def unfinished(self) -> int:
        """Requests admitted but not finished when the run ended (neither finished nor rejected)."""
        return int((~self.finished & ~self.rejected).sum())

    @property
    def ttft(self) -> np.ndarray:
        """Seconds from arrival to the first token; NaN for requests without one."""
        return np.where(self.first_token >= 0, self.first_token - self.arrival, np.nan)

    @property
    def tpot(self) -> np.ndarray:
        """Seconds per output token after the first (vLLM's time_per_output_token); 0 for one-token outputs."""
        gaps = np.maximum(self.output - 1, 1)
        per = np.where(self.output > 1, (self.finish - self.first_token) / gaps, 0.0)
        return np.where(self.finished, per, np.nan)

    @property
    def e2e(self) -> np.ndarray:
        return np.where(self.finished, self.finish - self.arrival, np.nan)

    def met(self, ttft_s: float, tpot_s: float) -> np.ndarray:
        """Requests that finished with TTFT ≤ ttft_s and TPOT ≤ tpot_s."""
        with np.errstate(invalid="ignore"):
            return self.finished & (self.ttft <= ttft_s) & (self.tpot <= tpot_s)

    def attainment(self, ttft_s: float, tpot_s: float) -> float:
        """Share of all requests (rejected and unfinished ones included) that met both SLOs."""
        return float(self.met(ttft_s, tpot_s).mean()) if len(self) else float("nan")

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0

    def goodput_per_gpu_hour(self, ttft_s: float, tpot_s: float) -> float:
        """Requests that met both SLOs per GPU-hour spent."""
        return float(self.met(ttft_s, tpot_s).sum()) / self.gpu_hours if self.gpu_seconds > 0 else 0.0

    def gpu_seconds_between(self, start: float, end: float = math.inf) -> float:
        """GPU-seconds of every replica span overlapping [start, end): a part's share of `gpu_seconds`."""
        if not self.replica_spans and self.gpu_seconds > 0:
            raise ValueError("this result has no replica spans: the GPU time of a part cannot be told apart")
        total = sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.replica_spans)
        return total * self.gpus_per_replica

    def part(self, start: float, end: float, ttft_s: float, tpot_s: float) -> PartMeasures:
        """The measures of the requests arriving in [start, end) and of the GPU time spent in it (`end` =
        inf: to the end of the run, the drain after the last arrival included)."""
        inside = (self.arrival >= start) & (self.arrival < end)
        changes = sum(1 for t, *_ in self.replica_timeline[1:] if start <= t < end)
        return PartMeasures(start, end, int(inside.sum()), int((self.met(ttft_s, tpot_s) & inside).sum()),
                            self.gpu_seconds_between(start, end) / 3600.0, changes)
