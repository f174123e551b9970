"""What one scrape of a door (a router or proxy in front of the replicas) says per model, whatever the door.

Why a reading of its own: a model scaled to zero has no replica and so no vLLM page, and its demand is
visible only where requests enter. Each door kind writes that demand under its own names and labels
(`door/vllm_router.py`, `door/litellm.py`, `door/gie_epp.py`); they all come out as these few numbers, so
everything after the parse (rates, the scaler, the exporter) is one code path.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from llmobs.sources.textformat import Sample

DROP_MISSING_MODEL = "missing_model"
"""A per-model series without its model label, on a door whose target names no `model` to put it under."""
DROP_BAD_VALUE = "bad_value"
"""A NaN, ±Inf or negative value where a count is expected."""
DROP_BAD_BUCKET = "bad_bucket"
"""A histogram bucket whose `le` is missing or not a number."""


@dataclass(frozen=True, slots=True)
class DoorHistogram:
    """A latency histogram as the door wrote it, summed over the model's series: cumulative counts at `bounds`
    (ascending, the last +Inf)."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    count: float
    sum: float


@dataclass(frozen=True, slots=True)
class DoorModelReading:
    """One model at one door, raw from the page. None where the door does not export the quantity.

    `arrivals` counts requests for the model the door has answered (served or refused); `rejected` the part it
    refused for want of a backend; `pending` the requests it holds right now without a backend's answer yet.
    Each door kind's module says which of its series each one reads."""

    arrivals: float | None = None
    rejected: float | None = None
    pending: float | None = None
    latency: DoorHistogram | None = None


@dataclass(frozen=True, slots=True)
class DoorReading:
    """A door page read: per door-side model name, and what could not be used (counted by reason)."""

    models: Mapping[str, DoorModelReading]
    dropped: Mapping[str, int] = field(default_factory=dict)
    recognised: bool = False  # the page holds at least one series this door kind exports


class ReadingBuilder:
    """Sums a door's series per model; what each kind's parser feeds, one family at a time."""

    def __init__(self, default_model: str | None) -> None:
        self.default_model = default_model
        self.dropped: defaultdict[str, int] = defaultdict(int)
        self.recognised = False
        self._sums: dict[str, dict[str, float]] = defaultdict(dict)
        self._buckets: dict[str, dict[float, float]] = defaultdict(dict)
        self._hist: dict[str, list[float]] = {}  # model -> [count, sum]

    def model_of(self, labels: Mapping[str, str], *label_names: str) -> str | None:
        """The door-side model a sample belongs to: the first non-empty of `label_names`, else the target's
        default model; None (counted) when neither names one."""
        for name in label_names:
            value = labels.get(name, "")
            if value and value != "None":
                return value
        if self.default_model:
            return self.default_model
        self.dropped[DROP_MISSING_MODEL] += 1
        return None

    def add(self, quantity: str, samples: Iterable[Sample], *label_names: str) -> None:
        """Add each sample's value to `quantity` of its model (`arrivals`, `rejected`, `pending`)."""
        for s in samples:
            self.recognised = True
            model = self.model_of(s.labels, *label_names)
            if model is None:
                continue
            if not (math.isfinite(s.value) and s.value >= 0):
                self.dropped[DROP_BAD_VALUE] += 1
                continue
            sums = self._sums[model]
            sums[quantity] = sums.get(quantity, 0.0) + s.value

    def add_histogram(self, family: str, samples: Iterable[Sample], *label_names: str) -> None:
        """Sum `family`'s `_bucket`, `_count` and `_sum` samples per model (other samples are ignored)."""
        bucket, count, total = family + "_bucket", family + "_count", family + "_sum"
        for s in samples:
            if s.name not in (bucket, count, total):
                continue
            self.recognised = True
            model = self.model_of(s.labels, *label_names)
            if model is None:
                continue
            if not (math.isfinite(s.value) and s.value >= 0) and s.name != total:
                self.dropped[DROP_BAD_VALUE] += 1
                continue
            if s.name == bucket:
                try:
                    le = float(s.labels.get("le", ""))
                except ValueError:
                    self.dropped[DROP_BAD_BUCKET] += 1
                    continue
                if math.isnan(le):
                    self.dropped[DROP_BAD_BUCKET] += 1
                    continue
                buckets = self._buckets[model]
                buckets[le] = buckets.get(le, 0.0) + s.value
            else:
                acc = self._hist.setdefault(model, [0.0, 0.0])
                acc[0 if s.name == count else 1] += s.value if math.isfinite(s.value) else 0.0

    def build(self) -> DoorReading:
        models: dict[str, DoorModelReading] = {}
        for model in sorted(set(self._sums) | set(self._buckets) | set(self._hist)):
            sums = self._sums.get(model, {})
            models[model] = DoorModelReading(sums.get("arrivals"), sums.get("rejected"), sums.get("pending"),
                                             self._histogram(model))
        return DoorReading(models, dict(self.dropped), self.recognised)

    def _histogram(self, model: str) -> DoorHistogram | None:
        buckets = self._buckets.get(model)
        if not buckets or math.inf not in buckets:
            return None
        bounds = tuple(sorted(buckets))
        count, total = self._hist.get(model, (buckets[math.inf], 0.0))
        return DoorHistogram(bounds, tuple(buckets[b] for b in bounds), count, total)


def by_name(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """The page's samples grouped by sample name."""
    out: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        out[s.name].append(s)
    return out
