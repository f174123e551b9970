"""Shared fixtures for the feedback tests: a config on tmp_path, a settable clock, an opened store and
an in-memory HTTP client (httpx's ASGI transport, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmobs.feedback import FeedbackConfig, FeedbackStats, FeedbackStore, TokenVerifier, create_app

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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., FeedbackConfig]:
    def make(**overrides: Any) -> FeedbackConfig:
        tokens = tmp_path / "tokens.yaml"
        if not tokens.exists():
            import yaml

            tokens.write_text(yaml.safe_dump(TOKENS))
        fields: dict[str, Any] = {
            "enabled": True,
            "tokens_file": tokens,
            "allowed_apps": ["chat", "search"],
            "db_path": tmp_path / "feedback.db",
            "window_seconds": 600.0,
        }
        fields.update(overrides)
        return FeedbackConfig.model_validate(fields)

    return make


@pytest.fixture
def config(make_config: Callable[..., FeedbackConfig]) -> FeedbackConfig:
    return make_config()


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


@pytest.fixture
def store(config: FeedbackConfig, clock: Clock) -> Iterator[FeedbackStore]:
    s = open_store(config, clock)
    yield s
    s.close()


@pytest.fixture
async def client(config: FeedbackConfig, store: FeedbackStore, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    assert config.tokens_file is not None
    app = create_app(config, store, verifier=TokenVerifier(config.tokens_file), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://feedback") as c:
        yield c
