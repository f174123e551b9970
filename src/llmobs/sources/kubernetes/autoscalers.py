"""Pure mapping from HorizontalPodAutoscaler, KEDA ScaledObject and pod JSON to one chain view per model.

Why: an autoscaler can pass every health check and do nothing (a label mismatch, a fallback that never
fires). llmobs recommends replicas; this view says what the HPA wants and has, whether the pods became
Ready, and what KEDA says about its ScaledObject, so alerts can check that the recommendation was acted on.

Field shapes are the ones the API server returns: `autoscaling/v2` HPA `status.desiredReplicas`,
`status.currentReplicas`, `status.lastScaleTime`, `status.conditions[]` (AbleToScale, ScalingActive,
ScalingLimited); KEDA `keda.sh/v1alpha1` ScaledObject `spec.triggers[]`, `status.hpaName`,
`status.conditions[]` (Ready, Active, Fallback, Paused, each type/status/reason/message) and `status.health`.
No I/O: table-tested on plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmobs.sources.kubernetes.pods import pod_ready, timestamp

RawObject = Mapping[str, Any]

LLMOBS_TRIGGER_TYPES = ("external", "external-push")
"""KEDA trigger types llmobs' scaler serves; their `metadata.model` names the model."""
KEDA_HPA_PREFIX = "keda-hpa-"
"""KEDA names the HPA it owns `keda-hpa-<ScaledObject name>` until `status.hpaName` says otherwise."""
CONDITION_STATUSES = ("True", "False", "Unknown")


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # True, False or Unknown, as written
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HpaView:
    """What one HPA wants and has."""

    namespace: str
    name: str
    desired: int | None
    current: int | None
    last_scale: float | None  # Unix seconds; None while it never scaled
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ScaledObjectView:
    namespace: str
    name: str
    models: tuple[str, ...]  # from llmobs triggers, in trigger order, deduplicated
    hpa_name: str
    conditions: tuple[Condition, ...]
    failing_triggers: int  # `status.health` entries whose status is not Happy

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ModelChain:
    """One (model, ScaledObject) link; `hpa` is None while the HPA KEDA should own does not exist."""

    model: str
    scaledobject: ScaledObjectView
    hpa: HpaView | None


@dataclass(frozen=True, slots=True)
class PodCount:
    total: int
    ready: int
    not_ready_since: float | None  # earliest time a non-Ready pod of the model stopped (or never was) Ready


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


def conditions(obj: RawObject) -> tuple[Condition, ...]:
    """`status.conditions` with a type and a status; malformed entries are skipped."""
    out = []
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and isinstance(c.get("type"), str) and c.get("status") in CONDITION_STATUSES:
            out.append(Condition(c["type"], c["status"], str(c.get("reason") or "")))
    return tuple(out)


def hpa_view(hpa: RawObject) -> HpaView:
    meta = hpa.get("metadata") or {}
    status = hpa.get("status") or {}
    return HpaView(namespace=meta.get("namespace", ""), name=meta.get("name", ""),
                   desired=_int(status.get("desiredReplicas")), current=_int(status.get("currentReplicas")),
                   last_scale=timestamp(status.get("lastScaleTime")), conditions=conditions(hpa))


def trigger_models(scaledobject: RawObject) -> tuple[str, ...]:
    """Models named by the ScaledObject's llmobs triggers (`external`/`external-push` with `metadata.model`)."""
    models: list[str] = []
    for trigger in (scaledobject.get("spec") or {}).get("triggers") or ():
        if not isinstance(trigger, Mapping) or trigger.get("type") not in LLMOBS_TRIGGER_TYPES:
            continue
        model = (trigger.get("metadata") or {}).get("model")
        if isinstance(model, str) and model.strip() and model.strip() not in models:
            models.append(model.strip())
    return tuple(models)


def scaledobject_view(scaledobject: RawObject) -> ScaledObjectView:
    meta = scaledobject.get("metadata") or {}
    status = scaledobject.get("status") or {}
    name = meta.get("name", "")
    health = status.get("health") or {}
    failing = sum(1 for h in health.values() if isinstance(h, Mapping) and h.get("status") not in (None, "Happy"))
    return ScaledObjectView(namespace=meta.get("namespace", ""), name=name, models=trigger_models(scaledobject),
                            hpa_name=status.get("hpaName") or f"{KEDA_HPA_PREFIX}{name}",
                            conditions=conditions(scaledobject), failing_triggers=failing)


def model_chains(scaledobjects: Iterable[RawObject], hpas: Iterable[RawObject]) -> list[ModelChain]:
    """Each llmobs-driven ScaledObject joined to the HPA it names (same namespace), once per model it names."""
    by_name = {(v.namespace, v.name): v for v in map(hpa_view, hpas)}
    chains: list[ModelChain] = []
    for so in map(scaledobject_view, scaledobjects):
        hpa = by_name.get((so.namespace, so.hpa_name))
        chains.extend(ModelChain(model, so, hpa) for model in so.models)
    return sorted(chains, key=lambda c: (c.model, c.scaledobject.key))


def not_ready_since(pod: RawObject) -> float | None:
    """When a non-Ready pod's Ready condition last changed (kubelet writes it on creation and on every flip),
    falling back to its creation time."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            when = timestamp(c.get("lastTransitionTime"))
            if when is not None:
                return when
    return timestamp((pod.get("metadata") or {}).get("creationTimestamp"))


def pod_counts(pods: Iterable[RawObject], model_label: str) -> dict[str, PodCount]:
    """Pods per model (label or annotation `model_label`), Ready or not; pods naming no model are skipped
    (discovery learns their model from the scrape, which a pod that is not Ready never answers)."""
    totals: dict[str, list[Any]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        model = (meta.get("labels") or {}).get(model_label) or (meta.get("annotations") or {}).get(model_label)
        if not model or meta.get("deletionTimestamp"):
            continue
        entry = totals.setdefault(model, [0, 0, None])
        entry[0] += 1
        if pod_ready(pod):
            entry[1] += 1
            continue
        since = not_ready_since(pod)
        if since is not None and (entry[2] is None or since < entry[2]):
            entry[2] = since
    return {m: PodCount(total, ready, since) for m, (total, ready, since) in sorted(totals.items())}
