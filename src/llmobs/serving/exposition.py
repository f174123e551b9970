"""The one `/metrics` handler every llmobs server mounts (exporter, node agent, standalone feedback API).

Content negotiation is prometheus_client's own (`choose_encoder`): OpenMetrics when the scraper's Accept
header asks for it, the classic text format otherwise. The registry is rendered in a worker thread: a
large fleet's page takes milliseconds to walk, and the event loop also serves the scrape loop and APIs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def render_metrics(registry: CollectorRegistry, accept: str) -> Response:
    """`registry` rendered in the format `accept` asks for, with the matching Content-Type."""
    encoder, content_type = choose_encoder(accept)
    body = await run_in_threadpool(encoder, registry)
    return Response(body, media_type=None, headers={"Content-Type": content_type})


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving `registry`."""

    async def metrics(request: Request) -> Response:
        return await render_metrics(registry, request.headers.get("accept", ""))

    return metrics


def metrics_route(registry: CollectorRegistry, path: str = "/metrics") -> Route:
    """`GET path` serving `registry` (HEAD too, as Starlette adds it to GET routes)."""
    return Route(path, metrics_endpoint(registry), methods=["GET"])
