"""The status page's view of the autoscaling story beyond the scrape: demand at the doors, what the HPA did,
pods Ready, and which limit binds each endpoint. Read-only adapters over the state and the Kubernetes chain
watch; nothing here imports the Kubernetes client (the watch is handed in as callables)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from llmobs.serving.statuspage.history import ModelExtras
from llmobs.signals.types import ModelEndpointSignals
from llmobs.state import FleetState

__all__ = ["ChainReading", "bottleneck_label", "scaling_extras"]


class _Hpa(Protocol):
    @property
    def current(self) -> int | None: ...


class _Chain(Protocol):
    @property
    def model(self) -> str: ...

    @property
    def hpa(self) -> _Hpa | None: ...


class _PodCount(Protocol):
    @property
    def ready(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class ChainReading:
    """Where the HPA and pod counts come from (llmobs.sources.kubernetes: `AutoscalerWatch.chains`,
    `KubernetesTargetSource.pod_counts`); None when that watch is off."""

    chains: Callable[[], Iterable[_Chain]] | None = None
    pod_counts: Callable[[], Mapping[str, _PodCount]] | None = None


def bottleneck_label(s: ModelEndpointSignals) -> str | None:
    """`kv 87 %` for the limit that binds, `none`, or `unknown: <why>` (the inputs it lacks, e.g.
    `max_num_seqs_unknown`: what to configure); None when not computed."""
    sat = s.saturation
    if sat is None:
        return None
    if sat.bottleneck == "unknown":
        return "unknown: " + ", ".join(sat.unknown) if sat.unknown else "unknown"
    if sat.bottleneck == "none" or not math.isfinite(sat.binding_ratio):
        return sat.bottleneck
    return f"{sat.bottleneck} {sat.binding_ratio * 100:.0f} %"


def scaling_extras(current: Callable[[], FleetState], base: Callable[[str], ModelExtras],
                   chain: ChainReading) -> Callable[[str], ModelExtras]:
    """The model history's door demand (requests/s arriving at every door for the model), the HPA's current
    replicas (the largest over the model's ScaledObjects) and Ready pods, over `base` (the forecast's columns:
    llmobs' desired replicas stay the `desired` line, so the chart reads llmobs → HPA → Ready); each left as
    `base` has it when its source is absent. The chain is read once per published state, not once per model."""
    memo: dict[str, object] = {"time": None}

    def per_state() -> tuple[dict[str, int | None], Mapping[str, _PodCount]]:
        state = current()
        if memo["time"] != state.time:
            hpas: dict[str, int | None] = {}
            for c in chain.chains() if chain.chains is not None else ():
                if c.hpa is not None:
                    hpas[c.model] = _max(hpas.get(c.model), c.hpa.current)
            memo.update(time=state.time, hpas=hpas,
                        pods=chain.pod_counts() if chain.pod_counts is not None else {})
        return memo["hpas"], memo["pods"]  # type: ignore[return-value]  # set together just above

    def extras(model: str) -> ModelExtras:
        e = base(model)
        doors = current().doors_for_model(model)
        if doors:
            e = dataclasses.replace(e, door=sum(d.request_rate for d in doors))
        hpas, pods = per_state()
        cur = hpas.get(model)
        if cur is not None:
            e = dataclasses.replace(e, current=float(cur))
        count = pods.get(model)
        if count is not None:
            e = dataclasses.replace(e, ready=float(count.ready))
        return e

    return extras


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
