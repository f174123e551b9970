"""Shared fixtures for the feedback tests: a config on tmp_path, a settable clock, an opened store and
an in-memory HTTP client (httpx's ASGI transport, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmobs.feedback import FeedbackConfig, FeedbackStore, TokenVerifier, create_app
from tests.feedback.feedback_helpers import TOKENS, Clock, open_store


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
