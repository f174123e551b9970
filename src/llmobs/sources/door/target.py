"""One door to scrape: where its page is, what kind of door it is, and how its model names map to vLLM's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmobs.sources.targets import Target


@dataclass(frozen=True, slots=True)
class DoorTarget:
    """A door's page. `name` is the `door` label. `model` is the model a page without model labels serves
    (a vLLM router). `model_map` renames the door's model names to the replicas' served names (`model` label),
    so the door's demand and the replicas' signals join on one label; a name not in it is kept as is."""

    url: str
    name: str
    kind: str
    model: str | None = None
    model_map: Mapping[str, str] = field(default_factory=dict)
    target: Target | None = None  # how the scraper reaches it (credentials); built from url when None

    def scrape_target(self) -> Target:
        return self.target if self.target is not None else Target(self.url, self.name)

    def replica_model(self, door_model: str) -> str:
        """The `model` label of a door-side model name."""
        return self.model_map.get(door_model, door_model)
