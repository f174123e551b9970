"""Splitting targets across N exporter replicas the way Prometheus does: `hashmod` of the target URL.

Why hashmod and not a home-made cluster: Prometheus users already shard scrapes with
`relabel_configs: [{action: hashmod, modulus: N}, {action: keep, regex: <i>}]`, and the same rule keeps
llmobs stateless — a replica needs only N and its own index, no peers, no coordination, no leader.
The assignment is a pure function of (URL, N), computed with md5 (never Python's salted `hash`), so
every replica, on any host and any Python, agrees on it: for a given N each target is scraped by exactly
one replica (no double counting) and by at least one (no gap). `hashmod` here is bit for bit
Prometheus' (`binary.BigEndian.Uint64(md5(s)[8:]) % N`, tests/sources/test_sharding_prometheus.py checks it
against the real binary), so an llmobs shard and a Prometheus shard with the same N hold the same targets.

The shard index comes from configuration, `LLMOBS_SHARD_INDEX`, or the ordinal of a StatefulSet pod's
hostname (`llmobs-2` → 2); see docs/scaling.md for how the scaler answers in a sharded deployment.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Mapping, Sequence

from llmobs.sources.targets import Target, TargetSource

__all__ = ["ShardedTargetSource", "hashmod", "resolve_shard_index", "shard_of"]

SHARD_INDEX_ENV = "LLMOBS_SHARD_INDEX"
_ORDINAL_RE = re.compile(r"-(\d+)\Z")


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' relabel `hashmod`: the last 8 bytes of md5(value), big-endian, modulo `modulus`."""
    if modulus < 1:
        raise ValueError(f"modulus must be >= 1, got {modulus}")
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def shard_of(target: Target, shards: int) -> int:
    """The shard that scrapes `target`: hashmod of its URL (unique per target, unlike its name)."""
    return hashmod(target.url, shards)


def resolve_shard_index(
    configured: int | None, shards: int, *, environ: Mapping[str, str] | None = None, hostname: str | None = None
) -> int:
    """This replica's index: the configured one, else `LLMOBS_SHARD_INDEX`, else the hostname's
    StatefulSet ordinal (`llmobs-3` → 3). Raises ValueError when none is found or it is out of range,
    because guessing would silently leave a shard unscraped or scrape one twice."""
    environ = os.environ if environ is None else environ
    if configured is not None:
        index, where = configured, "sharding.shard_index"
    elif environ.get(SHARD_INDEX_ENV, "").strip():
        raw = environ[SHARD_INDEX_ENV].strip()
        if not (raw.isascii() and raw.isdigit()):  # str.isdigit takes "²" (int() then raised) and "٣" (3)
            raise ValueError(f"{SHARD_INDEX_ENV}={raw!r} is not a non-negative integer")
        index, where = int(raw), SHARD_INDEX_ENV
    else:
        host = socket.gethostname() if hostname is None else hostname
        m = _ORDINAL_RE.search(host.split(".")[0])
        if m is None:
            raise ValueError(f"sharding: no shard_index, no {SHARD_INDEX_ENV} and hostname {host!r} has no "
                             "StatefulSet ordinal (name-<n>)")
        index, where = int(m.group(1)), f"hostname {host!r}"
    if not 0 <= index < shards:
        raise ValueError(f"sharding: shard index {index} (from {where}) is not in [0, {shards})")
    return index


class ShardedTargetSource:
    """The targets of `inner` that hash to `shard_index` out of `shards`; asks `inner` afresh every cycle,
    so discovered targets that come and go are split the same way."""

    def __init__(self, inner: TargetSource, shards: int, shard_index: int) -> None:
        if shards < 1 or not 0 <= shard_index < shards:
            raise ValueError(f"shard index {shard_index} is not in [0, {shards})")
        self.inner = inner
        self.shards = shards
        self.shard_index = shard_index

    def targets(self) -> Sequence[Target]:
        if self.shards == 1:
            return self.inner.targets()
        return [t for t in self.inner.targets() if shard_of(t, self.shards) == self.shard_index]
