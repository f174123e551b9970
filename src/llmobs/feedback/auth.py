"""Bearer-token authentication: which app is posting.

Tokens come from a YAML/JSON file (`app: token` or `app: [token, token]` for rotation) or from a directory
holding one file per app (how Kubernetes mounts a Secret). The source is re-read when it changes, so a
rotated Secret takes effect without a restart. Comparison is constant-time and never stops early, so the
response time says nothing about which token, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from pathlib import Path

from llmobs._yaml import YamlError, load_yaml_file

log = logging.getLogger("llmobs.feedback")


class TokenError(Exception):
    """The token source cannot be read or is malformed."""


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    """One line: the OS's words for an OSError."""
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror or str(exc)


def load_tokens(path: Path) -> dict[str, list[str]]:
    """Read app → tokens from a mapping file or a Secret-style directory.

    A source with no token at all is an error, not an empty set: an emptied file is the first step of
    `echo ... > tokens.yaml`, and installing it would turn every app away (401) until the next write. One
    token under two apps is an error too: its posts would be filed under whichever app was listed last."""
    tokens = _read_tokens(path)
    if not tokens:
        raise TokenError(f"tokens file {path} holds no tokens: every post would be refused")
    owner: dict[str, str] = {}
    for app, values in tokens.items():
        for value in values:
            if owner.setdefault(value, app) != app:
                raise TokenError(f"tokens file {path}: apps {owner[value]!r} and {app!r} share a token; "
                                 "a post must say which app it is from")
    return tokens


def _read_tokens(path: Path) -> dict[str, list[str]]:
    tokens: dict[str, list[str]] = {}
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            # Kubernetes keeps `..data` and timestamped dirs next to the key symlinks: skip them.
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                value = entry.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise TokenError(f"cannot read token file {entry}: {_reason(exc)}") from exc
            if value:
                tokens[entry.name] = [value]
        return tokens
    try:
        doc = load_yaml_file(path, "tokens file")
    except YamlError as exc:
        raise TokenError(str(exc)) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise TokenError(f"tokens file {path} must map app names to a token or a list of tokens")
    for app, value in doc.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) and v for v in values):
            raise TokenError(f"tokens file {path}: app {app!r} needs non-empty string tokens")
        tokens[str(app)] = list(values)
    return tokens


def _source_stamp(path: Path) -> tuple[float, ...]:
    """A cheap fingerprint of the token source: mtimes of the file, or of the directory and its entries."""
    try:
        if path.is_dir():
            return (path.stat().st_mtime, *(e.stat().st_mtime for e in sorted(path.iterdir())))
        return (path.stat().st_mtime,)
    except OSError:
        return (-1.0,)


class TokenVerifier:
    """Maps a presented bearer token to its app, reloading the source when it changes."""

    def __init__(self, path: Path, reload_seconds: float = 5.0) -> None:
        self._path = path
        self._reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._stamp = _source_stamp(path)
        self._failed_stamp: tuple[float, ...] | None = None  # the source's stamp when a reload last failed
        self._digests = self._digest(load_tokens(path))
        self._checked = time.monotonic()

    @staticmethod
    def _digest(tokens: dict[str, list[str]]) -> list[tuple[bytes, str]]:
        """Hash tokens so every comparison is over equal-length values (compare_digest needs that)."""
        return [(hashlib.sha256(t.encode()).digest(), app) for app, ts in tokens.items() for t in ts]

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._reload_seconds:
            return
        with self._lock:
            self._checked = now
            stamp = _source_stamp(self._path)
            if stamp == self._stamp:
                return
            try:
                self._digests = self._digest(load_tokens(self._path))
                self._stamp = stamp
            except (OSError, TokenError) as exc:
                # Keep serving with the last good tokens; a half-written file must not lock everyone out. Said
                # once per change of the source: a rotated token that gets 401 otherwise has no explanation.
                if stamp != self._failed_stamp:
                    self._failed_stamp = stamp
                    reason = exc if isinstance(exc, TokenError) else (exc.strerror or exc)
                    log.warning("feedback tokens not reloaded, the last good tokens stay in force: %s", reason)

    @property
    def apps(self) -> set[str]:
        """Apps that currently hold at least one token."""
        return {app for _, app in self._digests}

    def app_for(self, token: str) -> str | None:
        """The app owning `token`, or None. Compares against every token, without early exit."""
        self._maybe_reload()
        presented = hashlib.sha256(token.encode()).digest()
        found: str | None = None
        for digest, app in self._digests:
            if hmac.compare_digest(presented, digest):
                found = app
        return found


def bearer_token(header: str | None) -> str | None:
    """Extract the token from an `Authorization: Bearer <token>` header value."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
