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


def test_an_emptied_or_broken_file_keeps_the_last_tokens_and_says_so(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """`echo ... > tokens.yaml` empties the file first: installing that empty set turned every app away (401)
    without a word; a broken file kept the last tokens but said nothing either."""
    f = tmp_path / "tokens.yaml"
    f.write_text("chat: tok\n")
    v = TokenVerifier(f, reload_seconds=0)
    for step, content in enumerate(("", "chat: [unterminated\n")):
        f.write_text(content)
        os.utime(f, (time.time() + 5 * (step + 1), time.time() + 5 * (step + 1)))
        with caplog.at_level("WARNING", logger="llmobs.feedback"):
            assert v.app_for("tok") == "chat" and v.app_for("tok") == "chat"
    warnings = [r.getMessage() for r in caplog.records if r.name == "llmobs.feedback"]
    assert len(warnings) == 2  # once per change of the file, not at every request
    assert "holds no tokens" in warnings[0] and "last good tokens stay in force" in warnings[0]


def test_one_token_under_two_apps_is_refused(tmp_path: Path) -> None:
    """Its posts were filed under whichever app came last."""
    f = tmp_path / "tokens.yaml"
    f.write_text("chat: same\nsearch: [other, same]\n")
    with pytest.raises(TokenError, match="apps 'chat' and 'search' share a token"):
        load_tokens(f)


@pytest.mark.parametrize("content", ["- a\n- b\n", "chat: 5\n", "chat: ''\n", "chat: [ok, 3]\n", "", "# none\n"])
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
