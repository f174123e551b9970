"""Token sources (file, rotation lists, Kubernetes Secret directories), reload, header parsing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from llmobs.feedback.auth import TokenError, TokenVerifier, bearer_token, load_tokens


def test_file_with_single_and_rotating_tokens(tmp_path: Path) -> None:
    f = tmp_path / "tokens.yaml"
    f.write_text("chat: tok-a\nsearch: [tok-b, tok-c]\n")
    v = TokenVerifier(f)
    assert v.app_for("tok-a") == "chat"
    assert v.app_for("tok-b") == v.app_for("tok-c") == "search"
    assert v.app_for("tok-") is None
    assert v.app_for("tok-a ") is None
    assert v.app_for("") is None
    assert v.apps == {"chat", "search"}


def test_kubernetes_secret_directory(tmp_path: Path) -> None:
    """A mounted Secret: one file per key (symlinks into a timestamped dir) plus `..data`; values are tokens."""
    real = tmp_path / "..2026_11_30"
    real.mkdir()
    (real / "chat").write_text("tok-chat\n")
    (real / "search").write_text("tok-search")
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "chat").symlink_to(Path("..data") / "chat")
    (tmp_path / "search").symlink_to(Path("..data") / "search")
    assert load_tokens(tmp_path) == {"chat": ["tok-chat"], "search": ["tok-search"]}
    v = TokenVerifier(tmp_path)
    assert v.app_for("tok-chat") == "chat"


def test_reload_on_change_and_keep_last_good(tmp_path: Path) -> None:
    f = tmp_path / "tokens.yaml"
    f.write_text("chat: old\n")
    v = TokenVerifier(f, reload_seconds=0)
    assert v.app_for("old") == "chat"
    f.write_text("chat: new\n")
    os.utime(f, (time.time() + 5, time.time() + 5))
    assert v.app_for("new") == "chat"
    assert v.app_for("old") is None
    f.write_text("chat: [unterminated\n")  # half-written file: keep serving the last good tokens
    os.utime(f, (time.time() + 10, time.time() + 10))
    assert v.app_for("new") == "chat"


@pytest.mark.parametrize("content", ["- a\n- b\n", "chat: 5\n", "chat: ''\n", "chat: [ok, 3]\n"])
def test_malformed_token_files_are_refused(tmp_path: Path, content: str) -> None:
    f = tmp_path / "tokens.yaml"
    f.write_text(content)
    with pytest.raises(TokenError):
        TokenVerifier(f)


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("", None), ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None)],
)
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
