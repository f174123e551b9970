"""Door sources: the metrics pages of what requests pass through before a replica (a router, a proxy, an
endpoint picker), read into one per-model `DoorReading` whatever the door.

A model scaled to zero has no vLLM page, so the only place its demand shows is the door. `DOOR_KINDS` maps each
supported `kind` of a `doors:` target to its parser; each parser's module cites where its names come from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmobs.sources.door.gie_epp import read_gie_epp
from llmobs.sources.door.litellm import read_litellm
from llmobs.sources.door.reading import (
    DROP_MISSING_MODEL,
    DoorHistogram,
    DoorModelReading,
    DoorReading,
)
from llmobs.sources.door.target import DoorTarget
from llmobs.sources.door.vllm_router import read_vllm_router
from llmobs.sources.textformat import Sample

DoorParser = Callable[[Sequence[Sample], "str | None"], DoorReading]

DOOR_KINDS: dict[str, DoorParser] = {
    "vllm-router": read_vllm_router,
    "litellm": read_litellm,
    "gie-epp": read_gie_epp,
}


def read_door(kind: str, samples: Sequence[Sample], default_model: str | None = None) -> DoorReading:
    """Read a door page of `kind`; ValueError for a kind llmobs does not know (config validation names them)."""
    parser = DOOR_KINDS.get(kind)
    if parser is None:
        raise ValueError(f"unknown door kind {kind!r}; one of {', '.join(DOOR_KINDS)}")
    return parser(samples, default_model)


__all__ = ["DOOR_KINDS", "DROP_MISSING_MODEL", "DoorHistogram", "DoorModelReading", "DoorParser", "DoorReading",
           "DoorTarget", "read_door"]
