"""The exporter's HTTP surface: /metrics, /healthz, /api/v1/signals and a status page at /.

Rendering /metrics walks every series; it runs in a worker thread so a large fleet never stalls the
scrape loop sharing this event loop.
"""

from __future__ import annotations

import html
import math
import time

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from llmobs.serving.exposition import metrics_route
from llmobs.serving.snapshot import state_to_json
from llmobs.signals.types import ModelEndpointSignals
from llmobs.state import StateHolder


def _fmt(v: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v * scale:.{digits}f}{unit}"


def _bottleneck_cell(s: ModelEndpointSignals) -> str:
    """The binding resource and its ratio (`kv 87 %`), or `unknown` with why in the tooltip; `–` when the tracker
    did not compute it."""
    sat = s.saturation
    if sat is None:
        return "<td>–</td>"
    if sat.bottleneck == "unknown":
        why = ", ".join(sat.unknown)
        return f"<td title='{html.escape(why, quote=True)}'>unknown</td>"
    ratios = ", ".join(f"{r} {v * 100:.0f} %" for r, v in sorted(sat.ratios.items()))
    return (f"<td title='{html.escape(ratios, quote=True)}'>{html.escape(sat.bottleneck)} "
            f"{_fmt(sat.binding_ratio, ' %', 100, 0)}</td>")


def render_status_page(holder: StateHolder) -> str:
    """A small human page: targets with health, then key signals per model × endpoint."""
    state = holder.current
    rows_t = []
    for h in state.targets:
        status = "up" if h.up else "down"
        rows_t.append(
            f"<tr class='{status}'><td>{html.escape(h.endpoint)}</td><td>{status}</td>"
            f"<td>{_fmt(h.scrape_duration_seconds, ' ms', 1000, 0)}</td><td>{h.consecutive_failures}</td>"
            f"<td>{html.escape(h.last_error_kind)} {html.escape(h.last_error[:120])}</td>"
            f"<td>{html.escape(', '.join(h.missing_series)) or '–'}</td></tr>"
        )
    rows_s = []
    for s in sorted(state.signals, key=lambda s: (s.attribution.model, s.attribution.endpoint)):
        a = s.attribution
        rows_s.append(
            f"<tr><td>{html.escape(a.model)}</td><td>{html.escape(a.endpoint)}</td><td>{html.escape(a.node)}</td>"
            f"<td>{_fmt(s.kv_cache_utilization, ' %', 100, 1)}</td><td>{_fmt(s.requests_running, '', 1, 0)}</td>"
            f"<td>{_fmt(s.requests_waiting, '', 1, 0)}</td><td>{_fmt(s.request_rate)}</td>"
            f"<td>{_fmt(s.ttft.quantiles.get(0.5), ' s', 1, 3)}</td>"
            f"<td>{_fmt(s.ttft.quantiles.get(0.99), ' s', 1, 3)}</td>"
            f"<td>{_fmt(s.itl.quantiles.get(0.5), ' ms', 1000, 1)}</td>"
            f"<td>{_fmt(s.e2e_latency.quantiles.get(0.99), ' s', 1, 2)}</td>"
            f"<td>{_fmt(s.prefix_cache_hit_ratio, ' %', 100, 1)}</td>{_bottleneck_cell(s)}</tr>"
        )
    age = time.time() - state.time
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>llmobs</title>
<meta http-equiv="refresh" content="5">
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}table{{border-collapse:collapse;margin-bottom:1.5rem}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;white-space:nowrap}}th{{background:#f3f3f3}}
tr.down td{{background:#fde2e2}}tr.up td:nth-child(2){{color:#137333;font-weight:600}}</style></head>
<body><h1>llmobs</h1>
<p>State from {age:.1f} s ago · window {state.window_seconds:g} s ·
cycle {_fmt(state.cycle_duration_seconds, ' ms', 1000, 0)} ·
<a href="/metrics">/metrics</a> · <a href="/api/v1/signals">/api/v1/signals</a> · <a href="/healthz">/healthz</a></p>
<h2>Targets ({len(state.targets)})</h2>
<table id="targets"><tr><th>endpoint</th><th>status</th><th>scrape</th><th>failures</th><th>last error</th>
<th>missing vLLM series</th></tr>{''.join(rows_t)}</table>
<h2>Signals</h2>
<table id="signals"><tr><th>model</th><th>endpoint</th><th>node</th><th>KV cache</th><th>running</th><th>waiting</th>
<th>req/s</th><th>TTFT p50</th><th>TTFT p99</th><th>ITL p50</th><th>E2E p99</th><th>prefix hit</th>
<th>bottleneck</th></tr>
{''.join(rows_s)}</table></body></html>"""


def create_app(
    holder: StateHolder, registry: CollectorRegistry, *, max_state_age_seconds: float = 60.0,
    extra_routes: list[Route] | None = None,
) -> Starlette:
    async def healthz(request: Request) -> Response:
        # Liveness of llmobs itself: the loop publishes state. Down targets do not make us unhealthy.
        age = time.time() - holder.current.time
        ok = age <= max_state_age_seconds
        return JSONResponse({"status": "ok" if ok else "stale", "state_age_seconds": round(age, 3)},
                            status_code=200 if ok else 503)

    async def signals(request: Request) -> Response:
        return JSONResponse(state_to_json(holder.current))

    async def index(request: Request) -> Response:
        return HTMLResponse(render_status_page(holder))

    routes = [
        metrics_route(registry),
        Route("/healthz", healthz),
        Route("/api/v1/signals", signals),
        Route("/", index),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


