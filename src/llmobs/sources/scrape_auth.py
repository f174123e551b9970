"""Credentials a scrape sends: HTTP basic auth or a bearer token, as Prometheus' scrape config has them.

Secrets come from files (a mounted Kubernetes Secret) so that they stay out of the configuration, and
never from what llmobs shows: a target's URL, name, labels, the status page, the JSON API and the log
carry no credentials (`Target` moves any `user:pass@` of its URL here). A file is read when first
needed and again whenever its modification time or size changes (one `stat` per scrape, so a rotated
Secret is picked up at the next scrape without a restart); its content is stripped of surrounding
whitespace, as Prometheus does.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path


class CredentialsError(Exception):
    """A credentials file cannot be read; the message names the file, never its content."""


class SecretFile:
    """A file holding one secret, re-read when it changes."""

    __slots__ = ("_stamp", "_value", "path")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._value = ""

    def read(self) -> str:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._value = self.path.read_text("utf-8").strip()
                self._stamp = stamp
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise CredentialsError(f"cannot read credentials file {self.path}: {reason}") from None
        return self._value

    def __repr__(self) -> str:
        return f"SecretFile({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretFile) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


@dataclass(frozen=True, slots=True)
class ScrapeAuth:
    """How to authenticate to one target: basic auth (password inline, from the URL, or from a file) or a
    bearer token from a file. `repr` never shows a password."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: SecretFile | None = None
    bearer_token_file: SecretFile | None = None

    def header(self) -> str | None:
        """The `Authorization` header value for the next scrape (files re-read if they changed)."""
        if self.bearer_token_file is not None:
            return f"Bearer {self.bearer_token_file.read()}"
        if self.username is None:
            return None
        password = self.password_file.read() if self.password_file is not None else (self.password or "")
        pair = f"{self.username}:{password}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"
