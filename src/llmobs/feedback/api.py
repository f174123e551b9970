"""The feedback ingestion HTTP API (ASGI, Starlette).

Order of checks is deliberate: authenticate before reading the body (an anonymous client cannot make us
buffer megabytes), enforce the size cap while streaming (a lying Content-Length cannot either), then
validate everything before storing anything (a batch is all-or-nothing, so a client retry is simple).
The response is sent only after the store committed the events.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmobs.feedback.auth import TokenVerifier, bearer_token
from llmobs.feedback.config import FeedbackConfig
from llmobs.feedback.models import BadRequest, StoredEvent, check_timestamp, parse_body
from llmobs.feedback.openapi import openapi_document
from llmobs.feedback.store import FeedbackStore, StoreClosed
from llmobs.serving.exposition import metrics_route

UNAUTHENTICATED_APP = "default"
"""App name given to events when `allow_unauthenticated` is on and the event names none."""


def _error(status: int, reason: str, detail: str, field: str | None = None, **headers: str) -> Response:
    body: dict[str, str] = {"error": reason, "detail": detail}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers or None)


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    """Read the body, refusing as soon as it passes `limit` bytes (whatever Content-Length said)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    config: FeedbackConfig,
    store: FeedbackStore,
    *,
    verifier: TokenVerifier | None = None,
    metrics_registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the ASGI app around an opened store. `verifier` is required unless auth is disabled.

    `metrics_registry`, when given, is also served at `/metrics` (standalone mode; inside `llmobs run`
    the exporter serves metrics on its own port).
    """
    if verifier is None and not config.allow_unauthenticated:
        raise ValueError("create_app needs a TokenVerifier unless allow_unauthenticated is set")
    stats = store.stats
    document = json.dumps(openapi_document()).encode()

    async def post_feedback(request: Request) -> Response:
        if verifier is not None:
            token = bearer_token(request.headers.get("authorization"))
            token_app = verifier.app_for(token) if token is not None else None
            if token_app is None:
                stats.add_rejected("unauthenticated")
                detail = "missing bearer token" if token is None else "invalid bearer token"
                challenge = 'Bearer realm="llmobs-feedback"'
                if token is not None:
                    challenge += ', error="invalid_token"'
                return _error(401, "unauthenticated", detail, **{"WWW-Authenticate": challenge})
        else:
            token_app = None
        try:
            raw = await _read_capped(request, config.max_body_bytes)
        except _TooLarge:
            stats.add_rejected("too_large")
            return _error(413, "too_large", f"body exceeds {config.max_body_bytes} bytes")
        except ClientDisconnect:
            return Response(status_code=400)
        now = clock()
        try:
            events, batched = parse_body(raw, config.max_batch)
            stored: list[StoredEvent] = []
            for i, ev in enumerate(events):
                index = i if batched else None
                check_timestamp(ev, index, now, config.max_future_skew_seconds, config.retention_seconds)
                app = ev.app if ev.app is not None else (token_app or UNAUTHENTICATED_APP)
                if token_app is not None and app != token_app:
                    field = "app" if index is None else f"events[{index}].app"
                    raise BadRequest("forbidden", field, f"{field}: token is not valid for app {app!r}", 403)
                stored.append(StoredEvent.from_event(ev, app, now))
        except BadRequest as exc:
            stats.add_rejected(exc.reason)
            return _error(exc.status, exc.reason, exc.detail, exc.field)
        try:
            result = await store.add(stored)
        except (StoreClosed, sqlite3.Error, OSError) as exc:
            stats.add_rejected("store_error")
            return _error(503, "store_error", f"not stored, retry: {exc}", **{"Retry-After": "1"})
        return JSONResponse({"accepted": result.accepted, "duplicates": result.duplicates})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    routes = [
        Route("/v1/feedback", post_feedback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    if metrics_registry is not None:
        routes.append(metrics_route(metrics_registry))
    return Starlette(routes=routes)
