"""Turns one parsed vLLM page into llmobs' canonical, version-independent view of an endpoint.

Why a separate stage: vLLM renamed its metrics across releases (`gpu_cache_usage_perc` became
`kv_cache_usage_perc`, `time_per_output_token_seconds` became `inter_token_latency_seconds`, ...).
Everything downstream speaks only the canonical names of `vllm_aliases.yaml`; a new vLLM release is
an edit to that table, not to the signal code. Data-parallel ranks (`engine` label) are combined
here so one endpoint is one row. Histogram buckets are taken from the page, never assumed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import add as _plus
from operator import eq
from typing import Protocol

from llmobs.sources.aliases import AliasTable, SeriesSpec, default_alias_table
from llmobs.sources.textformat import ParsedPage, Sample

MODEL_LABEL = "model_name"


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative bucket counts as on the page: `bounds` ascending, the last one +Inf."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    sum: float
    count: float


@dataclass(slots=True)
class ModelScrape:
    """The canonical series of one model on one endpoint at one scrape."""

    # canonical -> sub-key (value of the spec's `by` label, "" when none) -> value
    gauges: dict[str, dict[str, float]] = field(default_factory=dict)
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    histograms: dict[str, HistogramSnapshot] = field(default_factory=dict)
    kv_capacity_tokens: float | None = None
    lora_running: int = 0
    lora_waiting: int = 0
    lora_max: int | None = None  # the `max_lora` label (--max-loras); None without LoRA or the label

    def gauge(self, canonical: str, default: float = math.nan) -> float:
        values = self.gauges.get(canonical)
        return sum(values.values()) if values else default

    def counter(self, canonical: str) -> float | None:
        values = self.counters.get(canonical)
        return sum(values.values()) if values else None


@dataclass(slots=True)
class EndpointScrape:
    time: float
    models: dict[str, ModelScrape]
    missing: tuple[str, ...]
    # samples the cardinality guard refused, by reason (`llmobs_series_dropped_total{reason}`)
    dropped: dict[str, int] = field(default_factory=dict)
    # The page names more models than the guard's per-target cap: nothing of it was used (`models` empty).
    over_model_limit: bool = False


# Reasons for `llmobs_series_dropped_total{reason}`.
DROP_SERIES_LIMIT = "series_limit"
DROP_MODEL_LIMIT = "model_limit"
DROP_LABEL_VALUE_LIMIT = "label_value_limit"
DROP_IMPLAUSIBLE = "implausible"
"""A value not believed: here a NaN gauge, counter or bucket (skipped); the tracker adds counters that fell
a little without a restart, ±Inf and negative values, KV usage outside 0–1 (`llmobs.signals.counters`)."""
DROP_BAD_BUCKET = "bad_bucket"
"""A histogram bucket whose `le` is missing or not a number, or every bucket of a histogram without its +Inf
bucket (quantiles of it would be guesses): the histogram reads as absent rather than wrong."""


class ModelAdmission(Protocol):
    """Decides whether a model may be tracked for an endpoint (the fleet-wide `signals.max_models` cap)."""

    def admit(self, model: str, owner: str) -> bool: ...


class LabelValueBudget:
    """Per-target cap on distinct values of each label llmobs keeps apart (`le` and the alias table's `by`).

    Why: a buggy or hostile target that writes a fresh `finished_reason` (or `le`) per request would
    otherwise grow llmobs' per-endpoint state and its exported series without bound. Values are admitted
    first come, first served and remembered across scrapes, so a steady target's values keep their slots
    and a churning label cannot push them out. Dropping some `le` buckets of a cumulative histogram leaves
    a coarser but still valid histogram (quantiles stay correct at the kept bounds); `le="+Inf"` is never
    dropped, since a histogram is unusable without it.
    """

    __slots__ = ("_admitted", "max_values")

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._admitted: dict[str, set[str]] = {}

    def admitted(self, label: str) -> set[str]:
        """The live set of admitted values of `label` (read-only for callers): a membership test on it is
        the fast path; :meth:`admit` is needed only for a value not in it."""
        values = self._admitted.get(label)
        if values is None:
            values = self._admitted[label] = set()
        return values

    def admit(self, label: str, value: str) -> bool:
        values = self._admitted.get(label)
        if values is None:
            values = self._admitted[label] = set()
        if value in values:
            return True
        if len(values) >= self.max_values:
            return False
        values.add(value)
        return True


@dataclass(slots=True)
class SampleGuard:
    """The cardinality limits applied to one target's page by :func:`normalize`.

    `models` is shared by all targets (a fleet-wide cap); `labels` and `max_models` (the per-target cap on
    distinct models, `scrape.max_models_per_target`) belong to this target. The per-target cap is checked
    before a model is offered to the fleet-wide one, so one target cannot take the whole fleet's budget.
    """

    owner: str
    labels: LabelValueBudget
    models: ModelAdmission | None = None
    max_models: int | None = None
    # The routing of this target's last page layout (see `normalize`'s `layout`), or None.
    plan: _Plan | None = None


def _resolve_names(table: AliasTable, present: set[str]) -> dict[str, SeriesSpec]:
    """Map each sample-name prefix that will be read to its spec, picking one alias per canonical."""
    chosen: dict[str, SeriesSpec] = {}
    for spec in table.specs:
        for name in spec.names:
            probe = (name + "_bucket", name + "_count") if spec.kind == "histogram" else (name,)
            if any(p in present for p in probe):
                chosen[name] = spec
                break
    return chosen


def _route(chosen: dict[str, SeriesSpec], name: str) -> tuple[SeriesSpec, str] | None:
    """The canonical series a sample name feeds, and its histogram suffix (`bucket`/`sum`/`count`, or "")."""
    spec = chosen.get(name)
    if spec is not None:
        return spec, ""
    base, _, suffix = name.rpartition("_")
    spec = chosen.get(base)
    if spec is None or spec.kind != "histogram" or suffix not in ("bucket", "sum", "count"):
        return None
    return spec, suffix


def _bucket_bound(le_raw: str | None, le_admitted: set[str], budget: LabelValueBudget | None,
                  dropped: Counter[str]) -> float | None:
    """A bucket's `le` as a number, or None when the sample is to be skipped: an `le` value over the label
    budget, a missing, unparseable or NaN one (each counted in `dropped`). +Inf is exempt from the budget: every
    histogram needs it, and it is one value."""
    if (budget is not None and le_raw is not None and le_raw not in le_admitted and le_raw != "+Inf"
            and not budget.admit("le", le_raw)):
        dropped[DROP_LABEL_VALUE_LIMIT] += 1
        return None
    try:
        le = float(le_raw) if le_raw is not None else math.nan
    except ValueError:
        le = math.nan
    if math.isnan(le):
        dropped[DROP_BAD_BUCKET] += 1
        return None
    return le


def _lora_counts(samples: Iterable[Sample]) -> tuple[int, int, int | None]:
    """`vllm:lora_requests_info`: the value is a timestamp; adapters are comma-joined label values, and
    `max_lora` the adapter slots (None when absent or not a non-negative integer: never a guessed number).

    vLLM emits one series per state change; the newest (largest timestamp value) is the current one.
    """
    newest: Sample | None = None
    for s in samples:
        if newest is None or s.value > newest.value:
            newest = s
    if newest is None:
        return 0, 0, None
    raw_max = newest.labels.get("max_lora", "").strip()
    lora_max = int(raw_max) if raw_max.isdecimal() else None

    def count(label: str) -> int:
        raw = newest.labels.get(label, "")
        return len({a.strip() for a in raw.split(",") if a.strip()})

    return count("running_lora_adapters"), count("waiting_lora_adapters"), lora_max


def _cache_capacity(samples: Iterable[Sample]) -> float | None:
    total = 0.0
    found = False
    for s in samples:
        try:
            blocks = float(s.labels.get("num_gpu_blocks", "nan"))
            block_size = float(s.labels.get("block_size", "nan"))
        except ValueError:
            continue
        if math.isfinite(blocks) and math.isfinite(block_size):
            total += blocks * block_size
            found = True
    return total if found else None


def normalize(
    samples: Iterable[Sample] | ParsedPage, time: float, table: AliasTable | None = None,
    guard: SampleGuard | None = None, layout: object | None = None,
) -> EndpointScrape:
    """Group samples by model and canonical series; combine engines; report missing expected series.

    With a `guard`, samples of models the fleet-wide cap refuses and samples whose `le` or `by` label
    value is over the per-label budget are dropped and counted in `EndpointScrape.dropped`; a page with
    more models than the guard's per-target cap is not used at all (`over_model_limit`). Only samples
    llmobs reads are checked: series it ignores cost nothing downstream, so they are not counted.

    The routing (which sample feeds which output value, :func:`_compile`) is the one set of rules; it is
    then evaluated on the page's values (:meth:`_Plan.run`). `layout` (with a `guard`): a token that is the
    same object exactly when `samples` are the same series in the same order as on an earlier call
    (`ParsedPage.layout`). Which sample goes where depends only on the series (on a NaN-free page, with
    no model refused), so the routing of a layout is kept in the guard and later pages only add up values.
    `samples` may be the `ParsedPage` itself: a warm page of a routed layout is then read without building
    its `Sample` objects.
    """
    table = table or default_alias_table()
    page: ParsedPage | list[Sample]
    sample_at: Callable[[int], Sample]
    if isinstance(samples, ParsedPage):  # its samples are only built if the page must be routed afresh
        page = samples
        values = page.values
        sample_at = page.sample
    else:
        page = samples if isinstance(samples, list) else list(samples)
        values = [s.value for s in page]
        sample_at = page.__getitem__
    nan_free = all(map(eq, values, values))  # NaN values are skipped, so they change the routing
    cacheable = guard is not None and layout is not None and nan_free
    plan = guard.plan if cacheable and guard is not None else None
    if plan is None or plan.layout is not layout or plan.table is not table:
        plan = _compile(page.samples if isinstance(page, ParsedPage) else page, values, table, guard)
        if cacheable and guard is not None:
            guard.plan = plan if plan.reusable else None
            plan.layout = layout
    return plan.run(sample_at, values, time)


def _finish(models: dict[str, ModelScrape], info: dict[tuple[str, str], list[Sample]],
            chosen: dict[str, SeriesSpec], table: AliasTable, time: float, dropped: Mapping[str, int]
            ) -> EndpointScrape:
    """The part of `normalize` after the samples are summed: info series, unlabelled series, missing."""
    for (model, c), rows in info.items():
        if c == "cache_config":
            models[model].kv_capacity_tokens = _cache_capacity(rows)
        elif c == "lora_requests":
            ms = models[model]
            ms.lora_running, ms.lora_waiting, ms.lora_max = _lora_counts(rows)

    # cache_config_info carries no model_name label in vLLM: attach it to the endpoint's models.
    unlabelled = models.pop("", None)
    if unlabelled is not None:
        for ms in models.values():
            if ms.kv_capacity_tokens is None:
                ms.kv_capacity_tokens = unlabelled.kv_capacity_tokens
            if not ms.lora_running and not ms.lora_waiting:
                ms.lora_running, ms.lora_waiting = unlabelled.lora_running, unlabelled.lora_waiting
            if ms.lora_max is None:
                ms.lora_max = unlabelled.lora_max
        if not models and (unlabelled.gauges or unlabelled.counters or unlabelled.histograms):
            models[""] = unlabelled

    found = {spec.canonical for spec in chosen.values()}
    missing = tuple(c for c in table.expected if c not in found)
    return EndpointScrape(time=time, models=models, missing=missing, dropped=dict(dropped))



# Histogram bound tuples are the same on every scrape and, for a model, on every replica: one shared tuple
# per layout instead of one per scrape, per target and per window point. Bounded like the parser's pools.
_BOUNDS_MAX = 10_000
_bounds_pool: dict[tuple[float, ...], tuple[float, ...]] = {}


def _shared_bounds(bounds: tuple[float, ...]) -> tuple[float, ...]:
    shared = _bounds_pool.get(bounds)
    if shared is None:
        if len(_bounds_pool) >= _BOUNDS_MAX:
            _bounds_pool.clear()
        shared = _bounds_pool[bounds] = bounds
    return shared


def _add(values: list[float], idxs: tuple[int, ...]) -> float:
    """0.0 + values[i] + ... in sample order: exactly the loop's accumulation."""
    acc = 0.0
    for i in idxs:
        acc += values[i]
    return acc


@dataclass(slots=True)
class _ModelPlan:
    # canonical -> sub -> sample indices, in first-seen order (as the loop inserts them)
    gauges: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    counters: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    means: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)
    # canonical -> (bounds, per-bound indices, sum indices or None, count indices or None)
    histograms: dict[str, tuple[tuple[float, ...], tuple[tuple[int, ...], ...], tuple[int, ...] | None,
                                tuple[int, ...] | None]] = field(default_factory=dict)
    # The usual histogram (one engine): its buckets are consecutive lines of the page, one sample per bound,
    # so they are one slice of the values. canonical -> (bounds, first index, n zeros, sum and count indices).
    # Added to n zeros in C, they are the same `0.0 + value` the general path computes.
    runs: dict[str, tuple[tuple[float, ...], int, tuple[float, ...], tuple[int, ...] | None,
                          tuple[int, ...] | None]] = field(default_factory=dict)
    info: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class _Plan:
    """`normalize`'s routing of one page: per model, for each output value, the indices of the samples
    summed into it (in page order, so the sums are the same floating-point additions whatever the values).

    `reusable`: the routing depends on the series alone, so it holds for any NaN-free page of the same
    layout: no model was refused (admission to the fleet-wide cap may change later) and the page was not
    over the per-target model cap. Label-value budget refusals are permanent (a budget only grows), so
    they are counted again on each run."""

    table: AliasTable
    chosen: dict[str, SeriesSpec]
    models: dict[str, _ModelPlan]
    dropped: dict[str, int]
    reusable: bool
    over_model_limit: bool = False
    layout: object | None = None

    def run(self, sample_at: Callable[[int], Sample], values: list[float], time: float) -> EndpointScrape:
        if self.over_model_limit:
            return EndpointScrape(time=time, models={}, missing=(), dropped=dict(self.dropped),
                                  over_model_limit=True)
        models: dict[str, ModelScrape] = {}
        info: dict[tuple[str, str], list[Sample]] = {}
        for model, mp in self.models.items():
            ms = models[model] = ModelScrape()
            for c, subs in mp.gauges.items():
                ms.gauges[c] = {sub: _add(values, idxs) for sub, idxs in subs.items()}
            for c, subs in mp.counters.items():
                ms.counters[c] = {sub: _add(values, idxs) for sub, idxs in subs.items()}
            for c, (bounds, start, zeros, sum_idxs, count_idxs) in mp.runs.items():
                cumulative = tuple(map(_plus, zeros, values[start:start + len(zeros)]))
                ms.histograms[c] = HistogramSnapshot(
                    bounds, cumulative, math.nan if sum_idxs is None else _add(values, sum_idxs),
                    cumulative[-1] if count_idxs is None else _add(values, count_idxs))
            for c, (bounds, per_bound, sum_idxs, count_idxs) in mp.histograms.items():
                cumulative = tuple([_add(values, idxs) for idxs in per_bound])
                ms.histograms[c] = HistogramSnapshot(
                    bounds, cumulative, math.nan if sum_idxs is None else _add(values, sum_idxs),
                    cumulative[-1] if count_idxs is None else _add(values, count_idxs))
            for c, idxs in mp.info.items():
                info[(model, c)] = [sample_at(i) for i in idxs]
        for model, mp in self.models.items():  # mean-combined gauges after the summed ones
            for (c, sub), idxs in mp.means.items():
                models[model].gauges.setdefault(c, {})[sub] = sum([values[i] for i in idxs]) / len(idxs)
        return _finish(models, info, self.chosen, self.table, time, self.dropped)


