"""Helpers shared by the feedback tests (a module with a unique name, so it never collides with another
directory's conftest on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmobs.feedback import FeedbackConfig, FeedbackStats, FeedbackStore

TOKENS = {"chat": "tok-chat", "search": ["tok-s1", "tok-s2"], "batch": "tok-batch"}
CHAT = {"Authorization": "Bearer tok-chat"}


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(rid: str = "r1", **overrides: Any) -> dict[str, Any]:
    """A valid thumbs-up event, with overrides."""
    body: dict[str, Any] = {"request_id": rid, "model": "llama-8b", "scale": "thumbs", "rating": 1}
    body.update(overrides)
    return body


def open_store(config: FeedbackConfig, clock: Callable[[], float]) -> FeedbackStore:
    store = FeedbackStore(
        config.db_path,
        FeedbackStats(config),
        retention_seconds=config.retention_seconds,
        max_db_bytes=config.max_db_bytes,
        synchronous=config.synchronous,
        clock=clock,
    )
    store.open()
    return store
