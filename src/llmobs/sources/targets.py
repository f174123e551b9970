"""Where to scrape: the target source seam.

The pipeline asks a `TargetSource` for the current targets every cycle, so a static YAML list and
Kubernetes pod discovery (a later source) plug in the same way and targets may come and go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Target:
    """One vLLM replica. `name` becomes the `endpoint` label; `labels` may carry `node`, `gpu_model`."""

    url: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return self.labels.get("node", "")

    @property
    def gpu_model(self) -> str:
        return self.labels.get("gpu_model", self.labels.get("gpu", ""))


def default_target_name(url: str) -> str:
    """host:port of the URL: short, unique per replica, and what an SRE recognises."""
    parts = urlsplit(url)
    return parts.netloc or url


class TargetSource(Protocol):
    def targets(self) -> Sequence[Target]: ...


class StaticTargetSource:
    """Targets fixed by configuration."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self._targets = tuple(targets)

    def targets(self) -> Sequence[Target]:
        return self._targets


class CombinedTargetSource:
    """Several sources at once (static targets beside discovered pods); the first wins on a URL clash."""

    def __init__(self, sources: Sequence[TargetSource]) -> None:
        self._sources = tuple(sources)

    def targets(self) -> Sequence[Target]:
        seen: set[str] = set()
        out: list[Target] = []
        for source in self._sources:
            for t in source.targets():
                if t.url not in seen:
                    seen.add(t.url)
                    out.append(t)
        return out
