"""`llmobs forecast simulate --html`: a replay's charts as one self-contained file, policies side by side.

The same SVG helpers and CSS as the status page, no script, and a Content Security Policy that lets the file
load nothing at all — so a what-if can be mailed or attached to a review and opened anywhere.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmobs.serving.statuspage.render import FILE_CONTENT_SECURITY_POLICY, document
from llmobs.serving.statuspage.svg import Line, esc, fmt, line_chart

if TYPE_CHECKING:
    from llmobs.forecast.replay import ReplayResult

MAX_POINTS = 600  # a file is rendered once: more detail than the live page's charts


def _times(result: ReplayResult) -> list[float]:
    return [t / 1e9 for t in result.index.asi8.tolist()]


def _panel(r: ReplayResult) -> str:
    times = _times(r)
    span = (str(r.index[0]), str(r.index[-1])) if len(r.index) else None
    demand = line_chart(times, [Line("demand", r.demand.tolist(), "served"),
                                Line("ready capacity", r.ready_capacity.tolist(), "ready")],
                        title="demand vs ready capacity (req/s)", max_points=MAX_POINTS, width=640, span_labels=span)
    replicas = line_chart(times, [Line("replicas", r.replicas.astype(float).tolist(), "desired")],
                          title="replicas", max_points=MAX_POINTS, width=640, span_labels=span)
    facts = (f"<span>under-provisioned {fmt(r.underprovisioned_minutes, ' min', 1, 1)}</span>"
             f"<span>{fmt(r.replica_minutes, ' replica-min', 1, 0)}</span><span>{r.scale_events} scale events</span>"
             f"<span>peak {r.peak_replicas} replicas</span><span>unserved {fmt(r.unserved_requests, '', 1, 0)}</span>")
    name = r.policy + (f" ({r.forecaster})" if r.forecaster and r.policy != "reactive" else "")
    return (f"<section class='panel model' data-policy='{esc(r.policy)}'><h3>{esc(name)}</h3>"
            f"<div class='facts'>{facts}</div>{demand}{replicas}</section>")


def render_replay(title: str, results: Sequence[ReplayResult], notes: Sequence[str] = ()) -> str:
    """The whole file: a comparison table, then each policy's charts side by side (stacked on a phone)."""
    rows = "".join(
        f"<tr><td>{esc(r.policy)}</td><td>{fmt(r.underprovisioned_minutes, '', 1, 1)}</td>"
        f"<td>{fmt(r.replica_minutes, '', 1, 0)}</td><td>{r.scale_events}</td><td>{r.peak_replicas}</td>"
        f"<td>{fmt(r.unserved_requests, '', 1, 0)}</td></tr>" for r in results)
    table = ("<div class='scroll'><table id='policies'><tr><th>policy</th><th>under-provisioned min</th>"
             "<th>replica-min</th><th>scale events</th><th>peak replicas</th><th>unserved requests</th></tr>"
             f"{rows}</table></div>")
    body = (f"<h1>{esc(title)}</h1><p class='meta'>{' · '.join(html.escape(n) for n in notes)}</p>{table}"
            f"<div class='models'>{''.join(_panel(r) for r in results)}</div>")
    return document(title, body, script=False, csp=FILE_CONTENT_SECURITY_POLICY)


def write_replay_html(path: Path, title: str, results: Sequence[ReplayResult], notes: Sequence[str] = ()) -> None:
    """Write `render_replay` to `path` (UTF-8)."""
    path.write_text(render_replay(title, results, notes), encoding="utf-8")