def _compile(samples: list[Sample], values: list[float], table: AliasTable, guard: SampleGuard | None) -> _Plan:
    """Route every sample of a page: the rules of `normalize`, applied once per layout.

    A sample is skipped when its name is not a chosen alias, when its model is refused (counted), when its
    `le` or `by` label value is over the budget or its `le` unreadable (counted), and when its value is NaN
    (counted as implausible; except for a histogram's `_sum`/`_count` and info series, whose NaN stays
    visible). Buckets are summed per bound across engines; a histogram without a +Inf bound is left out
    and its buckets counted (quantiles would be guesses)."""
    dropped: Counter[str] = Counter()
    budget = guard.labels if guard is not None else None
    le_admitted = budget.admitted("le") if budget is not None else set()
    admission = guard.models if guard is not None else None
    cap = guard.max_models if guard is not None else None
    chosen = _resolve_names(table, {s.name for s in samples})
    plans: dict[str, _ModelPlan] = {}
    refused: set[str] = set()
    labelled = 0  # distinct named models on this page, admitted or refused
    buckets: dict[tuple[str, str], dict[float, list[int]]] = {}
    sums: dict[tuple[str, str], list[int]] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    gauges: dict[tuple[str, str, str], list[int]] = {}
    counters: dict[tuple[str, str, str], list[int]] = {}
    means: dict[tuple[str, str, str], list[int]] = {}
    info: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        route = _route(chosen, s.name)
        if route is None:
            continue
        spec, suffix = route
        model = s.labels.get(MODEL_LABEL, "")
        if model not in plans:
            if model in refused:
                dropped[DROP_MODEL_LIMIT] += 1
                continue
            if model:
                if cap is not None and labelled >= cap:
                    return _Plan(table, chosen, {}, dict(dropped), reusable=False, over_model_limit=True)
                labelled += 1
                if admission is not None and guard is not None and not admission.admit(model, guard.owner):
                    refused.add(model)
                    dropped[DROP_MODEL_LIMIT] += 1
                    continue
            plans[model] = _ModelPlan()
        c = spec.canonical
        if spec.kind == "histogram":
            key = (model, c)
            if suffix == "bucket":
                le = _bucket_bound(s.labels.get("le"), le_admitted, budget, dropped)
                if le is None:
                    continue
                if math.isnan(values[i]):
                    dropped[DROP_IMPLAUSIBLE] += 1
                    continue
                buckets.setdefault(key, {}).setdefault(le, []).append(i)
            elif suffix == "sum":
                sums.setdefault(key, []).append(i)
            else:
                counts.setdefault(key, []).append(i)
            continue
        if spec.kind == "info":
            info.setdefault((model, c), []).append(i)
            continue
        if math.isnan(values[i]):
            dropped[DROP_IMPLAUSIBLE] += 1
            continue
        sub = s.labels.get(spec.by, "") if spec.by else ""
        if sub and budget is not None and spec.by and not budget.admit(spec.by, sub):
            dropped[DROP_LABEL_VALUE_LIMIT] += 1
            continue
        if spec.kind == "gauge" and spec.combine == "mean":
            means.setdefault((model, c, sub), []).append(i)
        else:
            (gauges if spec.kind == "gauge" else counters).setdefault((model, c, sub), []).append(i)
    for (model, c, sub), idxs in gauges.items():
        plans[model].gauges.setdefault(c, {})[sub] = tuple(idxs)
    for (model, c, sub), idxs in counters.items():
        plans[model].counters.setdefault(c, {})[sub] = tuple(idxs)
    for (model, c, sub), idxs in means.items():
        plans[model].means[(c, sub)] = tuple(idxs)
    for key, per_le in buckets.items():
        model, c = key
        bounds = _shared_bounds(tuple(sorted(per_le)))
        if not math.isinf(bounds[-1]):  # a histogram without its +Inf bucket is not usable for quantiles
            dropped[DROP_BAD_BUCKET] += sum(map(len, per_le.values()))
            continue
        per_bound = tuple(tuple(per_le[b]) for b in bounds)
        sum_idxs = tuple(sums[key]) if key in sums else None
        count_idxs = tuple(counts[key]) if key in counts else None
        first = per_bound[0][0]
        if all(len(idxs) == 1 and idxs[0] == first + k for k, idxs in enumerate(per_bound)):
            plans[model].runs[c] = (bounds, first, (0.0,) * len(bounds), sum_idxs, count_idxs)
        else:
            plans[model].histograms[c] = (bounds, per_bound, sum_idxs, count_idxs)
    for (model, c), idxs in info.items():
        plans[model].info[c] = tuple(idxs)
    return _Plan(table, chosen, plans, dict(dropped), reusable=not refused)
