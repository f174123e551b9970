"""Helpers shared by the feedback tests: tokens, a hand-moved clock, events, a store, and a served API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from llmobs.feedback import FeedbackConfig, FeedbackStats, FeedbackStore, serve_feedback

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


async def start(config: FeedbackConfig, registry: CollectorRegistry, served=None) -> tuple[asyncio.Task[None], str]:
    bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_feedback(config, registry, served, on_listening=lambda h, p: bound.set_result((h, p)))
    )
    host, port = await asyncio.wait_for(bound, 20)
    return task, f"http://{host}:{port}"


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
