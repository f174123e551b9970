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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import eq
from typing import Protocol

from llmobs.sources.aliases import AliasTable, SeriesSpec, default_alias_table
from llmobs.sources.textformat import Sample

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


# Reasons for `llmobs_series_dropped_total{reason}`.
DROP_SERIES_LIMIT = "series_limit"
DROP_MODEL_LIMIT = "model_limit"
DROP_LABEL_VALUE_LIMIT = "label_value_limit"


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

    `models` is shared by all targets (a fleet-wide cap); `labels` belongs to this target.
    """

    owner: str
    labels: LabelValueBudget
    models: ModelAdmission | None = None
    # The compiled routing of this target's last page layout (see `normalize`'s `layout`), or None.
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
    budget (counted in `dropped`), a missing, unparseable or NaN one. +Inf is exempt from the budget: every
    histogram needs it, and it is one value."""
    if (budget is not None and le_raw is not None and le_raw not in le_admitted and le_raw != "+Inf"
            and not budget.admit("le", le_raw)):
        dropped[DROP_LABEL_VALUE_LIMIT] += 1
        return None
    try:
        le = float(le_raw) if le_raw is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(le) else le


def _lora_counts(samples: Iterable[Sample]) -> tuple[int, int]:
    """`vllm:lora_requests_info`: the value is a timestamp; adapters are comma-joined label values.

    vLLM emits one series per state change; the newest (largest timestamp value) is the current one.
    """
    newest: Sample | None = None
    for s in samples:
        if newest is None or s.value > newest.value:
            newest = s
    if newest is None:
        return 0, 0

    def count(label: str) -> int:
        raw = newest.labels.get(label, "")
        return len({a.strip() for a in raw.split(",") if a.strip()})

    return count("running_lora_adapters"), count("waiting_lora_adapters")


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
    samples: Iterable[Sample], time: float, table: AliasTable | None = None, guard: SampleGuard | None = None,
    layout: object | None = None,
) -> EndpointScrape:
    """Group samples by model and canonical series; combine engines; report missing expected series.

    With a `guard`, samples of models the fleet-wide cap refuses and samples whose `le` or `by` label
    value is over the per-label budget are dropped and counted in `EndpointScrape.dropped`. Only samples
    llmobs reads are checked: series it ignores cost nothing downstream, so they are not counted.

    `layout` (with a `guard`): a token that is the same object exactly when `samples` are the same series
    in the same order as on an earlier call (`ParsedPage.layout`). Which sample goes where depends only
    on the series, so the routing is compiled once per layout (`_Plan`, kept in the guard) and later pages
    only add up values: the same result as the loop below (tested), at a fraction of its cost.
    """
    table = table or default_alias_table()
    samples = list(samples)
    if guard is not None and layout is not None:
        values = [s.value for s in samples]
        if all(map(eq, values, values)):  # no NaN: every route is fixed by the labels alone
            plan = guard.plan
            if plan is None or plan.layout is not layout or plan.table is not table:
                plan = guard.plan = _compile(samples, table, guard, layout)
            if plan is not None:
                return plan.run(samples, values, time)
    dropped: Counter[str] = Counter()
    refused: set[str] = set()
    budget = guard.labels if guard is not None else None
    le_admitted = budget.admitted("le") if budget is not None else set()
    admission = guard.models if guard is not None else None
    present = {s.name for s in samples}
    chosen = _resolve_names(table, present)

    models: dict[str, ModelScrape] = {}
    # (model, canonical, sub) -> list of values, for mean-combined gauges
    mean_parts: dict[tuple[str, str, str], list[float]] = {}
    # (model, canonical) -> le -> cumulative, and sums/counts
    hist_buckets: dict[tuple[str, str], dict[float, float]] = {}
    hist_sum: dict[tuple[str, str], float] = {}
    hist_count: dict[tuple[str, str], float] = {}
    info: dict[tuple[str, str], list[Sample]] = {}

    for s in samples:
        route = _route(chosen, s.name)
        if route is None:
            continue
        spec, suffix = route
        model = s.labels.get(MODEL_LABEL, "")
        ms = models.get(model)
        if ms is None:
            if model in refused:
                dropped[DROP_MODEL_LIMIT] += 1
                continue
            if model and admission is not None and guard is not None and not admission.admit(model, guard.owner):
                refused.add(model)
                dropped[DROP_MODEL_LIMIT] += 1
                continue
            ms = models[model] = ModelScrape()
        c = spec.canonical
        if spec.kind == "histogram":
            key = (model, c)
            if suffix == "bucket":
                le = _bucket_bound(s.labels.get("le"), le_admitted, budget, dropped)
                if le is None or math.isnan(s.value):
                    continue
                per_le = hist_buckets.setdefault(key, {})
                per_le[le] = per_le.get(le, 0.0) + s.value
            elif suffix == "sum":
                hist_sum[key] = hist_sum.get(key, 0.0) + s.value
            else:
                hist_count[key] = hist_count.get(key, 0.0) + s.value
            continue
        if spec.kind == "info":
            info.setdefault((model, c), []).append(s)
            continue
        if math.isnan(s.value):
            continue
        sub = s.labels.get(spec.by, "") if spec.by else ""
        if sub and budget is not None and spec.by and not budget.admit(spec.by, sub):
            dropped[DROP_LABEL_VALUE_LIMIT] += 1
            continue
        if spec.kind == "gauge" and spec.combine == "mean":
            mean_parts.setdefault((model, c, sub), []).append(s.value)
            continue
        target = ms.gauges if spec.kind == "gauge" else ms.counters
        per_sub = target.setdefault(c, {})
        per_sub[sub] = per_sub.get(sub, 0.0) + s.value

    for (model, c, sub), values in mean_parts.items():
        models[model].gauges.setdefault(c, {})[sub] = sum(values) / len(values)

    for key, per_le in hist_buckets.items():
        model, c = key
        bounds = _shared_bounds(tuple(sorted(per_le)))
        if not bounds or not math.isinf(bounds[-1]):
            continue  # a histogram without its +Inf bucket is not usable for quantiles
        cumulative = tuple(per_le[b] for b in bounds)
        models[model].histograms[c] = HistogramSnapshot(
            bounds, cumulative, hist_sum.get(key, math.nan), hist_count.get(key, cumulative[-1])
        )
    return _finish(models, info, chosen, table, time, dropped)


