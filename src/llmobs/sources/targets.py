"""Where to scrape: the target source seam.

The pipeline asks a `TargetSource` for the current targets every cycle, so a static YAML list and
Kubernetes pod discovery (`sources/kubernetes/`) plug in the same way and targets may come and go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from llmobs.sources.scrape_auth import ScrapeAuth


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` without its `user:password@` part, and the (percent-decoded) user and password it held."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user), unquote(password) if colon else None


def redact_url(url: str) -> str:
    """`url` fit to show or log: without any `user:password@` part."""
    return split_credentials(url)[0]


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    """The vLLM scheduler limits of a target, where configured (`max_num_seqs`, `max_num_batched_tokens` in the
    target's config). vLLM's /metrics does not publish them; without them the batch and prefill saturation
    ratios are unknown rather than guessed (llmobs.signals.saturation)."""

    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One vLLM replica. `name` becomes the `endpoint` label; `labels` may carry `node`, `gpu_model`.

    Credentials in `url` (`http://user:pass@host/metrics`) move to `auth` on construction, so the URL that
    the state, the status page, the JSON API and the log show never carries a password.
    """

    url: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    auth: ScrapeAuth | None = None
    # When the replica's pod was created and last turned Ready (Unix s; Kubernetes discovery sets them): the
    # start of a measured cold start. Not part of equality: a readiness flap is the same target.
    created_at: float | None = field(default=None, compare=False)
    ready_at: float | None = field(default=None, compare=False)
    scheduler: SchedulerLimits = SchedulerLimits()

    def __post_init__(self) -> None:
        clean, user, password = split_credentials(self.url)
        if user is None and password is None:
            return
        object.__setattr__(self, "url", clean)
        if self.auth is None:  # explicit credentials win over the URL's
            object.__setattr__(self, "auth", ScrapeAuth(username=user or "", password=password))

    def auth_header(self) -> str | None:
        """The `Authorization` header value the scrape sends, or None (reads credential files if changed)."""
        return None if self.auth is None else self.auth.header()

    @property
    def node(self) -> str:
        return self.labels.get("node", "")

    @property
    def gpu_model(self) -> str:
        return self.labels.get("gpu_model", self.labels.get("gpu", ""))


def default_target_name(url: str) -> str:
    """host:port of the URL: short, unique per replica, and what an SRE recognises (never its credentials)."""
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or redact_url(url)


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
