"""Loads the NVML field catalogue (fields.yaml) into typed rows.

How each GPU field is read is data, not code (dcgm-exporter's habit): the reader interprets these rows.
Which series a row becomes (type, unit, labels, help) is the metric catalogue's row of the same name
(llmobs.metrics_catalogue), so nothing about the series is declared twice. pynvml constant names and
metric names are resolved here, at load, so a typo is a catalogue error in a test rather than a failed
scrape on a GPU node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import pynvml  # pure Python; loads no library until nvmlInit()

from llmobs._yaml import load_yaml_text
from llmobs.metrics_catalogue import metric as metric_spec

Kind = Literal["scalar", "bitmask", "field_values"]
_KINDS = ("scalar", "bitmask", "field_values")


class CatalogueError(ValueError):
    """The catalogue file is malformed (names the row and key)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One catalogue row: how to read a value from NVML and which series it becomes."""

    metric: str
    kind: Kind
    call: str = ""
    fallback: str = ""
    args: tuple[int, ...] = ()
    fallback_args: tuple[int, ...] | None = None  # None: the fallback takes `args`
    attr: str = ""
    scale: float = 1.0
    labels: tuple[tuple[str, str], ...] = ()
    label: str = ""
    bits: tuple[tuple[str, int], ...] = ()
    field_id: int = 0
    scope: Literal["link", "device"] = "link"
    mig: bool = False
    slow: bool = False

    @property
    def key(self) -> str:
        """Identity of the NVML query, for remembering NotSupported per device (rows can share one call)."""
        return f"{self.call}{self.args}"

    def attempts(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The (function, args) pairs to try in order: the call, then its fallback if any."""
        if not self.fallback:
            return ((self.call, self.args),)
        fallback_args = self.args if self.fallback_args is None else self.fallback_args
        return (self.call, self.args), (self.fallback, fallback_args)


@dataclass(frozen=True, slots=True)
class Catalogue:
    fields: tuple[FieldSpec, ...] = field(default_factory=tuple)

    def label_names(self, metric: str) -> tuple[str, ...]:
        """Extra label names of a metric (beyond the per-GPU ones), the same for all its rows."""
        for f in self.fields:
            if f.metric == metric:
                names = [k for k, _ in f.labels]
                if f.kind == "bitmask":
                    names.append(f.label)
                if f.kind == "field_values" and f.scope == "link":
                    names.append("link")
                return tuple(names)
        raise KeyError(metric)


def _const(name: Any, where: str) -> int:
    if isinstance(name, int):
        return name
    value = getattr(pynvml, str(name), None)
    if not isinstance(value, int):
        raise CatalogueError(f"{where}: {name!r} is not a pynvml constant")
    return value


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    """Validate and type the YAML document; raises CatalogueError naming the bad row."""
    rows = data.get("fields")
    if not isinstance(rows, list) or not rows:
        raise CatalogueError("catalogue: `fields` must be a non-empty list")
    out: list[FieldSpec] = []
    label_sets: dict[str, tuple[str, ...]] = {}
    for i, row in enumerate(rows):
        where = f"fields[{i}] ({row.get('metric', '?')})"
        kind = row.get("kind")
        if kind not in _KINDS:
            raise CatalogueError(f"{where}: kind must be one of {_KINDS}")
        metric = str(row.get("metric", ""))
        if not metric.startswith("llmobs_gpu_"):
            raise CatalogueError(f"{where}: metric must start with llmobs_gpu_")
        try:
            known = metric_spec(metric).name == metric
        except KeyError:
            known = False
        if not known:
            raise CatalogueError(f"{where}: {metric} is not in the metric catalogue (llmobs.metrics_catalogue)")
        call = str(row.get("call", ""))
        fallback = str(row.get("fallback", ""))
        for name in filter(None, (call, fallback)) if kind != "field_values" else ():
            if not callable(getattr(pynvml, name, None)):
                raise CatalogueError(f"{where}: {name!r} is not a pynvml function")
        if kind != "field_values" and not call:
            raise CatalogueError(f"{where}: `call` is required")
        spec = FieldSpec(
            metric=metric, kind=kind, call=call, fallback=fallback,
            args=tuple(_const(a, where) for a in row.get("args", ())),
            fallback_args=(None if row.get("fallback_args") is None
                           else tuple(_const(a, where) for a in row["fallback_args"])),
            attr=str(row.get("attr", "")), scale=float(row.get("scale", 1.0)),
            labels=tuple(sorted((str(k), str(v)) for k, v in (row.get("labels") or {}).items())),
            label=str(row.get("label", "")),
            bits=tuple((str(k), _const(v, where)) for k, v in (row.get("bits") or {}).items()),
            field_id=_const(row["field"], where) if kind == "field_values" else 0,
            scope=row.get("scope", "link"), mig=bool(row.get("mig", False)), slow=bool(row.get("slow", False)),
        )
        if spec.scope not in ("link", "device"):
            raise CatalogueError(f"{where}: scope must be link or device")
        if kind == "bitmask" and (not spec.label or not spec.bits):
            raise CatalogueError(f"{where}: bitmask rows need `label` and `bits`")
        names = tuple(k for k, _ in spec.labels)
        if label_sets.setdefault(metric, names) != names:
            raise CatalogueError(f"{where}: rows of {metric} must share label names")
        out.append(spec)
    return Catalogue(tuple(out))


def load_catalogue(text: str | None = None) -> Catalogue:
    """The packaged fields.yaml (or `text`, for tests)."""
    if text is None:
        text = resources.files("llmobs.sources.gpu").joinpath("fields.yaml").read_text()
    return parse_catalogue(load_yaml_text(text, "fields.yaml"))