def _finish(models: dict[str, ModelScrape], info: dict[tuple[str, str], list[Sample]],
            chosen: dict[str, SeriesSpec], table: AliasTable, time: float, dropped: Mapping[str, int]
            ) -> EndpointScrape:
    """The part of `normalize` after the samples are summed: info series, unlabelled series, missing."""
    for (model, c), rows in info.items():
        if c == "cache_config":
            models[model].kv_capacity_tokens = _cache_capacity(rows)
        elif c == "lora_requests":
            models[model].lora_running, models[model].lora_waiting = _lora_counts(rows)

    # cache_config_info carries no model_name label in vLLM: attach it to the endpoint's models.
    unlabelled = models.pop("", None)
    if unlabelled is not None:
        for ms in models.values():
            if ms.kv_capacity_tokens is None:
                ms.kv_capacity_tokens = unlabelled.kv_capacity_tokens
            if not ms.lora_running and not ms.lora_waiting:
                ms.lora_running, ms.lora_waiting = unlabelled.lora_running, unlabelled.lora_waiting
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
    info: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class _Plan:
    """`normalize`'s routing of one page layout: for each output value, the indices of the samples summed
    into it. Compiled only from a NaN-free page with no refused model, and run only on NaN-free values, so
    that every decision the loop makes from values (skip NaN) or from shared state (model admission, which
    can change) is the same as at compile time; label-value budget refusals are permanent (a budget only
    grows), so they are counted again each run."""

    layout: object
    table: AliasTable
    chosen: dict[str, SeriesSpec]
    models: dict[str, _ModelPlan]
    dropped: dict[str, int]

    def run(self, samples: list[Sample], values: list[float], time: float) -> EndpointScrape:
        models: dict[str, ModelScrape] = {}
        info: dict[tuple[str, str], list[Sample]] = {}
        for model, mp in self.models.items():
            ms = models[model] = ModelScrape()
            for c, subs in mp.gauges.items():
                ms.gauges[c] = {sub: _add(values, idxs) for sub, idxs in subs.items()}
            for c, subs in mp.counters.items():
                ms.counters[c] = {sub: _add(values, idxs) for sub, idxs in subs.items()}
            for c, (bounds, per_bound, sum_idxs, count_idxs) in mp.histograms.items():
                cumulative = tuple([_add(values, idxs) for idxs in per_bound])
                ms.histograms[c] = HistogramSnapshot(
                    bounds, cumulative, math.nan if sum_idxs is None else _add(values, sum_idxs),
                    cumulative[-1] if count_idxs is None else _add(values, count_idxs))
            for c, idxs in mp.info.items():
                info[(model, c)] = [samples[i] for i in idxs]
        for model, mp in self.models.items():  # after all models, as the loop does
            for (c, sub), idxs in mp.means.items():
                models[model].gauges.setdefault(c, {})[sub] = sum([values[i] for i in idxs]) / len(idxs)
        return _finish(models, info, self.chosen, self.table, time, self.dropped)


def _compile(samples: list[Sample], table: AliasTable, guard: SampleGuard, layout: object) -> _Plan | None:
    """The routing `normalize`'s loop would follow for `samples` (NaN-free), with the same guard calls;
    None when a model was refused (admission may change later, so such a page is not compiled)."""
    dropped: Counter[str] = Counter()
    budget = guard.labels
    le_admitted = budget.admitted("le")
    admission = guard.models
    chosen = _resolve_names(table, {s.name for s in samples})
    plans: dict[str, _ModelPlan] = {}
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
            if model and admission is not None and not admission.admit(model, guard.owner):
                return None
            plans[model] = _ModelPlan()
        c = spec.canonical
        if spec.kind == "histogram":
            key = (model, c)
            if suffix == "bucket":
                le = _bucket_bound(s.labels.get("le"), le_admitted, budget, dropped)
                if le is None:
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
        sub = s.labels.get(spec.by, "") if spec.by else ""
        if sub and spec.by and not budget.admit(spec.by, sub):
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
        if not math.isinf(bounds[-1]):
            continue
        plans[model].histograms[c] = (bounds, tuple(tuple(per_le[b]) for b in bounds),
                                      tuple(sums[key]) if key in sums else None,
                                      tuple(counts[key]) if key in counts else None)
    for (model, c), idxs in info.items():
        plans[model].info[c] = tuple(idxs)
    return _Plan(layout, table, chosen, plans, dict(dropped))
