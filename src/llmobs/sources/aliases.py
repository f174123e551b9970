"""Loads the vLLM alias table (`vllm_aliases.yaml`) into lookup structures the normalizer uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from llmobs._yaml import load_yaml_text

Kind = Literal["gauge", "counter", "histogram", "info"]


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    canonical: str
    kind: Kind
    names: tuple[str, ...]
    by: str | None = None
    combine: Literal["sum", "mean"] = "sum"


@dataclass(frozen=True, slots=True)
class AliasTable:
    specs: tuple[SeriesSpec, ...]
    expected: tuple[str, ...]

    def by_canonical(self) -> dict[str, SeriesSpec]:
        return {s.canonical: s for s in self.specs}


def parse_alias_table(document: Mapping[str, Any]) -> AliasTable:
    """Validate and build an alias table from its YAML document (raises ValueError naming the problem)."""
    specs: list[SeriesSpec] = []
    for canonical, body in (document.get("series") or {}).items():
        kind = body.get("kind")
        if kind not in ("gauge", "counter", "histogram", "info"):
            raise ValueError(f"alias table: series {canonical!r} has unknown kind {kind!r}")
        names = tuple(body.get("names") or ())
        if not names:
            raise ValueError(f"alias table: series {canonical!r} lists no names")
        combine = body.get("combine", "sum")
        if combine not in ("sum", "mean"):
            raise ValueError(f"alias table: series {canonical!r} has unknown combine {combine!r}")
        specs.append(SeriesSpec(canonical, kind, names, body.get("by"), combine))
    known = {s.canonical for s in specs}
    expected = tuple(document.get("expected") or ())
    unknown = [e for e in expected if e not in known]
    if unknown:
        raise ValueError(f"alias table: expected series not defined: {unknown}")
    return AliasTable(tuple(specs), expected)


@cache
def default_alias_table() -> AliasTable:
    text = resources.files("llmobs.sources").joinpath("vllm_aliases.yaml").read_text("utf-8")
    return parse_alias_table(load_yaml_text(text, "vllm_aliases.yaml"))
