"""Fitting a `StepProfile` to timings measured on a real vLLM server: the arithmetic only, no I/O.

Why it is linear: each measurement is one timed stretch of engine steps whose make-up follows from the
request shapes and the engine settings (how many steps, which of them ran a prompt chunk, how many prompt
tokens, decoding sequences and KV tokens they held). A step's time is linear in the profile's coefficients,
so a sum of steps is too: every measurement is one row "features · coefficients = seconds", and the profile is
the least-squares solution with every coefficient ≥ 0 (a negative cost would be a fit of the noise).

Rows are weighted by 1 / measured seconds, so the fit minimises relative error: a 2 ms decode step and a
40 ms four-chunk prefill count alike, as they do in a TTFT or TPOT quantile.

The measurements `scripts/calibrate_profile.py` takes, and the rows they make:

* a lone request with max_tokens=1 on an idle server: its client TTFT is the API server's overhead plus the
  steps that prefill the prompt in chunks of `max_num_batched_tokens` (`prefill_observation`);
* N identical requests started together: while all N decode, each client's (E2E − TTFT)/(output − 1) is
  one decode step of N sequences reading N × (prompt + half the output) KV tokens on average
  (`decode_observation`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmobs.simulate.errors import SimulationInputError
from llmobs.simulate.profile import StepProfile

# The profile's coefficients, in the order of an observation's features.
FEATURES = ("fixed_s", "prefill_step_s", "prefill_token_s", "decode_seq_s", "kv_token_s", "request_overhead_s")
MIN_PER_FEATURE = 2  # observations per fitted coefficient, at least: fewer and the residuals say nothing


@dataclass(frozen=True, slots=True)
class Observation:
    """One measured stretch: `seconds` it took and the sum of each feature over its steps (FEATURES order)."""

    kind: str
    seconds: float
    features: tuple[float, ...]
    label: str = ""

    def __post_init__(self) -> None:
        if len(self.features) != len(FEATURES):
            raise SimulationInputError(f"observation {self.label or self.kind}: {len(self.features)} features, "
                                       f"expected {len(FEATURES)} ({', '.join(FEATURES)})")
        if not (isinstance(self.seconds, int | float) and math.isfinite(self.seconds) and self.seconds > 0):
            raise SimulationInputError(f"observation {self.label or self.kind}: measured {self.seconds!r} s; a "
                                       "timing must be a finite number of seconds > 0")
        for name, value in zip(FEATURES, self.features, strict=True):
            if not (math.isfinite(value) and value >= 0):
                raise SimulationInputError(f"observation {self.label or self.kind}: {name} count {value!r} must "
                                           "be finite and ≥ 0")


def _check_count(value: int, what: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SimulationInputError(f"{what} must be an integer ≥ {minimum}, not {value!r}")


def prefill_observation(prompt_tokens: int, ttft_s: float, max_num_batched_tokens: int) -> Observation:
    """A lone request (max_tokens=1, idle server): TTFT = request overhead + one step per prompt chunk, each
    chunk's step reading the KV of the chunks before it (as the simulator counts it)."""
    _check_count(prompt_tokens, "prompt tokens")
    _check_count(max_num_batched_tokens, "max_num_batched_tokens")
    chunks = -(-prompt_tokens // max_num_batched_tokens)
    context = max_num_batched_tokens * chunks * (chunks - 1) / 2  # Σ tokens computed before each chunk
    return Observation("prefill", ttft_s, (chunks, chunks, prompt_tokens, 0.0, context, 1.0),
                       f"prefill {prompt_tokens} tokens")


def decode_observation(batch: int, prompt_tokens: int, output_tokens: int, tpot_s: float) -> Observation:
    """`batch` identical requests decoding together: their TPOT is one decode step of `batch` sequences, whose
    KV holds the prompt plus, on average over the decode, half the output."""
    _check_count(batch, "batch")
    _check_count(prompt_tokens, "prompt tokens")
    _check_count(output_tokens, "output tokens", minimum=2)
    context = batch * (prompt_tokens + output_tokens / 2)
    return Observation("decode", tpot_s, (1.0, 0.0, 0.0, batch, context, 0.0),
                       f"decode {batch}×{prompt_tokens}+{output_tokens}")


@dataclass(frozen=True, slots=True)
class ProfileFit:
    """A fitted profile and how well it reproduces the measurements it came from."""

    profile: StepProfile
    observations: tuple[Observation, ...]
    predicted: tuple[float, ...]

    def relative_errors(self, kind: str | None = None) -> np.ndarray:
        """(predicted − measured) / measured, per observation (of one kind when given)."""
        rows = [(o.seconds, p) for o, p in zip(self.observations, self.predicted, strict=True)
                if kind is None or o.kind == kind]
        if not rows:
            return np.zeros(0)
        measured, predicted = np.array(rows).T
        return np.asarray((predicted - measured) / measured)

    def figures(self) -> dict[str, Any]:
        """The residual figures a profile YAML records under `fit:` (percent of the measured time)."""
        out: dict[str, Any] = {"observations": len(self.observations)}
        for kind in ["all", *sorted({o.kind for o in self.observations})]:
            errors = np.abs(self.relative_errors(None if kind == "all" else kind)) * 100
            out[kind] = {"count": int(errors.size),
                         "median_abs_error_pct": round(float(np.median(errors)), 1),
                         "max_abs_error_pct": round(float(errors.max()), 1)}
        return out


def _nonnegative_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min ‖a·x − b‖ with x ≥ 0, exactly: the best unconstrained solution over every subset of free columns
    whose solution is non-negative. With six coefficients that is at most 64 small solves, and it has no
    iteration to tune (scipy's nnls would do the same, but is not a dependency of llmobs)."""
    n = a.shape[1]
    best, best_cost = np.zeros(n), float(np.sum(b * b))
    for size in range(1, n + 1):
        for cols in itertools.combinations(range(n), size):
            sub = a[:, cols]
            x, *_ = np.linalg.lstsq(sub, b, rcond=None)
            if (x < 0).any():
                continue
            cost = float(np.sum((sub @ x - b) ** 2))
            if cost < best_cost - 1e-18:
                best = np.zeros(n)
                best[list(cols)] = x
                best_cost = cost
    return best


def fit_profile(observations: Iterable[Observation], *, name: str, source: str = "", gpu: str = "",
                model_config: Mapping[str, Any] | None = None) -> ProfileFit:
    """The non-negative, relative-error least-squares profile for these observations.

    A coefficient whose feature is 0 in every observation is not measured and stays 0. Refused with a
    `SimulationInputError`: fewer than two observations per measured coefficient, or measurements that cannot
    tell two coefficients apart (e.g. every decode probe at the same batch size and context)."""
    obs = tuple(observations)
    if not obs:
        raise SimulationInputError("no observations to fit a profile to")
    a = np.array([o.features for o in obs], dtype=float)
    b = np.array([o.seconds for o in obs], dtype=float)
    measured = [i for i in range(len(FEATURES)) if a[:, i].any()]
    if len(obs) < MIN_PER_FEATURE * len(measured):
        names = ", ".join(FEATURES[i] for i in measured)
        raise SimulationInputError(f"{len(obs)} observations cannot fit {len(measured)} coefficients ({names}): "
                                   f"take at least {MIN_PER_FEATURE * len(measured)}")
    weighted = a[:, measured] / b[:, None]
    scale = np.abs(weighted).max(axis=0)  # columns of similar size, for the rank test and the solve
    rank = np.linalg.matrix_rank(weighted / scale)
    if rank < len(measured):
        raise SimulationInputError(
            "the observations cannot separate the coefficients "
            f"{', '.join(FEATURES[i] for i in measured)}: vary the prompt lengths (with some longer than "
            "max_num_batched_tokens), the batch sizes and the prompt lengths of the decode probes")
    x = _nonnegative_lstsq(weighted / scale, np.ones(len(obs))) / scale
    coefficients = dict.fromkeys(FEATURES, 0.0)
    for i, value in zip(measured, x, strict=True):
        coefficients[FEATURES[i]] = float(value)
    profile = StepProfile(name=name, fixed_s=coefficients["fixed_s"], prefill_token_s=coefficients["prefill_token_s"],
                          decode_seq_s=coefficients["decode_seq_s"], kv_token_s=coefficients["kv_token_s"],
                          prefill_step_s=coefficients["prefill_step_s"],
                          request_overhead_s=coefficients["request_overhead_s"], gpu=gpu, source=source,
                          model_config=dict(model_config or {}))
    predicted = tuple(float(v) for v in a @ np.array([coefficients[f] for f in FEATURES]))
    return ProfileFit(profile, obs, predicted)


def profile_yaml(fit: ProfileFit, *, engine: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """The profile as a YAML document `load_profile` reads (the bundled profiles' format), with the engine
    settings it was measured under and the fit's residual figures; `header` lines become leading comments."""
    import yaml  # a core dependency; imported here because only writing a profile needs the dumper

    p = fit.profile
    body: dict[str, Any] = {"name": p.name}
    if p.gpu:
        body["gpu"] = p.gpu
    body["gpus_per_replica"] = p.gpus_per_replica
    for key in FEATURES:
        body[key] = float(f"{getattr(p, key):.4g}")
    body["source"] = p.source
    body["engine"] = dict(engine)
    body["fit"] = fit.figures()
    if p.model_config:
        body["model_config"] = dict(p.model_config)
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header)
    return comments + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=110)
