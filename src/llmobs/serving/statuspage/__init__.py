"""The exporter's status page at `/`: what a newcomer, an on-call engineer or a reviewer sees without Grafana.

`StatusPage` keeps the signal history (fed when the pipeline publishes a state), builds the view-model from
whatever sources this process has, and renders at most once per published state, in a worker thread: never
on the scrape loop, and a burst of viewers shares one render.
"""

from __future__ import annotations

import asyncio
import threading

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from llmobs.serving.statuspage.history import SignalHistory
from llmobs.serving.statuspage.render import CONTENT_SECURITY_POLICY, FRAGMENT_PATH, render_fragment, render_page
from llmobs.serving.statuspage.view import StatusSources, build_view
from llmobs.state import FleetState, StateHolder

__all__ = ["FRAGMENT_PATH", "SignalHistory", "StatusPage", "StatusSources"]

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class StatusPage:
    """The page's history, sources and a render cache keyed by the published state."""

    def __init__(self, holder: StateHolder, sources: StatusSources | None = None,
                 history: SignalHistory | None = None) -> None:
        self.holder = holder
        self.sources = sources if sources is not None else StatusSources()
        self.history = history if history is not None else SignalHistory()  # an empty history is falsy
        holder.add_listener(self.history.record)
        self._lock = threading.Lock()
        self._cached: tuple[FleetState, str, str] | None = None  # (state, page, fragment)

    def render(self) -> tuple[str, str]:
        """(whole page, live fragment) for the current state; rendered once per published state."""
        with self._lock:
            state = self.holder.current
            cached = self._cached
            if cached is not None and cached[0] is state:
                return cached[1], cached[2]
            view = build_view(state, self.history, self.sources)
            fragment = render_fragment(view)
            page = render_page(view, fragment)
            self._cached = (state, page, fragment)
            return page, fragment

    def routes(self) -> list[Route]:
        async def page(request: Request) -> Response:
            html, _ = await asyncio.to_thread(self.render)
            return HTMLResponse(html, headers=SECURITY_HEADERS)

        async def fragment(request: Request) -> Response:
            _, html = await asyncio.to_thread(self.render)
            return HTMLResponse(html, headers=SECURITY_HEADERS)

        return [Route("/", page), Route(FRAGMENT_PATH, fragment)]
