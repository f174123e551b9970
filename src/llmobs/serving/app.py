"""The exporter's HTTP surface: /metrics, /healthz, /api/v1/signals and the status page at / (statuspage).

Rendering /metrics walks every series, and the status page draws every endpoint's history; both run in a
worker thread so a large fleet never stalls the scrape loop sharing this event loop.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmobs.serving.exposition import metrics_route
from llmobs.serving.snapshot import state_to_json
from llmobs.serving.statuspage import StatusPage
from llmobs.state import StateHolder


def create_app(
    holder: StateHolder, registry: CollectorRegistry, *, max_state_age_seconds: float = 60.0,
    extra_routes: list[Route] | None = None, status_page: StatusPage | None = None,
) -> Starlette:
    """The exporter's app; `status_page` carries the page's sources (forecast, scaler, feedback), else a page
    of the scraped signals alone."""
    page = status_page if status_page is not None else StatusPage(holder)

    async def healthz(request: Request) -> Response:
        # Liveness of llmobs itself: the loop publishes state. Down targets do not make us unhealthy.
        age = time.time() - holder.current.time
        ok = age <= max_state_age_seconds
        return JSONResponse({"status": "ok" if ok else "stale", "state_age_seconds": round(age, 3)},
                            status_code=200 if ok else 503)

    async def signals(request: Request) -> Response:
        return JSONResponse(state_to_json(holder.current))

    routes = [
        metrics_route(registry),
        Route("/healthz", healthz),
        Route("/api/v1/signals", signals),
        *page.routes(),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


